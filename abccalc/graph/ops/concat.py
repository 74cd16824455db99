"""Join activations along a named dim (``concat``): a CLS token prepended to the patches,
multi-branch features."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, Exp
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity


class Concat(Op):
    """y = [x₁; x₂; …] along ``along``. The output's coordinates are its inputs', so its
    sizes are the largest input's (s0 = max s0, sd = max sd; TP5 Def. J.1 averages
    squares) and each input gets its own part of the gradient, g(xᵢ) = g(y)."""

    name = "concat"
    fields = frozenset({"along"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        """Each input has the output's other dims and at most one dim of its own (its
        part; none for one slice, a CLS token); the parts add up to ``along``."""
        arity(node, None, err, at_least=2)
        if node.along is None:
            raise err("a concat needs the dim it joins 'along'")
        if not node.dims or node.along not in node.dims:
            raise err(f"a concat needs its output dims, including 'along' ('{node.along}')")
        rest = [d for d in node.dims if d != node.along]
        total, kinds = 0, set()
        for name, x in zip(node.inputs, ins, strict=True):
            missing = [d for d in rest if d not in x]
            own = [d for d in x if d not in rest]
            if missing or len(own) > 1:
                raise err(f"input '{name}' (dims {list(x)}) must have the dims {rest} and "
                          f"at most one dim of its own along '{node.along}'")
            total += dims[own[0]].size if own else 1
            kinds.add(dims[own[0]].infinite if own else False)
        out = dims[node.along]
        if kinds != {out.infinite}:
            raise err(f"the inputs' parts along '{node.along}' must all be "
                      f"{'infinite' if out.infinite else 'finite'}, as '{node.along}' is")
        if total != out.size:
            raise err(f"the inputs' parts along '{node.along}' add up to {total}, but "
                      f"'{node.along}' has {'base ' if out.infinite else ''}size {out.size}")
        return Shaped(node)

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return (max(sizes.s0[i] for i in node.inputs),
                max(sizes.sd.get(i, NEG_INF) for i in node.inputs))

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Each input in the output's dim order (its own part dim at ``along``, a one-slice
        input given a size-1 axis there), joined along ``along``."""
        dims, along = node.dims, node.along
        axis = 1 + dims.index(along)
        parts = []
        for x in node.inputs:
            own = [d for d in ctx.graph.node[x].dims if d not in dims]
            if own:
                parts.append(ctx.value(x, [own[0] if d == along else d for d in dims]))
            else:
                y = ctx.value(x, [d for d in dims if d != along])
                parts.append(f"{y}.unsqueeze({axis})")
        return [f"{ctx.var(node.name)} = torch.cat([{', '.join(parts)}], dim={axis})"]


CONCAT = Concat()
