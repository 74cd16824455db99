"""Sum of activations of equal dims (a residual connection)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, Exp
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, arity, same_dims


class Add(Op):
    """h = x₁ + … + x_k. Sizes add as maxima (a sum of Θ(n^s) terms is Θ(n^max s) unless
    they cancel, which generic parametrizations do not; TP4 §3):

        s0(h) = max s0(xᵢ)      sd(h) = max sd(xᵢ)      g(xᵢ) ⊇ g(h)
    """

    name = "add"
    is_sum = True

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, None, err, at_least=2)
        return Shaped(node.with_(dims=same_dims(node, ins, err)))

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return (max(sizes.s0[i] for i in node.inputs),
                max(sizes.sd.get(i, NEG_INF) for i in node.inputs))

    torch_forward = "y = sum(xs[1:], xs[0])"


ADD = Add()
