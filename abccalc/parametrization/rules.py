"""Exponents as the papers write them: rules in fan_in and fan_out.

An exponent e of width (n^e) is written with the parameter's infinite fan: fan_in when it
is infinite (hidden and output weights; TP5 J.2.1 "replace n with fan-in"), else fan_out
(input weights and biases). An init variance whose width exponent is 0 keeps the standard
1/fan_in (finite for input weights), as in TP5 Tables 3, 8, 9; in the ``unit`` variant
that finite factor moves into the multiplier. Biases, gains and embedding lookups have
fan_in 1 (TP5 Table 3 caption).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, ZERO, Exp, Optimizer, exact
from abccalc.graph.core import Graph, Use
from abccalc.parametrization.gauges import Parametrization, ParamRule

_SYMBOLS = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "SIGMA": "sigma", "ETA": "eta",
            "ALPHA": "alpha", "M": "m"}


def symbol(name: str) -> Any:
    """The positive sympy Symbol ``name`` (sympy is imported here, on first use)."""
    import sympy

    return sympy.Symbol(name, positive=True)


def __getattr__(name: str) -> Any:
    """FAN_IN, FAN_OUT, SIGMA, ETA, ALPHA, M: the rules' sympy symbols, made on first use so
    that writing a table never imports sympy."""
    if name in _SYMBOLS:
        return symbol(_SYMBOLS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Monomial:
    """A product of named positive quantities to exact powers, coefficient 1: the form of
    every rule (``sigma^2/(fan_in*m)``). Written as text without sympy (:meth:`text`,
    equal to :func:`fmt` of :meth:`expr`); :meth:`expr` gives the sympy expression."""

    powers: tuple[tuple[str, Exp], ...] = ()

    @staticmethod
    def of(name: str, power: Exp) -> Monomial:
        return Monomial(((name, power),) if power else ())

    def __mul__(self, other: Monomial) -> Monomial:
        out = dict(self.powers)
        for name, power in other.powers:
            out[name] = out.get(name, ZERO) + power
        return Monomial(tuple((n, e) for n, e in out.items() if e))

    def text(self) -> str:
        return _text(self.powers)

    def expr(self) -> Any:
        import sympy

        return sympy.Mul(*(symbol(n) ** sympy.Rational(e.numerator, e.denominator)
                           for n, e in self.powers))


ONE_M = Monomial()


def _power_text(name: str, power: Exp) -> str:
    """``name^power`` for a positive power: ``m``, ``sqrt(m)``, ``m^2``, ``m^(3/2)``."""
    return name if power == 1 else f"sqrt({name})" if power == HALF else \
        f"{name}^{power}" if power.denominator == 1 else f"{name}^({power})"


def _join(num: list[str], den: list[str]) -> str:
    text = "*".join(num) or "1"
    if den:
        text += "/" + (den[0] if len(den) == 1 else "(" + "*".join(den) + ")")
    return text


@lru_cache(maxsize=4096)
def _text(powers: tuple[tuple[str, Exp], ...]) -> str:
    """:func:`fmt`'s text of a monomial: tunable constants first, then names in order."""
    num, den = [], []
    for name, power in sorted(powers, key=lambda kv: _factor_order(kv[0])):
        (num if power > 0 else den).append(_power_text(name, abs(power)))
    return _join(num, den)


def width_monomial(e: Exp, k_in: int, k_out: int) -> Monomial:
    """n^e written with fan_in (preferred) or fan_out; a fan with k infinite dims is n^k."""
    if e == 0:
        return ONE_M
    if k_in:
        return Monomial.of("fan_in", e / k_in)
    if k_out:
        return Monomial.of("fan_out", e / k_out)
    raise ValueError(f"exponent {e} on a scalar-like quantity")


class ScalarLikeExponent(AbcError, ValueError):
    """A nonzero width exponent on a scalar-like parameter (no infinite fan_in or fan_out,
    TP5 App. B.2): there is no fan to write it with. μP never asks for one."""


def _scalar_like(graph: Graph, rule: ParamRule, use: Use) -> ScalarLikeExponent:
    a = rule.a_exp[(use.node, use.param)]
    return ScalarLikeExponent(
        f"{graph.source}: parameter '{rule.name}' is scalar-like (fan_in and fan_out "
        f"finite, TP5 App. B.2), so (a, b, c) = ({a}, {rule.b_exp}, {rule.c_exp}) has no "
        "fan to scale with; a scalar-like parameter takes (0, 0, 0)")


@dataclass(frozen=True)
class Rule:
    """One parameter's rules as expressions in fan_in / fan_out (sympy)."""

    init_var: Any
    multiplier: Any
    lr: Any


@dataclass(frozen=True)
class Rules:
    """One parameter's rules as monomials (init var, multiplier, LR)."""

    init_var: Monomial
    multiplier: Monomial
    lr: Monomial

    def texts(self) -> tuple[str, str, str]:
        return self.init_var.text(), self.multiplier.text(), self.lr.text()

    def exprs(self) -> Rule:
        return Rule(self.init_var.expr(), self.multiplier.expr(), self.lr.expr())


def signature(a: Exp, b: Exp, c: Exp) -> tuple[int, ...]:
    """(a, b, c) as numerator, denominator ints: a cheap cache key (hashing and comparing
    Fractions is slow, and tables and code look rules up once per parameter)."""
    return (a.numerator, a.denominator, b.numerator, b.denominator, c.numerator,
            c.denominator)


def _exps(sig: tuple[int, ...]) -> tuple[Exp, Exp, Exp]:
    return Fraction(sig[0], sig[1]), Fraction(sig[2], sig[3]), Fraction(sig[4], sig[5])


@lru_cache(maxsize=4096)
def fan_rules(unit: bool, k_in: int, k_out: int, sig: tuple[int, ...]) -> Rules:
    """The rules of a use with ``k_in``/``k_out`` infinite dims whose (a, b, c) has the
    :func:`signature` ``sig`` (``unit``: the unit variant, b = 0 moves 1/fan_in into the
    multiplier)."""
    a, b, c = _exps(sig)
    finite = ONE_M if k_in else Monomial.of("fan_in", -ONE)
    var = width_monomial(-2 * b, k_in, k_out)
    mult = width_monomial(-a, k_in, k_out)
    if unit:
        mult *= Monomial.of("fan_in", -HALF) if b == 0 and not k_in else ONE_M
    elif b == 0:
        var *= finite
    return Rules(var, mult, width_monomial(-c, k_in, k_out))


def rules_of(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rules:
    """The rules of ``rule`` at ``use`` (default: its first use), as monomials."""
    graph = p.graph
    use = use or rule.use
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    a = rule.a_exp[(use.node, use.param)]
    if not (k_in or k_out) and (a, rule.b_exp, rule.c_exp) != (0, 0, 0):
        raise _scalar_like(graph, rule, use)
    return fan_rules(p.variant == "unit", k_in, k_out, signature(a, rule.b_exp, rule.c_exp))


def rule(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rule:
    """The rules of ``rule`` at ``use`` (default: its first use), as sympy expressions."""
    return rules_of(p, rule, use).exprs()


def constant_monomial(graph: Graph, node: str, alpha: Exp) -> Monomial:
    """A parameter-free constant n^-α, written with the dim it sums over (1/d_head)."""
    n = graph.node[node]
    dims = [d for d in (*n.over, *n.dims) if graph.dims[d].infinite]
    if alpha == 0:
        return ONE_M
    if not dims:
        raise ValueError(f"constant {node} has exponent {alpha} but no infinite dim")
    return Monomial.of(dims[0], -alpha)


def constant_expr(graph: Graph, node: str, alpha: Exp) -> Any:
    """:func:`constant_monomial` as a sympy expression."""
    return constant_monomial(graph, node, alpha).expr()


TUNABLES = ("sigma", "eta", "alpha")
"""The tunable constants of the ratio form: σ (init std), η (LR), α (multiplier)."""
GREEK = {"sigma": "σ", "eta": "η", "alpha": "α"}
_GREEK_RE = re.compile(r"\b(" + "|".join(GREEK) + r")\b")


def _factor_order(base: Any) -> tuple[int, str]:
    """Tunable constants first (``sigma^2/fan_in``), then symbols by name."""
    name = str(base)
    return (0 if name in TUNABLES else 1, name)


@lru_cache(maxsize=4096)
def fmt(expr: Any) -> str:
    """ASCII form of a sympy expression, used in tables and golden files: ``1/fan_in^2``,
    ``sqrt(fan_out)``; tunable constants lead: ``sigma^2/(fan_in*m)``, ``eta*m``,
    ``alpha/m``. (:meth:`Monomial.text` writes a monomial the same way without sympy.)"""
    num, den = [], []
    for base, power in sorted(expr.as_powers_dict().items(),
                              key=lambda kv: _factor_order(kv[0])):
        if base == 1:
            continue
        if not base.is_Symbol:
            coeff = base ** power
            (num if coeff >= 1 else den).append(str(coeff if coeff >= 1 else 1 / coeff))
            continue
        (num if power > 0 else den).append(_power_text(str(base), abs(exact(power))))
    return _join(num, den)


def greek(text: str) -> str:
    """A :func:`fmt` string with the tunable constants as Greek letters (markdown):
    ``sigma^2/(fan_in*m)`` → ``σ^2/(fan_in*m)``."""
    return _GREEK_RE.sub(lambda mt: GREEK[mt.group(1)], text)


def lr_header(optimizer: Optimizer) -> str:
    """The LR row's title: the optimizer whose LR it is (a Muon setup has two)."""
    return {Optimizer.SGD: "SGD LR", Optimizer.ADAM: "Adam LR",
            Optimizer.LAMB: "LAMB LR"}.get(optimizer, "LR (Muon or AdamW)")


def sp_exponents(k_in: int) -> tuple[int, int, int]:
    """Width exponents of SP's (init var, multiplier, LR): 1/fan_in, 1, 1 (TP5 Eq. 2)."""
    return -k_in, 0, 0


def ratio_exponents(p: Parametrization, rule: ParamRule, use: Use | None = None
                    ) -> tuple[Exp, Exp, Exp]:
    """Exponents of m = fan/base_fan in (init var, multiplier, LR) relative to SP, so that
    init var = σ²·SP var·m^e₁, multiplier = α·m^e₂, LR = η·m^e₃ (TP5 Eq. 4). At the base
    width (m = 1) this is SP up to σ, α, η. ``m`` is the ratio of the parameter's infinite
    fan (fan_in if infinite, else fan_out), and a fan with k infinite dims counts as n^k."""
    graph = p.graph
    use = use or rule.use
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    a = rule.a_exp[(use.node, use.param)]
    if not (k_in or k_out):
        if (a, rule.b_exp, rule.c_exp) != (0, 0, 0):
            raise _scalar_like(graph, rule, use)
        return ZERO, ZERO, ZERO
    return ratio_of(k_in, k_out, signature(a, rule.b_exp, rule.c_exp))


@lru_cache(maxsize=4096)
def ratio_of(k_in: int, k_out: int, sig: tuple[int, ...]) -> tuple[Exp, Exp, Exp]:
    """:func:`ratio_exponents` of a use with ``k_in``/``k_out`` infinite dims (not both 0)
    and (a, b, c) of :func:`signature` ``sig``."""
    a, b, c = _exps(sig)
    k = k_in or k_out
    var0, mult0, lr0 = sp_exponents(k_in)
    return ((-2 * b - var0) / k, (-a - mult0) / k, (-c - lr0) / k)


@lru_cache(maxsize=4096)
def _ratio_rules(ev: Exp, em: Exp, el: Exp) -> Rules:
    m = Monomial.of
    return Rules(m("sigma", 2 * ONE) * m("fan_in", -ONE) * m("m", ev),
                 m("alpha", ONE) * m("m", em), m("eta", ONE) * m("m", el))


def ratio_rules(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rules:
    """The rules with base width and tunable constants, σ²·SP var·m^e, α·m^e, η·m^e, as
    monomials."""
    return _ratio_rules(*ratio_exponents(p, rule, use))


def ratio_rule(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rule:
    """:func:`ratio_rules` as sympy expressions."""
    return ratio_rules(p, rule, use).exprs()


def ratio_fan(graph: Graph, use: Use) -> tuple[str, tuple[str, ...]]:
    """The fan that ``m`` measures for ``use``: fan_in if it has an infinite dim, else
    fan_out; ``("", ())`` for a scalar-like use (no infinite fan, m = 1)."""
    if graph.inf(use.fan_in):
        return "fan_in", use.fan_in
    if graph.inf(use.fan_out):
        return "fan_out", use.fan_out
    return "", ()


def m_text(graph: Graph, use: Use) -> str:
    """``m`` of ``use`` written with its base fan: ``fan_in/256``; ``sqrt(fan_in/4096)`` for
    a fan with two infinite dims (m is the ratio per infinite dim); ``1`` if scalar-like."""
    which, dims = ratio_fan(graph, use)
    if not which:
        return "1"
    k = graph.inf(dims)
    ratio = f"{which}/{graph.size(dims)}"
    return ratio if k == 1 else f"sqrt({ratio})" if k == 2 else f"({ratio})^(1/{k})"


def base_widths(graph: Graph) -> list[tuple[str, int, str]]:
    """``(dim, base size, note)`` per infinite dim; the note says what a ``times`` dim
    follows (``4 × d_model``)."""
    out = []
    for d in graph.dims.values():
        if d.infinite:
            note = "" if d.of is None else f"{d.times} × {d.of}"
            out.append((d.name, d.size, note))
    return out
