"""Sum of activations of equal dims (a residual connection)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, Exp
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity, same_dims


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

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """A residual branch add under a depth axis multiplies each branch input, never
        the stream, by its constant: x + L^-α·f(x) (TP6 Eq. 1; docs/depth.md)."""
        mult, stream = ctx.const(node), ctx.stream(node)
        terms = [ctx.value(x, node.dims) for x in node.inputs]
        if mult is not None:
            terms = [t if i == stream else f"{mult} * {ctx.atom(t)}"
                     for i, t in enumerate(terms)]
        return [f"{ctx.var(node.name)} = {' + '.join(terms)}"]


ADD = Add()
