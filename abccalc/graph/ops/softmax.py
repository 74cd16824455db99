"""Softmax over finite dims, optionally causal (attention probabilities)."""

from __future__ import annotations

from dataclasses import replace

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity, same_dims


class Softmax(Op):
    """softmax over ``over`` (default: the last dim), masked to key ≤ query when
    ``causal`` names (query, key)."""

    name = "softmax"
    fields = frozenset({"over", "causal"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        out = same_dims(node, ins, err)
        over = node.over or out[-1:]
        for d in over:
            if d not in out:
                raise err(f"softmax over '{d}', which is not a dim of its input")
            if dims[d].infinite:
                raise err(f"softmax over infinite dim '{d}' is not supported "
                          "(its outputs would be Θ(1/n))")
        if node.causal:
            if len(node.causal) != 2 or not all(d in out for d in node.causal):
                raise err(f"causal names (query, key) dims of its input, got "
                          f"{list(node.causal)}")
            q, k = node.causal
            if dims[q].infinite or dims[k].infinite or dims[q].size != dims[k].size:
                raise err(f"causal dims '{q}' and '{k}' must be finite and of equal size")
        return Shaped(replace(node, dims=out, over=over))


SOFTMAX = Softmax()
