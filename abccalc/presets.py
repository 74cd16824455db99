"""Named parametrizations that are not μP, for contrast and classification.

``sp`` is PyTorch's default (TP4 Eq. SP; TP5 Eq. 2): no multipliers, init variance
1/fan_in (b = ½ on an infinite fan_in), biases Θ(1), a width-independent LR (c = 0).
"""

from __future__ import annotations

from abccalc.calculus import HALF, ZERO
from abccalc.dynamics import key
from abccalc.graph import Kind
from abccalc.parametrization import Parametrization, ParamRule
from abccalc.solver import Analysis


def sp(analysis: Analysis) -> Parametrization:
    """The standard parametrization of ``analysis.graph`` (TP4 Table 1, SP column, c = 0)."""
    graph = analysis.graph
    rules = {}
    for name, param in graph.params.items():
        use = param.uses[0]
        b = HALF * graph.inf(use.fan_in) if param.kind is Kind.WEIGHT else ZERO
        rules[name] = ParamRule(name, analysis.invariants[key(use)].role, param.kind,
                                param.shape, param.uses, {key(u): ZERO for u in param.uses},
                                b, ZERO)
    return Parametrization(analysis, "sp", rules)
