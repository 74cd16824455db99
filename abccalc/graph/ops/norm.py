"""Normalizations with an optional gain and bias: layernorm and rmsnorm."""

from __future__ import annotations

from dataclasses import replace

from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Err, Op, Shaped, arity, same_dims


class Norm(Op):
    """x̂ = norm(x) over ``over`` (default: the last dim), then gain ⊙ x̂ + bias."""

    fields = frozenset({"gain", "bias", "over"})

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        out = same_dims(node, ins, err)
        over = node.over or out[-1:]
        for d in over:
            if d not in out:
                raise err(f"normalizes over '{d}', which is not a dim of its input")
        uses = [(Use(node.name, p, kind, (), over), over)
                for kind, p in ((Kind.GAIN, node.gain), (Kind.BIAS, node.bias))
                if p is not None]
        return Shaped(replace(node, dims=out, over=over), tuple(uses))


NORMS = (Norm("layernorm"), Norm("rmsnorm"))
