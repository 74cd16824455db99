"""The MODEL argument: ``file.py:factory``, ``package.module:factory`` or ``hf:CONFIG``, with
its width knobs, built on any device.

Loading ``file.py:factory`` runs that file, exactly as ``python file.py`` would: it is the
user's explicit request to import their own code. ``hf:CONFIG`` builds a Hugging Face
model with ``from_config`` from a local ``config.json`` or a model type (``gpt2``,
``llama``, ``bert``): never a download, never ``trust_remote_code``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abccalc.errors import AbcError
from abccalc.graph.names import check_name, clean

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MODEL_TYPE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_WIDTHS = 3
# hf: config fields scaled ×1, ×2 when no --width is given (those the config sets)
HF_WIDTHS = ("hidden_size", "intermediate_size", "n_inner", "head_dim")
HF_SEQ = 8  # tokens in the example input of an hf: model


@dataclass(frozen=True)
class ModelSpec:
    """A parsed MODEL: its kind (``file``, ``module``, ``hf``), target and factory."""

    text: str
    kind: str
    target: str
    factory: str = ""

    @property
    def name(self) -> str:
        """A graph name for it: the factory, or the model type."""
        stem = self.factory or Path(self.target).stem
        return re.sub(r"[^A-Za-z0-9_]", "_", stem).lstrip("0123456789_") or "model"


def parse_spec(text: str) -> ModelSpec:
    """Validate MODEL without running anything."""
    if not isinstance(text, str) or not text or len(text) > 1000:
        raise AbcError(f"MODEL {clean(text)!s}: expected file.py:factory, "
                       "package.module:factory or hf:CONFIG")
    if text.startswith("hf:"):
        target = text[3:]
        if target.endswith(".json") or not _MODEL_TYPE.fullmatch(target):
            if not target.endswith(".json"):
                raise AbcError(f"MODEL {clean(text)}: hf: takes a config.json path or a "
                               "model type such as gpt2, llama, bert")
        return ModelSpec(text, "hf", target)
    target, sep, factory = text.rpartition(":")
    if not sep or not target:
        raise AbcError(f"MODEL {clean(text)}: expected file.py:factory, "
                       "package.module:factory or hf:CONFIG (a graph file ends in .yaml)")
    if not _IDENT.fullmatch(factory):
        raise AbcError(f"MODEL {clean(text)}: factory {clean(factory)!r} is not a Python "
                       "name")
    if target.endswith(".py"):
        return ModelSpec(text, "file", target, factory)
    if not _MODULE.fullmatch(target):
        raise AbcError(f"MODEL {clean(text)}: {clean(target)!r} is neither a .py file nor "
                       "a module name")
    return ModelSpec(text, "module", target, factory)


def looks_like_model(text: str) -> bool:
    """Whether a GRAPH argument names a model rather than a YAML file."""
    if text.startswith("hf:"):
        return True
    target, sep, factory = text.rpartition(":")
    return bool(sep and target and _IDENT.fullmatch(factory)
                and (target.endswith(".py") or _MODULE.fullmatch(target)))


def parse_widths(items: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """``--width NAME=B1,B2[,B3]``: the knobs' values (one value: held fixed)."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep:
            raise AbcError(f"--width {clean(item)}: expected NAME=B1,B2[,B3]")
        check_name(name, "--width knob", "--width", dim=True)
        if "." in name:
            raise AbcError(f"--width {clean(item)}: a knob is a keyword argument or config "
                           "field name")
        try:
            vals = tuple(int(v) for v in values.split(","))
        except ValueError:
            raise AbcError(f"--width {clean(item)}: values must be integers") from None
        if not 1 <= len(vals) <= MAX_WIDTHS or any(not 1 <= v <= 2**20 for v in vals):
            raise AbcError(f"--width {clean(item)}: give 1 to {MAX_WIDTHS} integers in "
                           "[1, 2^20]")
        if name in out:
            raise AbcError(f"--width {name}: given twice")
        out[name] = vals
    counts = {len(v) for v in out.values() if len(v) > 1}
    if len(counts) > 1:
        raise AbcError("--width: every varied knob needs the same number of values")
    n = counts.pop() if counts else 1
    return {k: v if len(v) > 1 else v * n for k, v in out.items()}


def _load_module(spec: ModelSpec):
    if spec.kind == "module":
        try:
            return importlib.import_module(spec.target)
        except Exception as e:  # the user's code: any error is theirs, reported in one line
            raise AbcError(f"{spec.text}: importing {spec.target} failed: "
                           f"{type(e).__name__}: {clean(e)}") from None
    path = Path(spec.target)
    if not path.is_file():
        raise AbcError(f"{spec.text}: {clean(spec.target)}: no such file")
    name = f"abccalc_user_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise AbcError(f"{spec.text}: running {clean(spec.target)} failed: "
                       f"{type(e).__name__}: {clean(e)}") from None
    return module


def load_function(spec: ModelSpec) -> Callable[..., Any]:
    """The user's function ``spec.factory`` of a ``file``/``module`` spec (a model factory,
    ``check``'s optimizer factory): its module runs, as it does when they train."""
    if spec.kind == "hf":
        raise AbcError(f"{spec.text}: expected file.py:function or package.module:function")
    fn = getattr(_load_module(spec), spec.factory, None)
    if not callable(fn):
        raise AbcError(f"{spec.text}: {clean(spec.target)} has no function "
                       f"'{spec.factory}'")
    return fn


def factory_builder(spec: ModelSpec, knobs: dict[str, tuple[int, ...]]
                    ) -> Callable[[dict[str, int], Any], Any]:
    """``build(values, device)`` for a ``file``/``module`` MODEL; checks the knobs against
    the factory's keyword arguments."""
    factory = load_function(spec)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes = [p for p in params if params[p].kind in (inspect.Parameter.KEYWORD_ONLY,
                                                     inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if not knobs:
        raise AbcError(f"{spec.text}: give the width knobs with --width NAME=B1,B2 (its "
                       f"keyword arguments: {', '.join(takes) or 'none'})")
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in knobs if k not in takes and not var_kw]
    if unknown and params:
        raise AbcError(f"{spec.text}: {spec.factory}() takes no argument '{unknown[0]}' "
                       f"(it takes: {', '.join(takes) or 'none'})")

    def build(values: dict[str, int], device: Any) -> Any:
        import torch

        try:
            with torch.device(device):
                model = factory(**values)
        except Exception as e:
            raise AbcError(f"{spec.text}: {spec.factory}({_kw(values)}) failed: "
                           f"{type(e).__name__}: {clean(e)}") from None
        if not isinstance(model, torch.nn.Module):
            raise AbcError(f"{spec.text}: {spec.factory}() returned a "
                           f"{type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def _kw(values: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def hf_config(spec: ModelSpec):
    """The transformers config of ``hf:CONFIG`` (a local file or a model type's defaults)."""
    import transformers

    if spec.target.endswith(".json"):
        try:
            data = json.loads(Path(spec.target).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise AbcError(f"{spec.text}: cannot read: {clean(e)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
            raise AbcError(f"{spec.text}: a config.json needs a string 'model_type'")
        model_type = data.pop("model_type")
    else:
        model_type, data = spec.target, {}
    try:
        return transformers.AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError, KeyError) as e:
        raise AbcError(f"{spec.text}: not a transformers model type or config: "
                       f"{clean(e)}") from None


def hf_knobs(config) -> dict[str, tuple[int, ...]]:
    """Default knobs of an hf: model: each of :data:`HF_WIDTHS` the config sets, ×1 and ×2
    (head counts stay: TP5 J.2.1's first regime, heads of growing size)."""
    out = {}
    for f in HF_WIDTHS:
        v = getattr(config, f, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            out[f] = (v, 2 * v)
    return out


def hide_broken_torchvision() -> None:
    """transformers imports torchvision whenever it is installed; a torchvision built for
    another torch fails on import (``operator torchvision::nms does not exist``) and takes
    every model class with it. No ``hf:`` text model needs it: hide a broken one, from
    ``import`` and from transformers' check of what is installed (the one place this is
    done; idempotent)."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            sys.modules["torchvision"] = None  # import torchvision now raises ImportError
    if sys.modules.get("torchvision", True) is not None:
        return
    import transformers.utils.import_utils as iu

    found = iu._is_package_available
    if getattr(found, "hides_torchvision", False):
        return

    def available(name: str, *args: Any, **kwargs: Any) -> Any:
        return (False, "N/A") if name == "torchvision" else found(name, *args, **kwargs)

    available.hides_torchvision = True  # type: ignore[attr-defined]
    iu._is_package_available = available
    iu.is_torchvision_available.cache_clear()
    iu.is_torchvision_v2_available.cache_clear()


def hf_builder(spec: ModelSpec, knobs: dict[str, tuple[int, ...]]):
    """``build(values, device)`` for ``hf:CONFIG``; the knobs are config fields."""
    hide_broken_torchvision()
    import transformers

    base = hf_config(spec)
    for k in knobs:
        if not hasattr(base, k):
            raise AbcError(f"{spec.text}: the {base.model_type} config has no field '{k}'")
    # an encoder (BERT) with its masked-LM head, a decoder with its LM head, else the body
    auto = [transformers.AutoModelForCausalLM, transformers.AutoModel]
    if not getattr(base, "is_decoder", False):
        auto.insert(0, transformers.AutoModelForMaskedLM)
    cls = next(a for a in auto if type(base) in a._model_mapping or a is auto[-1])

    def build(values: dict[str, int], device: Any) -> Any:
        import copy

        import torch

        config = copy.deepcopy(base)
        for k, v in values.items():
            setattr(config, k, v)
        config.use_cache = False
        try:
            with torch.device(device):
                return cls.from_config(config, attn_implementation="sdpa")
        except Exception as e:
            raise AbcError(f"{spec.text}: building {base.model_type} with {_kw(values)} "
                           f"failed: {type(e).__name__}: {clean(e)}") from None

    return build, base


@contextlib.contextmanager
def hf_tracing():
    """transformers' mask helpers skip their data-dependent shortcuts (``.all()`` on a
    mask, which ``meta`` cannot answer) when they believe a graph is being traced: tell
    them so while tracing."""
    import transformers.masking_utils as masking

    saved = masking.is_tracing
    masking.is_tracing = lambda *args, **kwargs: True
    try:
        yield
    finally:
        masking.is_tracing = saved


def hf_example(config) -> dict[str, Any]:
    import torch

    limit = getattr(config, "max_position_embeddings", None) or \
        getattr(config, "n_positions", None) or HF_SEQ
    return {"input_ids": torch.zeros(2, min(HF_SEQ, limit), dtype=torch.long,
                                     device="meta")}


def example_inputs(model, example: str | None, img: int = 32) -> dict[str, Any]:
    """The forward's inputs on ``meta``: from ``--example FILE`` (a ``torch.save`` of a
    tensor, tuple or dict), else guessed from the first layer: token ids for an embedding,
    an image for a conv, a vector for a linear."""
    import torch

    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if example is not None:
        try:
            data = torch.load(example, map_location="meta", weights_only=True)
        except Exception as e:
            raise AbcError(f"--example {clean(example)}: cannot load: "
                           f"{type(e).__name__}: {clean(e)}") from None
        if isinstance(data, torch.Tensor):
            data = (data,)
        if isinstance(data, list | tuple):
            if len(data) > len(params):
                raise AbcError(f"--example {clean(example)}: {len(data)} inputs, but "
                               f"forward takes {len(params)}")
            data = {p.name: d for p, d in zip(params, data, strict=False)}
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor)
                                                 for v in data.values()):
            raise AbcError(f"--example {clean(example)}: expected a tensor, a tuple or a "
                           "dict of tensors")
        return data
    required = [p for p in params if p.default is inspect.Parameter.empty]
    first = next((m for m in model.modules() if not list(m.children())), None)
    if len(required) != 1 or first is None:
        raise AbcError("cannot guess the model's inputs; pass --example FILE (a torch.save "
                       "of the forward's inputs)")
    name = required[0].name
    if isinstance(first, torch.nn.Embedding):
        seq = min(HF_SEQ, getattr(model, "block_size", HF_SEQ) or HF_SEQ)
        return {name: torch.zeros(2, seq, dtype=torch.long, device="meta")}
    size = getattr(model, "img_size", None) or getattr(model, "image_size", None) or img
    if isinstance(first, torch.nn.Conv2d):
        return {name: torch.zeros(2, first.in_channels, size, size, device="meta")}
    if isinstance(first, torch.nn.Linear):
        return {name: torch.zeros(2, first.in_features, device="meta")}
    raise AbcError(f"cannot guess the input of a model whose first layer is "
                   f"{type(first).__name__}; pass --example FILE")
