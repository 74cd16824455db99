"""A named part of a dim (``slice``): q, k, v of a fused QKV projection, the two halves of
a GLU, the CLS token of the tokens."""

from __future__ import annotations

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, TorchCtx, arity


class Slice(Op):
    """y = part ``index`` of x's dim ``along``, cut in order into ``parts``. Its coordinates
    are some of x's, so s0 and sd are x's, and the gradient flows back into that part,
    g(x) = g(y) (the default rules)."""

    name = "slice"
    fields = frozenset({"along", "parts", "index"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        x = ins[0]
        if node.along is None or node.along not in x:
            raise err(f"a slice needs 'along', a dim of its input (dims {list(x)})")
        if len(node.parts) < 2:
            raise err("a slice needs the 'parts' (two or more dims) its 'along' dim is cut "
                      "into")
        index = 0 if node.index is None else node.index
        if not 0 <= index < len(node.parts):
            raise err(f"index {index} is not a part: there are {len(node.parts)} parts")
        whole = dims[node.along]
        if any(dims[d].infinite != whole.infinite for d in node.parts):
            raise err(f"the parts {list(node.parts)} must all be "
                      f"{'infinite' if whole.infinite else 'finite'}, as '{node.along}' is")
        total = sum(dims[d].size for d in node.parts)
        if total != whole.size:
            raise err(f"the parts {list(node.parts)} add up to {total}, but '{node.along}' "
                      f"has {'base ' if whole.infinite else ''}size {whole.size}")
        part = node.parts[index]
        if part in x:
            raise err(f"part '{part}' is already a dim of its input; name the part "
                      "differently")
        out = tuple(part if d == node.along else d for d in x)
        if node.dims and sorted(node.dims) != sorted(out):
            raise err(f"dims {list(node.dims)} must be its input's with '{node.along}' cut "
                      f"to '{part}': {list(out)}")
        return Shaped(node.with_(dims=node.dims or out, index=index))

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Part ``index`` of ``along``: the parts before it are skipped."""
        x = node.inputs[0]
        have = ctx.graph.node[x].dims
        part = node.parts[node.index]
        start = " + ".join(ctx.size([d]) for d in node.parts[:node.index]) or "0"
        y = f"{ctx.var(x)}.narrow({1 + have.index(node.along)}, {start}, {ctx.size([part])})"
        out = [part if d == node.along else d for d in have]
        return [f"{ctx.var(node.name)} = {ctx.arrange(y, out, node.dims)}"]


SLICE = Slice()
