"""Mean or sum over named dims (``reduce``): global average pooling, mean over tokens."""

from __future__ import annotations

from abccalc.exponents import HALF, NEG_INF, ONE, Exp, plus
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Rule, Shaped, SizesLike, TorchCtx, arity

MODES = ("mean", "sum")


class Reduce(Op):
    """y = mean_over x, or n^-α·Σ_over x; k = the number of infinite ``over`` dims.

    - mean: an average is Θ(1) in, Θ(1) out: s0(y) = s0(x), sd(y) = sd(x) (|mean x| ≤
      rms x, tight when the coordinates share a nonzero mean; LLN). Each coordinate gets
      n^-k of the gradient: g(x) = g(y) − k, a μP readout with fixed weights n^-k.
    - sum: like a one-input ``contract`` (TP5 Table 14): s0 = −α + s0(x) + k/2
      (independent terms, CLT), sd = −α + sd(x) + k (correlated once trained, LLN);
      g(x) = g(y) − α. μP makes the trained sum Θ(1): α = st(x) + k; SP's plain sum has
      α = 0. Over finite dims both change no exponent.
    """

    name = "reduce"
    fields = frozenset({"over", "mode"})
    constant = True  # a sum's; see has_constant

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        if not node.over:
            raise err("a reduce needs the dims it reduces 'over'")
        mode = node.mode or "mean"
        if mode not in MODES:
            raise err(f"mode '{mode}' is not one of {', '.join(MODES)}")
        x = ins[0]
        for d in node.over:
            if d not in x:
                raise err(f"reduces over '{d}', which is not a dim of its input (dims "
                          f"{list(x)})")
        rest = tuple(d for d in x if d not in node.over)
        if not rest:
            raise err("a reduce must keep at least one dim (a graph's activations have dims)")
        if node.dims and sorted(node.dims) != sorted(rest):
            raise err(f"dims {list(node.dims)} must be its input's dims without 'over' "
                      f"{list(rest)}")
        return Shaped(node.with_(dims=node.dims or rest, mode=mode))

    def has_constant(self, node: Node) -> bool:
        return node.mode == "sum"

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        x = node.inputs[0]
        s0, sd = sizes.s0[x], sizes.sd.get(x, NEG_INF)
        if node.mode == "mean":
            return s0, sd
        k = sizes.graph.inf(node.over)
        return plus(-ctx.alpha, s0, HALF * k), plus(-ctx.alpha, sd, k * ONE)

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        scale = sizes.graph.inf(node.over) if node.mode == "mean" else ctx.alpha
        return [(node.inputs[0], plus(gh, -scale))]

    def mup_constant(self, sizes: SizesLike, node: Node) -> tuple[Exp, Rule, tuple[str, ...]]:
        x = node.inputs[0]
        k = sizes.graph.inf(node.over)
        st = sizes.st(x)
        rule = (f"Θ(1) once trained (LLN, as a contract): the sum over {k} infinite dim(s) "
                f"of correlated terms is n^{k}: n^(-α + st({x}) + {k}·1) with st = {st} "
                "must be Θ(1)")
        return st + k, rule, (f"size {x}",)

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Mean, or sum times its constant, over ``over``."""
        x = node.inputs[0]
        have = ctx.graph.node[x].dims
        axes = [1 + have.index(d) for d in node.over]
        dim = str(axes[0]) if len(axes) == 1 else f"({', '.join(map(str, axes))})"
        y = f"{ctx.var(x)}.{node.mode}({dim})"
        const = ctx.const(node) if node.mode == "sum" else None
        y = ctx.arrange(f"{y} * {const}" if const else y,
                        [d for d in have if d not in node.over], node.dims)
        return [f"{ctx.var(node.name)} = {y}"]


REDUCE = Reduce()
