"""Normalizations with an optional gain and bias: layernorm and rmsnorm."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp, minus, plus
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, over_dims, weighted


class Norm(Op):
    """h = gain ⊙ x̂ + bias with x̂ = norm(x) over ``over`` (default: the last dim). x̂ is
    Θ(1) and changes as much as x does relative to its size, sd(x̂) = sd(x) − st(x); the
    gain and bias are vector-like input parameters reading x̂ and 1 (TP5 B.1), so h sums
    their uses as a linear does (TP5 Table 14). Backward, ∂L/∂x̂ is g(h) through the gain
    (plus its trained change), divided by x's size:

        g(x̂) = max(g(h) − (a+b)_gain, entries(ΔW_gain) + g(h))      g(x) ⊇ g(x̂) − st(x)
    """

    fields = frozenset({"gain", "bias", "over"})
    def torch_module(self, node: Node, ctx: TorchCtx) -> str | None:
        """``nn.LayerNorm`` / ``nn.RMSNorm`` (eps 1e-6) when it owns its gain and what bias
        it has, which they hold; else a Params."""
        owned = dict(ctx.owned(node))
        if not self.whole_module(node, owned):
            return super().torch_module(node, ctx)
        n = ctx.size(node.over)
        if self.name == "rmsnorm":
            return f"torch.nn.RMSNorm({n}, eps=1e-6)"
        return f"torch.nn.LayerNorm({n})" if node.bias else f"torch.nn.LayerNorm({n}, bias=False)"

    def whole_module(self, node: Node, owned: dict) -> bool:
        return Kind.GAIN in owned and (node.bias is None or (
            Kind.BIAS in owned and self.name == "layernorm"))

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Normalized over ``over`` (brought last and flattened), then gain and bias."""
        dims, over = node.dims, node.over
        rest = [d for d in dims if d not in over]
        x = ctx.flatten(ctx.value(node.inputs[0], [*rest, *over]), over)
        gain = ctx.scale(node, Kind.GAIN) if node.gain else None
        bias = ctx.scale(node, Kind.BIAS) if node.bias else None
        if self.whole_module(node, dict(ctx.owned(node))) and gain is None and bias is None:
            y = f"{ctx.module(node)}({x})"
        else:
            w = ctx.param(node, Kind.GAIN, [over]) if node.gain else "None"
            n = f"({ctx.size(over)},)"
            y = (f"F.layer_norm({x}, {n}, {w})" if self.name == "layernorm"
                 else f"F.rms_norm({x}, {n}, {w}, eps=1e-6)")
            if node.bias:
                y = f"{y} + {ctx.param(node, Kind.BIAS, [over])}"
        y = ctx.unflatten(y, over)
        return [f"{ctx.var(node.name)} = {ctx.arrange(y, [*rest, *over], dims)}"]

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        out, over = over_dims(node, ins, err, "normalizes")
        uses = [(Use(node.name, p, kind, (), over), over)
                for kind, p in ((Kind.GAIN, node.gain), (Kind.BIAS, node.bias))
                if p is not None]
        return Shaped(node.with_(dims=out, over=over), tuple(uses))

    def operand(self, sizes: SizesLike, node: Node, use: Use) -> tuple[Exp, Exp]:
        if use.kind is Kind.BIAS:
            return ZERO, NEG_INF
        return sizes.normalized(node.inputs[0])

    def operand_label(self, node: Node, use: Use) -> str:
        return "1" if use.kind is Kind.BIAS else "x̂"

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        x0, xd = sizes.normalized(node.inputs[0])
        return weighted(self, sizes, node, ctx, [] if node.gain else [x0],
                        [] if node.gain else [xd])

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        ghat = gh
        for use, _, _ in sizes.uses(node):
            if use.kind is Kind.GAIN:
                ghat = max(plus(gh, -ctx.init(use)), plus(ctx.entries(use), gh))
        x = node.inputs[0]
        return [(x, minus(ghat, sizes.st(x)))]


NORMS = (Norm("layernorm"), Norm("rmsnorm"))
