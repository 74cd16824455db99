"""The learning rates a user trains with, as exponents c (LR = η·n^-c, TP5 Def. A.2): read
from their optimizer factory at each traced width, or from an LR file (``check``'s: LR
scale rules by name, glob or role)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from abccalc.calculus.sizes import ABC
from abccalc.errors import AbcError
from abccalc.exponents import Exp, Optimizer
from abccalc.graph.yamlio import read_yaml
from abccalc.importer.imported import Imported
from abccalc.importer.load import fit_exponent
from abccalc.parametrization.paramsfile import lrs_from_dict
from abccalc.verify.live import call_user, lookup, ratios


def _fit_lr(pname: str, ns: list[float], lrs: list[float], where: str) -> Exp:
    """c with lr ∝ n^-c, exact (LRs are set by code, not sampled): the importer's fit."""
    if min(lrs) <= 0:
        raise AbcError(f"{where}: parameter '{pname}' has LR {min(lrs)}; check needs every "
                       "parameter trained with a positive LR")
    c = fit_exponent(tuple(lrs), tuple(n / ns[0] for n in ns))
    if c is None:
        raise AbcError(f"{where}: the LR of '{pname}' ({lrs} at width ratios {ns}) does not "
                       "scale like a power of the width")
    return c


def read_lr_factory(imp: Imported, models: list[tuple[dict[str, int], Any]],
                    factory: Callable[[Any], Any], where: str, glob: list[float]
                    ) -> tuple[dict[str, Exp], dict[str, tuple[float, ...]], str | None]:
    """c of each parameter from ``factory(model)`` at each width, the LRs read and the
    optimizer's class name (None for bare param groups)."""
    lrs: dict[str, list[float]] = {p: [] for p in imp.graph.params}
    numel: dict[str, list[int]] = {p: [] for p in imp.graph.params}
    cls = None
    for knobs, model in models:
        named = lookup(model, imp, knobs)
        made = call_user(factory, (model,), f"{where} at {knobs}")
        groups = getattr(made, "param_groups", None)
        cls = type(made).__name__ if groups is not None else None
        default = getattr(made, "defaults", {}).get("lr", 1.0)
        by_id: dict[int, float] = {}
        for g in groups if groups is not None else _groups(made, where):
            ps = g["params"] if isinstance(g, dict) else [g]
            for t in ([ps] if hasattr(ps, "shape") else list(ps)):
                if id(t) in by_id:
                    raise AbcError(f"{where}: a parameter is in two param groups")
                by_id[id(t)] = _number(g.get("lr", default) if isinstance(g, dict)
                                       else default, where)
        for p in imp.graph.params:
            if id(named[p]) not in by_id:
                raise AbcError(f"{where}: parameter '{p}' is in no param group at {knobs}")
            lrs[p].append(by_id[id(named[p])])
            numel[p].append(named[p].numel())
    c = {p: _fit_lr(p, ratios(imp.graph, p, numel[p], glob), lrs[p], where)
         for p in imp.graph.params}
    return c, {p: tuple(v) for p, v in lrs.items()}, cls


def _number(lr: Any, where: str) -> float:
    try:
        return float(lr)
    except (TypeError, ValueError):
        raise AbcError(f"{where}: a param group's lr is {lr!r}, not a number") from None


def same_class(cls: str | None, opt: Optimizer, where: str) -> None:
    """A factory's optimizer of another update class than ``--optimizer`` (SGD checked as
    Adam, or the reverse) would be judged by the wrong LR rules. A class abccalc does not
    name is trusted to be ``--optimizer``'s."""
    try:
        other = Optimizer.parse(cls or "")
    except AbcError:
        return
    if other is not opt and not (other.value.startswith("muon") and
                                 opt.value.startswith("muon")):
        raise AbcError(f"--optimizer-factory {where} returns {cls}, checked as "
                       f"{opt.value}: pass --optimizer {other.value}")


def _groups(made: Any, where: str) -> list[Any]:
    try:
        return list(made)
    except TypeError:
        raise AbcError(f"{where}: expected an optimizer, a list of param groups or an "
                       f"iterable of parameters, got {type(made).__name__}") from None


def read_lr_scales(imp: Imported, path: str) -> dict[str, Exp]:
    """c of each parameter from an LR file (docs/check.md, "LR files"): ``lr`` maps names,
    globs or roles (first match wins) to LR scale rules such as ``1/fan_in`` or
    ``256/d_model``: lr ∝ n^-c."""
    return lrs_from_dict(read_yaml(path), imp.graph, ABC({}, {}, {}, {}), path).abc.c
