"""A change of dim names over the same coordinates (``reshape``): a sliced part split into
heads, a size-1 part squeezed away."""

from __future__ import annotations

import math

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity


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

    torch_forward = "y = self._reshape(n, xs[0], ins[0])"
    torch_methods = '''
    def _reshape(self, n: dict, x: torch.Tensor, have: list[str]) -> torch.Tensor:
        """The dims it keeps first, then the dropped ones regrouped into the added ones."""
        s, dims = self.sizes, n["dims"]
        kept = [d for d in have if d in dims]
        added = [d for d in dims if d not in have]
        x = _to(x, have, kept + [d for d in have if d not in dims])
        y = x.reshape(*x.shape[: 1 + len(kept)], *(s[d] for d in added))
        return _to(y, kept + added, dims)
'''


RESHAPE = Reshape()
