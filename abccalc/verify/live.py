"""The user's model at the traced widths: built on the CPU, its parameters by name, and
the user's own callables (a model factory's build, an optimizer factory) run so that what
they raise is one line, never a traceback."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from abccalc.errors import AbcError
from abccalc.graph.core import Graph
from abccalc.importer.imported import Imported

MAX_NUMEL = 200_000_000  # entries built on the CPU to read the init, all widths together


def widths(imp: Imported) -> list[dict[str, int]]:
    counts = {len(v) for v in imp.knobs.values()}
    if len(counts) != 1 or counts.pop() < 2:
        raise AbcError(f"{imp.spec}: every width knob needs the same number (2 or 3) of "
                       f"traced values, got {dict(imp.knobs)}")
    n = len(next(iter(imp.knobs.values())))
    return [{k: v[i] for k, v in imp.knobs.items()} for i in range(n)]


def global_ratios(imp: Imported) -> list[float]:
    """n_i / n_0 for each traced width: the geometric mean of the ratios of the knobs that
    change (each infinite dim is Θ(n), so they change together)."""
    ws = widths(imp)
    moving = [k for k in imp.knobs if len(set(imp.knobs[k])) > 1]
    if not moving:
        raise AbcError(f"{imp.spec}: no width knob changes across {dict(imp.knobs)}; "
                       "give two or three different values")
    out = [math.prod(w[k] / ws[0][k] for k in moving) ** (1 / len(moving)) for w in ws]
    if len(set(out)) < len(out):
        raise AbcError(f"{imp.spec}: two traced widths are the same size ({dict(imp.knobs)}); "
                       "give two or three different values")
    return out


def lookup(model: Any, imp: Imported, knobs: dict[str, int]) -> dict[str, Any]:
    """The model's parameters by every name (tied ones under each of their names)."""
    named = dict(model.named_parameters(remove_duplicate=False))
    missing = [p for p in imp.graph.params if p not in named]
    if missing:
        raise AbcError(f"{imp.spec}: the traced parameter '{missing[0]}' is not a parameter "
                       f"of the model built at {knobs}")
    return named


def ratios(graph: Graph, pname: str, numels: list[int], glob: list[float]) -> list[float]:
    """n_i / n_0 as this parameter sees it: (numel_i / numel_0)^(1/k) for k infinite
    dims in its shape; the global ratio for a scalar-like one."""
    k = graph.inf(graph.params[pname].shape)
    if k == 0:
        return glob
    if numels[-1] == numels[0]:
        raise AbcError(f"parameter '{pname}': the graph gives it {k} infinite dim(s) but its "
                       f"size does not change across the traced widths ({numels})")
    return [(m / numels[0]) ** (1 / k) for m in numels]


def build_models(imp: Imported, seed: int = 0) -> list[tuple[dict[str, int], Any]]:
    """The model at each traced width, built on the CPU with ``seed``, after its size is
    counted on the meta device (a build that cannot run there is counted on the CPU)."""
    import torch

    total = 0
    for knobs in widths(imp):
        try:
            with torch.device("meta"):
                total += sum(p.numel() for p in imp.build(knobs, "meta").parameters())
        except Exception:  # the CPU build below names what went wrong
            break
    if total > MAX_NUMEL:
        raise AbcError(f"{imp.spec}: reading the init builds the model at every traced width "
                       f"on the CPU ({total:,} entries; the limit is {MAX_NUMEL:,}); trace "
                       "at smaller widths (the exponents do not depend on them)")
    out = []
    for knobs in widths(imp):
        torch.manual_seed(seed)
        where = f"{imp.spec}: building at {knobs} on the CPU"
        out.append((knobs, call_user(imp.build, (knobs, "cpu"), where)))
    return out


def call_user(fn: Callable[..., Any], args: tuple[Any, ...], where: str) -> Any:
    """The user's code: what it raises is one line naming it, never a traceback."""
    try:
        return fn(*args)
    except AbcError:
        raise
    except Exception as e:
        raise AbcError(f"{where} raised {type(e).__name__}: {e}") from None


def aliases(model: Any, graph: Graph) -> dict[str, tuple[str, ...]]:
    """Each graph parameter's other state_dict names (a tied parameter has several)."""
    by_id: dict[int, list[str]] = {}
    for n, t in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(t), []).append(n)
    named = dict(model.named_parameters(remove_duplicate=False))
    return {p: tuple(n for n in by_id[id(named[p])] if n != p) for p in graph.params
            if len(by_id[id(named[p])]) > 1}


def untraced(model: Any, graph: Graph) -> tuple[str, ...]:
    """The model's trainable parameters that the traced graph does not hold (by identity):
    the check cannot judge them, so they are named, never dropped."""
    named = dict(model.named_parameters(remove_duplicate=False))
    held = {id(named[p]) for p in graph.params if p in named}
    return tuple(n for n, t in model.named_parameters()
                 if t.requires_grad and id(t) not in held)
