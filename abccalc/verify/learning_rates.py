"""The learning rates a user trains with, as exponents c (LR = η·n^-c, TP5 Def. A.2): read
from their optimizer factory at each traced width, or from a YAML of LR scales by name
pattern written in the params-file grammar."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import sympy

from abccalc.errors import AbcError
from abccalc.exponents import Exp, Optimizer
from abccalc.graph.yamlio import read_yaml
from abccalc.importer.imported import Imported
from abccalc.parametrization.paramsfile import N, rule_exponent, rule_names, rule_subs
from abccalc.verify.live import call_user, lookup, ratios


def _fit_lr(pname: str, ns: list[float], lrs: list[float], where: str) -> Exp:
    """c with lr ∝ n^-c, exact: LRs are set by code, not sampled."""
    if min(lrs) <= 0:
        raise AbcError(f"{where}: parameter '{pname}' has LR {min(lrs)}; check needs every "
                       "parameter trained with a positive LR")
    pairs = [math.log(lrs[i] / lrs[0]) / math.log(ns[i] / ns[0]) for i in range(1, len(ns))]
    c = Fraction(-pairs[0]).limit_denominator(12)
    if any(abs(-s - c) > 1e-6 for s in pairs):
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
    """An SGD factory checked as Adam (or the reverse) would judge the wrong LR rules."""
    name = (cls or "").lower()
    other = Optimizer.SGD if "sgd" in name else Optimizer.ADAM if "adam" in name else opt
    if other is not opt:
        raise AbcError(f"--optimizer-factory {where} returns {cls}, checked as "
                       f"{opt.value}: pass --optimizer {other.value}")


def _groups(made: Any, where: str) -> list[Any]:
    try:
        return list(made)
    except TypeError:
        raise AbcError(f"{where}: expected an optimizer, a list of param groups or an "
                       f"iterable of parameters, got {type(made).__name__}") from None


def read_lr_scales(imp: Imported, path: str) -> dict[str, Exp]:
    """c of each parameter from a YAML mapping ``pattern: LR scale`` (first match wins).

    A scale is a rule of the params-file grammar in ``fan_in``, ``fan_out``, the graph's
    dims and the width knobs (``1/fan_in``, ``256/n_embd``, ``1``): lr ∝ n^-c."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise AbcError(f"{path}: expected a mapping of parameter-name patterns to LR scales "
                       "(e.g. \"*.c_fc.weight\": 1/fan_in)")
    g = imp.graph
    names = rule_names(g)
    knobs = {k: sympy.Symbol(k, positive=True) for k in imp.knobs if k not in names}
    names.update(knobs)
    moving = {k for k in imp.knobs if len(set(imp.knobs[k])) > 1}
    out = {}
    for p, param in g.params.items():
        k = next((str(k) for k in data if fnmatch.fnmatchcase(p, str(k))), None)
        if k is None:
            raise AbcError(f"{path}: parameter '{p}': no pattern matches it (add one, or \"*\")")
        subs = rule_subs(g, names, param.uses[0])
        subs.update({s: N if name in moving else 1 for name, s in knobs.items()})
        out[p] = -rule_exponent(data[k], names, subs, f"{path}: parameter '{p}' (key '{k}')")
    return out
