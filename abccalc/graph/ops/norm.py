"""Normalizations with an optional gain and bias: layernorm and rmsnorm."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp, minus, plus
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, over_dims, weighted


class Norm(Op):
    """h = gain ⊙ x̂ + bias with x̂ = norm(x) over ``over`` (default: the last dim). x̂ is
    Θ(1) and changes as much as x does relative to its size, sd(x̂) = sd(x) − st(x); the
    gain and bias are vector-like input parameters reading x̂ and 1 (TP5 B.1), so h sums
    their uses as a linear does (TP5 Table 14). Backward, ∂L/∂x̂ is g(h) through the gain
    (plus its trained change), divided by x's size:

        g(x̂) = max(g(h) − (a+b)_gain, entries(ΔW_gain) + g(h))      g(x) ⊇ g(x̂) − st(x)
    """

    fields = frozenset({"gain", "bias", "over"})
    torch_forward = "y = self._norm(n, xs[0])"
    torch_methods = '''
    def _norm(self, n: dict, x: torch.Tensor) -> torch.Tensor:
        dims, over = n["dims"], n["over"]
        rest = [d for d in dims if d not in over]
        x = _to(x, dims, rest + over)
        lead = x.shape[: 1 + len(rest)]
        x = x.reshape(*lead, -1)
        if n["op"] == "layernorm":
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        else:
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        if "gain" in n:
            x = x * self._param(n, "gain").reshape(-1)
        if "bias" in n:
            x = x + self._param(n, "bias").reshape(-1)
        x = x.reshape(*lead, *(self.sizes[d] for d in over))
        return _to(x, rest + over, dims)
'''

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
