"""The static depth check of ``check``: depth counted twice in a residual branch.

GPT-2 initializes each output projection with std 0.02/√(2·n_layer), so that the residual
stream's variance at init stays O(1) without a branch multiplier. On a depth axis
(docs/depth.md) each branch already carries the multiplier L^-α (TP6 Eq. 1, CompleteP
Table 1), which does the same job: with both, the branch's output at init shrinks like
L^-(α+½) and its updates by an extra factor, so depth is counted twice. ``check`` assumes
the branch multipliers of the depth axis are applied (codegen's ``BRANCH_MULTIPLIER``).
"""

from __future__ import annotations

from abccalc.calculus.depth import solve_depth
from abccalc.exponents import Exp, Optimizer
from abccalc.graph.core import Graph


def double_counted(graph: Graph, optimizer: Optimizer, depth_init: dict[str, Exp]
                   ) -> list[str]:
    """One finding per parameter inside a residual branch whose init_var rule scales with
    the depth L, each with its fix."""
    if not graph.depth or not depth_init:
        return []
    d = solve_depth(graph, optimizer)
    value = graph.depth[0][1]
    out = []
    for pname, e in depth_init.items():
        add = d.params[pname].branch
        if add is None:
            continue
        std = -e / 2
        out.append(f"{pname}: its init var scales like {value}^{e} (GPT-2's std "
                   f"0.02/sqrt(2·{value}) gives {value}^-1) inside the residual "
                   f"branch of '{add}', which already carries the branch multiplier L^-α: "
                   f"depth is counted twice (the branch's output at init shrinks like "
                   f"L^-(α+{std}) instead of L^-α). Fix: drop {value} from its init_var "
                   "(σ²/fan_in as μP's) and keep the branch multiplier (docs/depth.md §5)")
    return out
