"""Sum of activations of equal dims (a residual connection)."""

from __future__ import annotations

from dataclasses import replace

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity, same_dims


class Add(Op):
    """x₁ + … + x_k."""

    name = "add"

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, None, err, at_least=2)
        return Shaped(replace(node, dims=same_dims(node, ins, err)))


ADD = Add()
