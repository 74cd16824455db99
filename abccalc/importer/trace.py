"""Record a model's forward at the aten level on the ``meta`` device.

A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees every aten op after
autograd, with its tensors and constants (``mul.Tensor(x, 0.125)``); a
:class:`~torch.overrides.TorchFunctionMode` keeps ``scaled_dot_product_attention`` whole
(on ``meta`` it would otherwise decompose into its math path), with its ``scale`` and
``is_causal``. Tensors are numbered in the order they are first seen, so two traces of the
same code at two widths number them alike and can be compared event by event.

torch is imported by the caller (:mod:`abccalc.importer.load`), never at import time of
the package.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

_TORCH_DIR = str(Path(torch.__file__).parent)
_HERE = str(Path(__file__).parent)
SDPA = "sdpa"  # the event name of a whole scaled_dot_product_attention call


@dataclass(frozen=True)
class T:
    """A tensor argument: its number in the trace."""

    i: int


@dataclass
class Event:
    """One aten op (or a whole SDPA): its name (``addmm``, ``view``, ``sdpa``), its args
    and kwargs with tensors replaced by :class:`T`, its outputs' numbers, the module path
    it ran in and the user's source line."""

    aten: str
    args: tuple
    kwargs: dict
    outs: tuple[int, ...]
    module: str
    source: str


@dataclass
class Trace:
    """A forward pass: events in order and each tensor's shape, kind and name.

    kind: ``param`` (name = its first ``named_parameters`` name), ``input`` (name = the
    forward argument), ``const`` (derived from neither: masks, positions, buffers) or
    ``act`` (derived from an input or a parameter)."""

    events: list[Event] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    output: int | None = None  # the model's output tensor
    customs: list[tuple[str, str, str]] = field(default_factory=list)
    # (module, class, source) of each custom autograd.Function applied: forward traced,
    # backward unseen


def _source() -> str:
    """``file.py:line`` of the innermost frame outside torch and this package."""
    f = sys._getframe(2)
    while f is not None:
        path = f.f_code.co_filename
        if not path.startswith(_TORCH_DIR) and not path.startswith(_HERE):
            return f"{Path(path).name}:{f.f_lineno}"
        f = f.f_back
    return ""


class Tracer(TorchDispatchMode):
    """Records live events (those touching an input or a parameter) into a :class:`Trace`."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.trace = Trace()
        self._ids: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []  # keeps ids unique while tracing
        self._stack: list[str] = []
        self._quiet = 0
        self._modules = {id(m): name for name, m in model.named_modules()}
        for name, p in model.named_parameters():
            self.register(p, "param", name)

    def register(self, t: torch.Tensor, kind: str, name: str = "") -> int:
        i = self._ids.get(id(t))
        if i is None:
            i = len(self.trace.shapes)
            self._ids[id(t)] = i
            self._keep.append(t)
            self.trace.shapes.append(tuple(t.shape))
            self.trace.kinds.append(kind)
            self.trace.names.append(name)
        return i

    def index(self, t: Any) -> int | None:
        return self._ids.get(id(t)) if isinstance(t, torch.Tensor) else None

    @property
    def module(self) -> str:
        return self._stack[-1] if self._stack else ""

    # -- module path -------------------------------------------------------------------------
    def pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        name = self._modules.get(id(module))
        self._stack.append(name if name is not None else self.module)

    def post_hook(self, module: torch.nn.Module, args: Any, out: Any) -> None:
        if self._stack:
            self._stack.pop()

    # -- events ------------------------------------------------------------------------------
    def record(self, op: str, args: tuple, kwargs: dict, out: Any) -> None:
        flat, _ = tree_flatten((args, kwargs))
        ins = [self.index(a) for a in flat if isinstance(a, torch.Tensor)]
        for a in flat:  # tensors made outside the trace (buffers, module attributes)
            if isinstance(a, torch.Tensor) and self.index(a) is None:
                self.register(a, "const")
        live = any(i is not None and self.trace.kinds[i] != "const" for i in ins)
        outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        numbers = tuple(self.register(o, "act" if live else "const") for o in outs)
        if not live:
            return

        def ref(a: Any) -> Any:
            return T(self._ids[id(a)]) if isinstance(a, torch.Tensor) else a

        self.trace.events.append(Event(op, tree_map(ref, args), tree_map(ref, kwargs),
                                       numbers, self.module, _source()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self._quiet:
            self.record(func._overloadpacket.__name__, args, kwargs, out)
        return out


class WholeSDPA(TorchFunctionMode):
    """Keeps ``F.scaled_dot_product_attention`` one event, its output an empty tensor of
    the right shape (no math path is traced). A torch function mode does not see calls
    made inside another torch function (``nn.MultiheadAttention``'s forward), so the
    function is also replaced in ``torch.nn.functional`` while tracing."""

    NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
             "enable_gqa")

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not _SDPA:
            return func(*args, **kwargs)
        return self.call(*args, **kwargs)

    def call(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        call = {**dict(zip(self.NAMES, args, strict=False)), **kwargs}
        q, v = call["query"], call["value"]
        self.tracer._quiet += 1
        try:
            out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        finally:
            self.tracer._quiet -= 1
        self.tracer.record(SDPA, (), call, out)
        return out


_SDPA = F.scaled_dot_product_attention


def run_trace(model: torch.nn.Module, inputs: dict[str, Any]) -> Trace:
    """Trace ``model(**inputs)`` (tensors on ``meta``) without autograd."""
    tracer = Tracer(model)
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            tracer.register(value, "input", name)
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook),
             torch.nn.modules.module.register_module_forward_hook(tracer.post_hook)]
    whole = WholeSDPA(tracer)
    apply = torch.autograd.Function.__dict__["apply"]

    def custom(cls, *args: Any, **kwargs: Any) -> Any:
        tracer.trace.customs.append((tracer.module, cls.__name__, _source()))
        return apply.__func__(cls, *args, **kwargs)

    F.scaled_dot_product_attention = whole.call
    torch.autograd.Function.apply = classmethod(custom)
    try:
        with torch.no_grad(), tracer, whole:
            out = model(**inputs)
    finally:
        F.scaled_dot_product_attention = _SDPA
        torch.autograd.Function.apply = apply
        for h in hooks:
            h.remove()
    tracer.trace.output = _first_output(tracer, out)
    return tracer.trace


def _first_output(tracer: Tracer, out: Any) -> int | None:
    """The model's output: the tensor itself, a ``logits`` field, or the first live tensor
    of a tuple or mapping."""
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        out = logits
    for t in tree_flatten(out)[0] if not isinstance(out, torch.Tensor) else [out]:
        i = tracer.index(t)
        if i is not None and tracer.trace.kinds[i] == "act":
            return i
    if hasattr(out, "to_tuple"):
        for t in out.to_tuple():
            i = tracer.index(t)
            if i is not None and tracer.trace.kinds[i] == "act":
                return i
    return None
