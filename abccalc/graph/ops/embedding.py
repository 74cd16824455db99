"""Embedding lookup: a table row per finite id (TP5 B.1: an input weight)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity, weighted


class Embedding(Op):
    """h = E[ids]: a vector-like input weight reading the constant 1 (a one-hot id;
    TP5 B.1), fan_in 1 and fan_out its own dims, so it sums its use as a linear does
    (TP5 Table 14) with x = 1; no gradient flows into the ids:

        s0(h) = −(a+b)      sd(h) = max(ΔE entries, −(a+b) + sd(1) = −∞)
    """

    name = "embedding"
    fields = frozenset({"weight", "vocab"})
    reads_ids = True

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        if node.weight is None:
            raise err("an embedding needs a weight")
        if node.vocab is None:
            raise err("an embedding needs its 'vocab' dim")
        if dims[node.vocab].infinite:
            raise err(f"vocab dim '{node.vocab}' must be finite")
        for d in ins[0]:
            if dims[d].infinite:
                raise err(f"its input '{node.inputs[0]}' has infinite dim '{d}'; an "
                          "embedding looks up finite ids")
        missing = [d for d in ins[0] if d not in node.dims]
        if missing:
            raise err(f"output dims {list(node.dims)} drop its input's dims {missing}")
        out = tuple(d for d in node.dims if d not in ins[0])
        if not out:
            raise err("an embedding needs at least one output dim beyond its input's")
        use = Use(node.name, node.weight, Kind.WEIGHT, (), out)
        return Shaped(node, ((use, (node.vocab, *out)),))

    def operand(self, sizes: SizesLike, node: Node, use: Use) -> tuple[Exp, Exp]:
        return ZERO, NEG_INF

    def operand_label(self, node: Node, use: Use) -> str:
        return "1"

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return weighted(self, sizes, node, ctx, [], [])

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        return []

    def use_dims(self, node: Node, use: Use) -> list[str]:
        """The table's dims: (vocab, *fan_out)."""
        return [node.vocab, *use.fan_out]

    def fan_axes(self, node: Node, use: Use) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A torch.nn.Embedding weight is (vocab, fan_out)."""
        return (), (1,)

    def torch_groups(self, node: Node, use: Use, shape: tuple[str, ...]
                     ) -> list[tuple[str, ...]]:
        """A torch.nn.Embedding weight is (vocab, fan_out)."""
        return [(node.vocab,), use.fan_out]

    def torch_module(self, node: Node, ctx: TorchCtx) -> str | None:
        if not ctx.owned(node):
            return None
        out = [d for d in node.dims if d not in ctx.graph.node[node.inputs[0]].dims]
        return f"torch.nn.Embedding({ctx.size([node.vocab])}, {ctx.size(out)})"

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        ids = node.inputs[0]
        have = ctx.graph.node[ids].dims
        out = [d for d in node.dims if d not in have]
        if ctx.owned(node):
            y = f"{ctx.module(node)}({ctx.var(ids)})"
            scale = ctx.scale(node, Kind.WEIGHT)
            y = f"{y} * {scale}" if scale else y
        else:
            y = f"F.embedding({ctx.var(ids)}, {ctx.param(node, Kind.WEIGHT, [(node.vocab,), out])})"
        y = ctx.unflatten(y, out)
        return [f"{ctx.var(node.name)} = {ctx.arrange(y, [*have, *out], node.dims)}"]


EMBEDDING = Embedding()
