"""Coordinatewise product of two activations (a gate)."""

from __future__ import annotations

from dataclasses import replace

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity, same_dims


class Multiply(Op):
    """u ⊙ v."""

    name = "multiply"

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 2, err)
        return Shaped(replace(node, dims=same_dims(node, ins, err)))


MULTIPLY = Multiply()
