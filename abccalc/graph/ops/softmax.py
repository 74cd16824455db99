"""Softmax over finite dims, optionally causal (attention probabilities)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, over_dims


class Softmax(Op):
    """softmax over ``over`` (default: the last dim), masked to key ≤ query when
    ``causal`` names (query, key). Over finite dims its outputs are Θ(1) whatever its
    input, and they change at most Θ(1); its Jacobian is Θ(1) (TP5 App. J):

        s0(h) = 0      sd(h) = min(0, sd(x))      g(x) ⊇ g(h)
    """

    name = "softmax"
    fields = frozenset({"over", "causal"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        out, over = over_dims(node, ins, err, "softmax")
        for d in over:
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
        return Shaped(node.with_(dims=out, over=over))

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return ZERO, min(ZERO, sizes.sd.get(node.inputs[0], NEG_INF))

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Softmax over ``over``; a causal one first masks key > query with -inf."""
        x, dims = node.inputs[0], node.dims
        z = ctx.value(x, dims)
        lines = []
        if node.causal:
            q, k = node.causal
            mask = f"{ctx.helper('causal_mask')}({ctx.size([q])}, {ctx.var(x)}.device)"
            lines.append(f"mask = {mask}{'.T' if dims.index(q) > dims.index(k) else ''}")
            index = ", ".join(":" if d in node.causal else "None" for d in dims)
            z = f"{z}.masked_fill(mask[None, {index}], float(\"-inf\"))"
        axis = 1 + dims.index(node.over[0])
        return [*lines, f"{ctx.var(node.name)} = torch.softmax({z}, dim={axis})"]


SOFTMAX = Softmax()
