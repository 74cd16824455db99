"""A parameter-free multiplier n^-α·x (a tunable ``value`` times a width power)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, Exp, fmt_exp, plus
from abccalc.graph.core import Node
from abccalc.graph.ops.base import Ctx, Op, Rule, SizesLike, TorchCtx


class Scale(Op):
    """h = value · n^-α · x: a free constant (TP5 App. B.1: a multiplier with no
    parameter). Sizes shift by −α both ways:

        s0(h) = −α + s0(x)      sd(h) = −α + sd(x)      g(x) ⊇ −α + g(h)

    μP keeps h Θ(1) in training, α = st(x); SP writes no width power, α = 0.
    """

    name = "scale"
    fields = frozenset({"value"})
    constant = True
    only_multiplies = True  # a model's own m·x next to a linear is that linear's multiplier

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        x = node.inputs[0]
        return plus(-ctx.alpha, sizes.s0[x]), plus(-ctx.alpha, sizes.sd.get(x, NEG_INF))

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        return [(node.inputs[0], plus(gh, -ctx.alpha))]

    def mup_constant(self, sizes: SizesLike, node: Node) -> tuple[Exp, Rule, tuple[str, ...]]:
        x = node.inputs[0]
        return (sizes.st(x),
                f"Θ(1) during training: n^(-α + st({x})) with st = {fmt_exp(sizes.st(x))}",
                (f"size {x}",))

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        x, const = ctx.value(node.inputs[0], node.dims), ctx.const(node)
        return [f"{ctx.var(node.name)} = {x} * {const}" if const
                else f"{ctx.var(node.name)} = {x}"]


SCALE = Scale()
