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
from functools import lru_cache

import sympy

from abccalc.errors import AbcError
from abccalc.exponents import ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Use
from abccalc.parametrization.gauges import Parametrization, ParamRule

FAN_IN = sympy.Symbol("fan_in", positive=True)
FAN_OUT = sympy.Symbol("fan_out", positive=True)


@lru_cache(maxsize=4096)
def width_expr(e: Exp, k_in: int, k_out: int) -> sympy.Expr:
    """n^e written with fan_in (preferred) or fan_out; a fan with k infinite dims is n^k."""
    if e == 0:
        return sympy.Integer(1)
    if k_in:
        return FAN_IN ** (e / k_in)
    if k_out:
        return FAN_OUT ** (e / k_out)
    raise ValueError(f"exponent {e} on a scalar-like quantity")


class ScalarLikeExponent(AbcError, ValueError):
    """A nonzero width exponent on a scalar-like parameter (no infinite fan_in or fan_out,
    TP5 App. B.2): there is no fan to write it with. μP never asks for one."""


def _scalar_like(graph: Graph, rule: ParamRule, use: Use) -> ScalarLikeExponent:
    a = rule.a_by_use[(use.node, use.param)]
    return ScalarLikeExponent(
        f"{graph.source}: parameter '{rule.name}' is scalar-like (fan_in and fan_out "
        f"finite, TP5 App. B.2), so (a, b, c) = ({a}, {rule.b}, {rule.c}) has no fan to "
        "scale with; a scalar-like parameter takes (0, 0, 0)")


@dataclass(frozen=True)
class Rule:
    """One parameter's rules as expressions in fan_in / fan_out."""

    init_var: sympy.Expr
    multiplier: sympy.Expr
    lr: sympy.Expr


def rule(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rule:
    """The rules of ``rule`` at ``use`` (default: its first use)."""
    graph = p.graph
    use = use or rule.use
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    a = rule.a_by_use[(use.node, use.param)]
    finite = sympy.Integer(1) if k_in else 1 / FAN_IN
    if not (k_in or k_out) and (a, rule.b, rule.c) != (0, 0, 0):
        raise _scalar_like(graph, rule, use)
    var = width_expr(-2 * rule.b, k_in, k_out)
    mult = width_expr(-a, k_in, k_out)
    if p.variant == "unit":
        mult *= sympy.sqrt(finite) if rule.b == 0 else 1
    elif rule.b == 0:
        var *= finite
    return Rule(var, mult, width_expr(-rule.c, k_in, k_out))


def constant_expr(graph: Graph, node: str, alpha: Exp) -> sympy.Expr:
    """A parameter-free constant n^-α, written with the dim it sums over (1/d_head)."""
    n = graph.node[node]
    dims = [d for d in (*n.over, *n.dims) if graph.dims[d].infinite]
    if alpha == 0:
        return sympy.Integer(1)
    if not dims:
        raise ValueError(f"constant {node} has exponent {alpha} but no infinite dim")
    return sympy.Symbol(dims[0], positive=True) ** (-alpha)


TUNABLES = ("sigma", "eta", "alpha")
"""The tunable constants of the ratio form: σ (init std), η (LR), α (multiplier)."""
GREEK = {"sigma": "σ", "eta": "η", "alpha": "α"}
_GREEK_RE = re.compile(r"\b(" + "|".join(GREEK) + r")\b")


def _factor_order(base: sympy.Expr) -> tuple[int, str]:
    """Tunable constants first (``sigma^2/fan_in``), then symbols by name."""
    name = str(base)
    return (0 if name in TUNABLES else 1, name)


@lru_cache(maxsize=4096)
def fmt(expr: sympy.Expr) -> str:
    """ASCII form used in tables and golden files: ``1/fan_in^2``, ``sqrt(fan_out)``;
    tunable constants lead: ``sigma^2/(fan_in*m)``, ``eta*m``, ``alpha/m``."""
    num, den = [], []
    for base, power in sorted(expr.as_powers_dict().items(),
                              key=lambda kv: _factor_order(kv[0])):
        if base == 1:
            continue
        if not base.is_Symbol:
            coeff = base ** power
            (num if coeff >= 1 else den).append(str(coeff if coeff >= 1 else 1 / coeff))
            continue
        target = num if power > 0 else den
        power = abs(power)
        target.append(str(base) if power == 1 else f"sqrt({base})" if power == sympy.S.Half
                      else f"{base}^{power}" if power.is_Integer else f"{base}^({power})")
    text = "*".join(num) or "1"
    if den:
        text += "/" + (den[0] if len(den) == 1 else "(" + "*".join(den) + ")")
    return text


def greek(text: str) -> str:
    """A :func:`fmt` string with the tunable constants as Greek letters (markdown):
    ``sigma^2/(fan_in*m)`` → ``σ^2/(fan_in*m)``."""
    return _GREEK_RE.sub(lambda mt: GREEK[mt.group(1)], text)


def lr_header(optimizer: Optimizer) -> str:
    return "SGD LR" if optimizer is Optimizer.SGD else "Adam LR"


SIGMA, ETA, ALPHA = sympy.symbols("sigma eta alpha", positive=True)
M = sympy.Symbol("m", positive=True)


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
    k = k_in or k_out
    a = rule.a_by_use[(use.node, use.param)]
    if not k:
        if (a, rule.b, rule.c) != (0, 0, 0):
            raise _scalar_like(graph, rule, use)
        return ZERO, ZERO, ZERO
    var0, mult0, lr0 = sp_exponents(k_in)
    return ((-2 * rule.b - var0) / k, (-a - mult0) / k, (-rule.c - lr0) / k)


def ratio_rule(p: Parametrization, rule: ParamRule, use: Use | None = None) -> Rule:
    """The rules with base width and tunable constants: σ²·SP var·m^e, α·m^e, η·m^e."""
    ev, em, el = ratio_exponents(p, rule, use)
    return Rule(SIGMA**2 / FAN_IN * M**ev, ALPHA * M**em, ETA * M**el)


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
