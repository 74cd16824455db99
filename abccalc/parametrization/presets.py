"""Named parametrizations that are not μP, for contrast and classification.

``sp`` is PyTorch's default (TP4 Eq. SP; TP5 Eq. 2): no multipliers, init variance
1/fan_in (b = ½ on an infinite fan_in), biases Θ(1), a width-independent LR (c = 0).
:data:`PRESETS` gives SP, NTP, MFP and μP as abc assignments on any graph (TP4 Table 1),
for ``abccalc classify --preset``.
"""

from __future__ import annotations

from collections.abc import Callable

from abccalc.calculus.sizes import ABC, key
from abccalc.calculus.solver import Analysis, role_of, solve
from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Kind, Role
from abccalc.graph.ops import OPS
from abccalc.parametrization.gauges import Parametrization, from_abc, parametrize


def sp(analysis: Analysis) -> Parametrization:
    """The standard parametrization of ``analysis.graph`` (TP4 Table 1, SP column, c = 0),
    with 1/sqrt(d) attention."""
    return from_abc(analysis, sp_abc(analysis.graph, analysis.optimizer), "sp")


# -- presets as abc assignments on any graph (for ``abccalc classify --preset``) -------------
#
# TP4 Table 1 (SGD, one global c) and TP4b (Adam), generalized by role (TP5 Table 3
# columns): "input" is l = 1 (input weights, embeddings, every bias and gain: TP5 B.1),
# "hidden" is 2 ≤ l ≤ L, "output" is l = L+1; k_in counts the infinite fan_in dims, so a
# rule n^{1/2} for a hidden weight becomes n^{k_in/2}. Parameter-free constants get the
# standard 1/√d over an infinite contracted dim (what SP/NTP code does), except in μP.

def _by_role(graph: Graph,
             a_of: Callable[[Role, Kind, int, int], Exp],
             b_of: Callable[[Role, Kind, int, int], Exp],
             c_of: Callable[[Role, Kind, int, int], Exp]) -> ABC:
    a, b, c = {}, {}, {}
    for name, param in graph.params.items():
        for use in param.uses:
            a[key(use)] = a_of(role_of(graph, use), use.kind, graph.inf(use.fan_in),
                               graph.inf(use.fan_out))
        first = param.uses[0]
        args = (role_of(graph, first), first.kind, graph.inf(first.fan_in),
                graph.inf(first.fan_out))
        b[name], c[name] = b_of(*args), c_of(*args)
    alpha = {n.name: OPS[n.op].sp_constant(graph, n)
             for n in graph.order if OPS[n.op].has_constant(n)}
    return ABC(a, b, c, alpha)


def _weight(role: Role, kind: Kind) -> bool:
    return kind is Kind.WEIGHT and role in (Role.HIDDEN, Role.OUTPUT)


def sp_abc(graph: Graph, optimizer: Optimizer) -> ABC:
    """SP (TP4 Eq. SP; TP4b Ex. 2.2.2): a = 0; init variance 1/fan_in (b = ½ per infinite
    fan_in dim, b = 0 for input weights, biases and gains); a width-independent LR, c = 0
    (too large: TP4 Thm 4.1, TP4b Remark 2.2.7). TP4 Table 1's column is SP with LR 1/n."""
    return _by_role(graph,
                    lambda r, kind, ki, ko: ZERO,
                    lambda r, kind, ki, ko: HALF * ki if kind is Kind.WEIGHT else ZERO,
                    lambda r, kind, ki, ko: ZERO)


def ntk_abc(graph: Graph, optimizer: Optimizer) -> ABC:
    """NTP (TP4 §1 and Table 1; TP4b Def. 2.4.1): multiplier 1/√fan_in on hidden and output
    weights (a = ½ per infinite fan_in dim), 1 on input weights, biases and gains; b = 0;
    SGD c = 0; Adam c = ½ per infinite dim of the fans (hidden 1, input ½, output ½)."""
    return _by_role(graph,
                    lambda r, kind, ki, ko: HALF * ki if _weight(r, kind) else ZERO,
                    lambda r, kind, ki, ko: ZERO,
                    lambda r, kind, ki, ko: ZERO if optimizer is Optimizer.SGD
                    else HALF * (ki + ko))


def mf_abc(graph: Graph, optimizer: Optimizer) -> ABC:
    """MFP (TP4 §1 and Table 1, 1-hidden-layer nets): b = 0; multiplier 1 on input weights,
    biases and gains and 1/fan_in on output weights (a = inf(fan_in)); SGD c = −1.

    TP4 defines MFP for L = 1 only. Hidden weights (L > 1) get a = ½ per infinite fan_in
    dim, the one choice with b = 0 and c = −1 that keeps them Θ(1) at init and updated
    maximally, so on an MLP of any depth this is μP in the b = 0 gauge (TP4 Eq. 5: "µP for
    a 1-hidden-layer perceptron is equivalent to the mean field parametrization"). Adam
    (no MFP in TP4b) uses the same a and b with c = 0 (input, output) and ½·k_in (hidden),
    μP's a + c. Scalar-like parameters (an output bias) keep c = 0 (TP5 B.2)."""
    def c_of(r: Role, kind: Kind, ki: int, ko: int) -> Exp:
        if r is Role.SCALAR:  # scalar-like: constant LR (TP5 B.2), as in μP
            return ZERO
        if optimizer is Optimizer.SGD:
            return -ONE
        return HALF * ki if r is Role.HIDDEN else ZERO

    return _by_role(graph,
                    lambda r, kind, ki, ko: (ki * ONE if r is Role.OUTPUT else HALF * ki)
                    if _weight(r, kind) else ZERO,
                    lambda r, kind, ki, ko: ZERO, c_of)


def mup_abc(graph: Graph, optimizer: Optimizer) -> ABC:
    """μP as the solver derives it, in TP4's gauge (TP4 Def. 5.1 and App. C.1; TP5 Table 9):
    SGD c = 0, b = ½ on every infinite fan; the attention constant 1/d (TP5 Def. 4.1).
    Tied parameters that TP4's gauge cannot serve get Table 8's."""
    analysis = solve(graph, optimizer)
    try:
        return parametrize(analysis, "tp4").abc()
    except AbcError:  # tied uses TP4's gauge cannot reach: the same μP in Table 8's
        return parametrize(analysis, "table8").abc()


PRESETS: dict[str, Callable[[Graph, Optimizer], ABC]] = {
    "sp": sp_abc,
    "ntk": ntk_abc,
    "mf": mf_abc,
    "mup": mup_abc,
}
