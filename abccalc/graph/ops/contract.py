"""Contraction of two activations over shared dims, times a free constant n^-α
(attention scores qᵀk, attention-weighted values)."""

from __future__ import annotations

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity


class Contract(Op):
    """n^-α · Σ_over u·v; ``rename`` renames dims of the second input first."""

    name = "contract"
    fields = frozenset({"over", "rename"})
    constant = True
    same_dims = False

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 2, err)
        if not node.over:
            raise err("a contract needs the dims it sums 'over'")
        u, v = ins
        for d in node.over:
            if not (d in u and d in v):
                raise err(f"contracts over '{d}', which both inputs must have (dims "
                          f"{list(u)} and {list(v)})")
        if not node.dims:
            raise err("a contract needs its output dims")
        free = {d for d in (*u, *v) if d not in node.over}
        if set(node.dims) != free or len(set(node.dims)) != len(node.dims):
            raise err(f"output dims {list(node.dims)} must be the inputs' uncontracted dims "
                      f"{sorted(free)} (use 'rename' on the second input for key positions)")
        return Shaped(node)


CONTRACT = Contract()
