"""Coordinatewise product of two activations (a gate)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, Exp, plus
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity, same_dims


class Multiply(Op):
    """h = u ⊙ v. Sizes multiply, so exponents add (TP4 §3); the change is the product
    rule's largest term, and each input's gradient is g(h) times the other's size:

        s0(h) = s0(u) + s0(v)      sd(h) = max(sd(u) + st(v), st(u) + sd(v))
        g(u) ⊇ g(h) + st(v)        g(v) ⊇ g(h) + st(u)
    """

    name = "multiply"

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 2, err)
        return Shaped(node.with_(dims=same_dims(node, ins, err)))

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        u, v = node.inputs
        return plus(sizes.s0[u], sizes.s0[v]), changed_product(sizes, u, v)

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        u, v = node.inputs
        return [(u, plus(gh, sizes.st(v))), (v, plus(gh, sizes.st(u)))]

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        u, v = (ctx.value(x, node.dims) for x in node.inputs)
        return [f"{ctx.var(node.name)} = {u} * {v}"]


def changed_product(sizes: SizesLike, u: str, v: str) -> Exp:
    """Size of Δ(u·v) by the product rule: max(Δu·v, u·Δv) at training-time sizes."""
    return max(plus(sizes.sd.get(u, NEG_INF), sizes.st(v)),
               plus(sizes.st(u), sizes.sd.get(v, NEG_INF)))


MULTIPLY = Multiply()
