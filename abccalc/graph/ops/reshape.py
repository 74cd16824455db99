"""A change of dim names over the same coordinates (``reshape``): a sliced part split into
heads, a size-1 part squeezed away."""

from __future__ import annotations

import math

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, TorchCtx, arity


class Reshape(Op):
    """y = x with some dims regrouped: the dims x drops and those y adds have equal products
    of (base) sizes and equally many infinite dims, so y holds x's coordinates: s0, sd and g
    are x's (the default rules; TP4 §3, a reshape is the identity on coordinates)."""

    name = "reshape"
    same_dims = False

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        x, out = ins[0], node.dims
        if not out or len(set(out)) != len(out):
            raise err("a reshape needs its output dims, each once")
        dropped = [d for d in x if d not in out]
        added = [d for d in out if d not in x]
        size = lambda ds: math.prod(dims[d].size for d in ds)  # noqa: E731
        inf = lambda ds: sum(dims[d].infinite for d in ds)  # noqa: E731
        if size(dropped) != size(added) or inf(dropped) != inf(added):
            raise err(f"reshapes {dropped} into {added}: they must have the same product "
                      "of sizes and as many infinite dims")
        return Shaped(node)

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """The dims it keeps first, then the dropped ones made one axis and split into the
        added ones (a size-1 dim squeezed away or added)."""
        x = node.inputs[0]
        have, out = ctx.graph.node[x].dims, node.dims
        kept = [d for d in have if d in out]
        dropped = [d for d in have if d not in out]
        added = [d for d in out if d not in have]
        y = ctx.flatten(ctx.value(x, kept + dropped), dropped)
        if not dropped:
            y = f"{ctx.atom(y)}.unsqueeze(-1)"
        if not added:
            y = f"{ctx.atom(y)}.squeeze(-1)"
        y = ctx.unflatten(y, added)
        return [f"{ctx.var(node.name)} = {ctx.arrange(y, kept + added, out)}"]


RESHAPE = Reshape()
