"""A learned tensor with no input (``param``): a CLS token, learned queries, register tokens,
a position table used without an index input."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity


class Param(Op):
    """y = n^-a·w, w of shape ``dims``: a use that reads the constant 1, fan_in 1 and
    fan_out ``dims`` (TP5 B.1: a vector-like input weight when a dim is infinite, else
    scalar-like, TP5 B.2).

    Forward: s0 = −(a+b) (its entries); sd = the update ΔW: Adam −(a+c) (TP4b), SGD
    −(2a+c) + g(y). So μP has a + b = 0 and Adam a + c = 0, SGD 2a + c = g(y), which is −1
    when it feeds the width: (0, 0, 0) / (0, 0, −1) in Table 3's and Table 8's gauges, an
    input weight's column (TP5 Table 3). No gradient flows on: it has no input.
    """

    name = "param"
    fields = frozenset({"weight"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 0, err)
        if node.weight is None:
            raise err("a param needs its 'weight' (the parameter's name)")
        if not node.dims:
            raise err("a param needs its dims (the parameter's shape)")
        if len(set(node.dims)) != len(node.dims):
            raise err(f"dims {list(node.dims)} repeat a dim")
        use = Use(node.name, node.weight, Kind.WEIGHT, (), node.dims)
        return Shaped(node, ((use, node.dims),))

    def operand(self, sizes: SizesLike, node: Node, use: Use) -> tuple[Exp, Exp]:
        return ZERO, NEG_INF

    def operand_label(self, node: Node, use: Use) -> str:
        return "1"

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        ((use, _, _),) = sizes.uses(node)
        return -ctx.init(use), ctx.update(use)

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        return []

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Stored flat on a Params module (``<node>.weight``), the same for every example."""
        w = ctx.param(node, Kind.WEIGHT, [(d,) for d in node.dims])
        w = ctx.atom(w)
        keep = ", ".join("-1" for _ in node.dims)
        return [f"{ctx.var(node.name)} = {w}.expand({ctx.batch()}, {keep})"]


PARAM = Param()
