"""Fix the gauge: from gauge invariants to concrete (a, b, c) per parameter.

The desiderata fix only a+b and k·a+c of each use (k = 2 for SGD, 1 for Adam); every
choice of a is the same training dynamics (TP4 Eq. 5, TP4b Prop. 2.2.3, TP5 Lemma J.1).
A *variant* picks a for every use:

* ``table3``: a = 0 on every use (TP5 Table 3: no multipliers).
* ``table8``: a = inf(fan_in) on an output (vector-like readout) use, else 0 (TP5 Table 8:
  "a multiplier of order 1/fan_in should accompany any weight that maps an infinite
  dimension to a finite one").
* ``table9`` / ``tp4``: a = −½·inf(fan_out) on input-like uses, ½·inf(fan_in) on output
  uses, 0 on hidden ones (TP5 Table 9, TP4 Table 1; SGD c = 0 everywhere).
* ``unit``: a = a+b on every use, so b = 0: unit init variance, multipliers carry the scale
  (u-μP style).

A tied parameter has one b and one c, so its uses' a must differ by exactly the
differences of their invariants; a variant that cannot do that is a conflict.

``all`` and ``auto`` are not gauges: :func:`parametrize_all` applies every variant and keeps
each conflict as its result; :func:`parametrize_auto` takes the first of
:data:`AUTO_ORDER` that solves.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Any

from abccalc.calculus.depth import Depth, solve_depth
from abccalc.calculus.sizes import ABC, UseKey, key
from abccalc.calculus.solver import Analysis, Invariants
from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, ZERO, Exp, Optimizer, exact
from abccalc.graph.core import Graph, Kind, Role, Use, made

Gauge = Callable[[Graph, Invariants, Optimizer], Exp]


@lru_cache(maxsize=1024)
def rational(e: Exp) -> Any:
    """The sympy Rational (or ±oo) of an exponent: the public API's exact type (sympy is
    imported on first use, so tables and code are written without it)."""
    import sympy

    if e in (math.inf, -math.inf):
        return sympy.oo if e > 0 else -sympy.oo
    return sympy.Rational(e.numerator, e.denominator)


def _table8(graph: Graph, inv: Invariants, opt: Optimizer) -> Exp:
    return graph.inf(inv.use.fan_in) if inv.role is Role.OUTPUT and \
        inv.use.kind is Kind.WEIGHT else ZERO


def _table9(graph: Graph, inv: Invariants, opt: Optimizer) -> Exp:
    if inv.role is Role.INPUT:
        return -HALF * graph.inf(inv.use.fan_out)
    if inv.role is Role.OUTPUT:
        return HALF * graph.inf(inv.use.fan_in)
    return ZERO


GAUGES: dict[str, Gauge] = {
    "table3": lambda graph, inv, opt: ZERO,
    "table8": _table8,
    "table9": _table9,
    "tp4": _table9,
    "unit": lambda graph, inv, opt: inv.init,
}
VARIANTS = tuple(GAUGES)
AUTO_ORDER = ("table3", "table8", "table9", "unit")
"""The variants ``--variant auto`` tries, in order: the first that solves is used."""


class Conflict(AbcError):
    """Tied uses of a parameter that one variant's gauge cannot satisfy (another may)."""


_THETA = re.compile(r"[-+]?\d{1,6}(?:/\d{1,6}|\.\d{1,6})?")
MAX_THETA = 64


def parse_theta(text: str) -> Exp:
    """An exact rational exponent shift: ``1``, ``-1/2``, ``0.5``, at most six digits a part
    and |θ| ≤ 64 (no scientific notation, which Fraction would expand digit by digit).
    Raises AbcError."""
    if not _THETA.fullmatch(text.strip()):
        raise AbcError(f"θ '{text}' is not an exact rational of at most 6 digits a part "
                       "(e.g. 1/2, -1, 0.25)")
    try:
        value = Fraction(text.strip())
    except ZeroDivisionError:
        raise AbcError(f"θ '{text}' divides by zero") from None
    if abs(value) > MAX_THETA:
        raise AbcError(f"θ '{text}' is beyond ±{MAX_THETA}")
    return value


def _theta(name: str, value: object) -> Exp:
    """A shift θ given to the Python API: a rational number (or its text), never NaN."""
    if isinstance(value, str):
        try:
            return parse_theta(value)
        except AbcError as e:
            raise AbcError(f"shift of '{name}': {e}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Rational | float):
        raise TypeError(f"parametrize: shifts['{name}'] must be a rational number, got "
                        f"{type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AbcError(f"shift of '{name}': θ {value} is not a finite rational")
    value = Fraction(value) if isinstance(value, float) else exact(value)
    if abs(value) > MAX_THETA:
        raise AbcError(f"shift of '{name}': θ {value} is beyond ±{MAX_THETA}")
    return value


def parse_shifts(graph: Graph, items: dict[str, str]) -> dict[str, Exp]:
    """``--shift PARAM=θ`` values as exponent shifts; unknown PARAM or bad θ is AbcError."""
    out = {}
    for name, text in items.items():
        if name not in graph.params:
            raise AbcError(f"{graph.source}: --shift {name}={text}: unknown parameter "
                           f"'{name}'")
        try:
            out[name] = parse_theta(text)
        except AbcError as e:
            raise AbcError(f"{graph.source}: --shift {name}={text}: {e}") from None
    return out


@dataclass(frozen=True)
class ParamRule:
    """The exponents of one parameter: multiplier n^-a (per use), init std n^-b,
    LR n^-c. ``fan_in``/``fan_out`` are those of its first use.

    The exponents are held as exact Fractions (``a_exp``, ``b_exp``, ``c_exp``: what the
    tables and code are written from, with no sympy); ``a_by_use``, ``a``, ``b`` and ``c``
    give them as sympy Rationals, the public API's type."""

    name: str
    role: Role
    kind: Kind
    shape: tuple[str, ...]
    uses: tuple[Use, ...]
    a_exp: dict[UseKey, Exp]
    b_exp: Exp
    c_exp: Exp

    def __post_init__(self) -> None:
        if not (isinstance(self.b_exp, Fraction) and isinstance(self.c_exp, Fraction)):
            object.__setattr__(self, "b_exp", exact(self.b_exp))
            object.__setattr__(self, "c_exp", exact(self.c_exp))
        if not all(isinstance(a, Fraction) for a in self.a_exp.values()):
            object.__setattr__(self, "a_exp", {k: exact(a) for k, a in self.a_exp.items()})

    @property
    def a_by_use(self) -> dict[UseKey, Any]:
        """Multiplier exponent a of each use (sympy Rationals)."""
        return {k: rational(a) for k, a in self.a_exp.items()}

    @property
    def a(self) -> Any:
        return rational(self.a_exp[key(self.uses[0])])

    @property
    def b(self) -> Any:
        return rational(self.b_exp)

    @property
    def c(self) -> Any:
        return rational(self.c_exp)

    @property
    def use(self) -> Use:
        return self.uses[0]


@dataclass(frozen=True)
class Parametrization:
    """A solved graph in one gauge: what the tables, code and checks render."""

    analysis: Analysis
    variant: str
    params: dict[str, ParamRule]
    shifts: dict[str, Exp] = field(default_factory=dict)
    alpha: dict[str, Exp] | None = None  # constants, when not the solver's (SP, a user's)
    # α of the branch multipliers L^-α when the graph has a depth axis (docs/depth.md);
    # None: depth is not scaled (presets, params files)
    depth_alpha: Exp | None = None

    @cached_property
    def depth(self) -> Depth:
        """Branches and every parameter's depth exponents (:mod:`abccalc.calculus.depth`)."""
        return solve_depth(self.graph, self.optimizer, self.depth_alpha)

    @property
    def graph(self) -> Graph:
        return self.analysis.graph

    @property
    def optimizer(self) -> Optimizer:
        return self.analysis.optimizer

    @property
    def constants(self) -> dict[str, Exp]:
        """Exponent α of each parameter-free constant n^-α."""
        return self.analysis.alpha if self.alpha is None else self.alpha

    def abc(self) -> ABC:
        """The (a, b, c) assignment, for :func:`abccalc.calculus.sizes.propagate`."""
        return ABC({k: a for p in self.params.values() for k, a in p.a_exp.items()},
                   {p.name: p.b_exp for p in self.params.values()},
                   {p.name: p.c_exp for p in self.params.values()}, dict(self.constants))


def from_abc(analysis: Analysis, abc: ABC, name: str) -> Parametrization:
    """A given (a, b, c) assignment (a preset or a user's params file) as a
    Parametrization named ``name``, with the solver's roles."""
    graph = analysis.graph
    rules = {}
    for pname, param in graph.params.items():
        a_by_use = {key(u): abc.a[key(u)] for u in param.uses}
        rules[pname] = ParamRule(pname, analysis.invariants[key(param.uses[0])].role,
                                 param.kind, param.shape, param.uses, a_by_use,
                                 abc.b[pname], abc.c[pname])
    return Parametrization(analysis, name, rules, alpha=dict(abc.alpha))


def _conflict(graph: Graph, variant: str, pname: str, what: str,
              invs: list[Invariants], values: list[Exp]) -> Conflict:
    uses = "; ".join(f"{v} at node '{i.use.node}' ({i.role.value})"
                     for i, v in zip(invs, values, strict=True))
    hint = " (use --variant table8, which puts a 1/fan_in multiplier on the readout use)" \
        if variant != "table8" else ""
    return Conflict(f"{graph.source}: parameter '{pname}': tied uses conflict under "
                    f"{variant}: they need {what} = {uses}{hint}")


def split_invariants(invs: list[Invariants], a_first: Exp, opt: Optimizer,
                     memo: dict[tuple, tuple] | None = None
                     ) -> tuple[Exp, Exp, dict[UseKey, Exp], bool]:
    """(b, c, a of every use, consistent) for a parameter whose first use has multiplier
    exponent ``a_first``: b and c are shared, so each use's a follows from its a+b; the
    result is consistent when every use's k·a+c then agrees too. ``memo`` keeps a
    one-use parameter's (b, c, a) by its invariants' identity (the solver hands a
    repeated block's copies the very same exponent objects) and a's value, so the
    Fraction arithmetic runs once per distinct rule, not once per parameter."""
    first = invs[0]
    if len(invs) == 1:  # one use: nothing to agree with
        exact_a = type(a_first) is int or type(a_first) is Fraction  # not ±oo or sympy
        if exact_a and memo is not None:
            k = (id(first.init), id(first.lr), a_first.numerator, a_first.denominator)
            got = memo.get(k)
            if got is None:
                got = memo[k] = (first.init - a_first, first.lr - opt.k * a_first,
                                 exact(a_first), first.init, first.lr)
            use = first.use
            return got[0], got[1], {(use.node, use.param): got[2]}, True
        return (first.init - a_first, first.lr - opt.k * a_first,
                {key(first.use): exact(a_first)}, True)
    b = first.init - a_first
    c = first.lr - opt.k * a_first
    a_by_use = {key(i.use): i.init - b for i in invs}
    consistent = all(i.lr - opt.k * a_by_use[key(i.use)] == c for i in invs)
    return b, c, a_by_use, consistent


def parametrize(analysis: Analysis, variant: str = "table3",
                shifts: dict[str, Exp] | None = None, depth_alpha: Exp = ONE
                ) -> Parametrization:
    """Apply ``variant``'s gauge, then any per-parameter abc-symmetry ``shifts`` θ:
    (a+θ, b−θ, c−kθ) with k = 2 for SGD and 1 for Adam (TP5 Lemma J.1). ``depth_alpha``
    is α of the branch multipliers L^-α if the graph has a depth axis (docs/depth.md)."""
    if variant not in GAUGES:
        raise AbcError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    graph, opt = analysis.graph, analysis.optimizer
    if shifts is not None and not isinstance(shifts, dict):
        raise TypeError(f"parametrize: shifts must be a dict of parameter name to θ, got "
                        f"{type(shifts).__name__}")
    shifts = {name: _theta(name, value) for name, value in (shifts or {}).items()}
    for name in shifts:
        if name not in graph.params:
            raise AbcError(f"{graph.source}: --shift {name}: unknown parameter '{name}'")
    gauge = GAUGES[variant]
    rules: dict[str, ParamRule] = {}
    memo: dict[tuple, tuple] = {}
    inv_of = analysis.invariants
    for pname, param in graph.params.items():
        invs = [inv_of[u.node, u.param] for u in param.uses]  # each use's key
        theta = shifts.get(pname, ZERO)
        a_first = gauge(graph, invs[0], opt)
        b, c, a_by_use, consistent = split_invariants(
            invs, a_first + theta if theta else a_first, opt, memo)
        if not consistent:
            raise _conflict(graph, variant, pname, "a+b and k·a+c of",
                            invs, [f"({i.init}, {i.lr})" for i in invs])
        if variant == "table3" and any(  # table3 fixes a on every use
                a_by_use[key(i.use)] != gauge(graph, i, opt) + theta for i in invs):
            raise _conflict(graph, variant, pname, "a+b", invs, [str(i.init) for i in invs])
        rules[pname] = _param_rule(pname, invs[0].role, param.kind, param.shape,
                                   param.uses, a_by_use, b, c)
    return Parametrization(analysis, variant, rules, shifts, depth_alpha=depth_alpha)


def _param_rule(name: str, role: Role, kind: Kind, shape: tuple[str, ...],
                uses: tuple[Use, ...], a_by_use: dict[UseKey, Exp], b: Exp, c: Exp
                ) -> ParamRule:
    """``ParamRule(...)``, made without ``__init__`` (:func:`~abccalc.graph.core.made`)
    when its exponents are Fractions already, which ``__post_init__`` would leave as they
    are."""
    if type(b) is Fraction and type(c) is Fraction and all(
            type(a) is Fraction for a in a_by_use.values()):
        return made(ParamRule, name=name, role=role, kind=kind, shape=shape, uses=uses,
                    a_exp=a_by_use, b_exp=b, c_exp=c)
    return ParamRule(name, role, kind, shape, uses, a_by_use, b, c)


def parametrize_all(analysis: Analysis, variants: tuple[str, ...] = VARIANTS,
                    shifts: dict[str, Exp] | None = None, depth_alpha: Exp = ONE
                    ) -> dict[str, Parametrization | Conflict]:
    """Every variant of ``variants`` (with the same ``shifts``); a variant that conflicts
    maps to its :class:`Conflict` instead of raising. Raises the first conflict when every
    variant conflicts."""
    out: dict[str, Parametrization | Conflict] = {}
    for name in variants:
        try:
            out[name] = parametrize(analysis, name, shifts, depth_alpha)
        except Conflict as e:
            out[name] = e
    if all(isinstance(v, Conflict) for v in out.values()):
        raise next(iter(out.values()))
    return out


def parametrize_auto(analysis: Analysis, shifts: dict[str, Exp] | None = None,
                     depth_alpha: Exp = ONE) -> tuple[Parametrization, dict[str, str]]:
    """The first variant of :data:`AUTO_ORDER` that solves without conflict, and the
    conflict message of each variant tried before it."""
    skipped: dict[str, str] = {}
    for name in AUTO_ORDER:
        try:
            return parametrize(analysis, name, shifts, depth_alpha), skipped
        except Conflict as e:
            skipped[name] = str(e)
    first = next(iter(skipped.values()))
    raise AbcError(f"--variant auto: none of {', '.join(AUTO_ORDER)} solves without a "
                   f"conflict; {AUTO_ORDER[0]}: {first}")
