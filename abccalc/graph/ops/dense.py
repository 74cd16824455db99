"""Dense weights: ``linear`` (h = W·x over the ``in`` dims) and ``conv`` (TP5 J.2.1: a
Θ(1)-sized collection of dense weights, one per kernel offset).

For a use h = W·x with W = n^-a·w, w ~ N(0, n^-2b), init = a+b, k_in/k_out infinite
fan_in/fan_out dims (TP4 §3, §5; TP5 App. J, Table 14; :mod:`abccalc.exponents`):

    s0(h) = −init + k_in/2 + s0(x)                                    (CLT)
    sd(h) = max(ΔW·x, −init + κ·k_in + sd(x))     κ = ½ matrix-like, 1 vector-like readout
    g(x) ⊇ −init + k_out/2 + g(h),  ΔW entries + k_out + g(h)         (CLT; LLN once trained)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abccalc.exponents import Exp, backward_term, dw_backward_term
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, arity, weighted

if TYPE_CHECKING:
    from abccalc.graph.core import Graph

# the generated Model's module for a dense weight: (fan_in, out) as PyTorch counts them
_FANS = """\
out = math.prod(s[d] for d in n["dims"] if d not in n["batch"])
fan_in = math.prod(s[d] for d in n["in_dims"])
"""


LAYOUTS = ("out_in", "in_out")


class Linear(Op):
    """h = W·x (+ b): W has dims (out, in); ``in`` defaults to the input's last dim and the
    other input dims (batch, tokens) are kept. ``mode`` is how the tensor is stored:
    ``out_in`` (the default, ``nn.Linear``) or ``in_out`` (``x @ W``, Hugging Face's
    ``Conv1D``): it decides which axis of the tensor is fan_in, not any exponent."""

    name = "linear"
    fields = frozenset({"weight", "bias", "in_dims", "mode"})
    same_dims = False

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        if node.mode not in (None, *LAYOUTS):
            raise err(f"mode '{node.mode}' is not a weight layout ({', '.join(LAYOUTS)})")
        in_dims, out = self.dense_dims(node, ins, err)
        sh = self.shaped(node, in_dims, out, in_dims)
        if node.mode == "out_in":  # the default, not written
            return Shaped(sh.node.with_(mode=None), sh.uses)
        return sh

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return weighted(self, sizes, node, ctx, [], [])

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        x = node.inputs[0]
        out = []
        for use, _, k_out in sizes.uses(node):
            if use.kind is Kind.WEIGHT:
                out += [(x, backward_term(ctx.init(use), k_out, gh)),
                        (x, dw_backward_term(ctx.entries(use), k_out, gh))]
        return out

    def fan_axes(self, node: Node, use: Use) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A Linear weight is (fan_out, fan_in), or (fan_in, fan_out) stored ``in_out``; a
        conv weight (out, in, *kernel)."""
        if use.kind is not Kind.WEIGHT:
            return (), (0,)
        if node.mode == "in_out":
            return (0,), (1,)
        return tuple(range(1, 2 + len(node.kernel))), (0,)

    def torch_row(self, graph: Graph, node: Node) -> dict:
        """The input dims the weight keeps (batch; spatial for a conv), its ``in``, and its
        layout when it is stored (in, out)."""
        x_dims = graph.node[node.inputs[0]].dims
        return {"batch": [d for d in x_dims if d not in node.in_dims],
                "in_dims": list(node.in_dims), **({"mode": node.mode} if node.mode else {})}

    torch_build = _FANS + """\
m = torch.nn.Linear(fan_in, out, bias="bias" in owns)
if n.get("mode") == "in_out":  # stored (in, out), as x @ W
    m.weight = torch.nn.Parameter(m.weight.detach().t().contiguous())"""
    torch_forward = "y = self._linear(n, xs[0], ins[0])"
    torch_globals = """\
CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
CONV_FN = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
           3: torch.nn.functional.conv3d}
"""
    torch_methods = '''
    def _linear(self, n: dict, x: torch.Tensor, have: list[str]) -> torch.Tensor:
        s = self.sizes
        batch, in_dims = n["batch"], n["in_dims"]
        out_dims = [d for d in n["dims"] if d not in batch]
        x = _to(x, have, batch + in_dims)
        lead = x.shape[: 1 + len(batch)]
        x = x.reshape(*lead, -1)
        out = math.prod([s[d] for d in out_dims])
        w = self._param(n, "weight")
        b = self._param(n, "bias").reshape(-1) if "bias" in n else None
        if n["op"] == "conv":  # the last len(kernel) batch dims are the spatial ones
            k = len(n["kernel"])
            w = w.reshape(out, -1, *(s[d] for d in n["kernel"]))
            x = x.reshape(-1, *x.shape[-k - 1:]).movedim(-1, 1)
            y = CONV_FN[k](x, w, b, padding="same").movedim(1, -1).reshape(*lead, -1)
        else:
            w = w.reshape(-1, out).t() if n.get("mode") == "in_out" else w.reshape(out, -1)
            y = torch.nn.functional.linear(x, w, b)
        y = y.reshape(*lead, *(s[d] for d in out_dims))
        return _to(y, batch + out_dims, n["dims"])
'''

    @staticmethod
    def shaped(node: Node, in_dims: tuple[str, ...], out: tuple[str, ...],
               fan_in: tuple[str, ...]) -> Shaped:
        """The node with its ``in`` dims, its weight use and its bias use (if any)."""
        uses = [(Use(node.name, node.weight, Kind.WEIGHT, fan_in, out), out + fan_in)]
        if node.bias is not None:
            uses.append((Use(node.name, node.bias, Kind.BIAS, (), out), out))
        return Shaped(node.with_(in_dims=in_dims), tuple(uses))

    @staticmethod
    def dense_dims(node: Node, ins: list[tuple[str, ...]], err: Err
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The (in dims, out dims) of a linear or conv: ``in`` defaults to the input's last
        dim; the other input dims are kept (batch, or spatial for a conv)."""
        arity(node, 1, err)
        if node.weight is None:
            raise err(f"a {node.op} needs a weight")
        x = ins[0]
        in_dims = node.in_dims or x[-1:]
        for d in in_dims:
            if d not in x:
                raise err(f"in-dim '{d}' is not a dim of its input '{node.inputs[0]}' "
                          f"(dims {list(x)})")
        batch = [d for d in x if d not in in_dims]
        if not node.dims:
            raise err(f"a {node.op} needs its output dims")
        missing = [d for d in batch if d not in node.dims]
        if missing:
            raise err(f"output dims {list(node.dims)} drop the input's dims {missing}; "
                      "list them in 'in' to contract them")
        out = tuple(d for d in node.dims if d not in batch)
        if not out:
            raise err(f"a {node.op} needs at least one output dim of its own")
        return tuple(in_dims), out


class Conv(Linear):
    """A convolution: its use sums over the in dims and the finite kernel dims, so its
    width exponents are a linear's; fan_in = in × kernel as in PyTorch."""

    name = "conv"
    fields = frozenset({"weight", "bias", "in_dims", "kernel"})
    torch_build = _FANS + """\
kernel = tuple(s[d] for d in n["kernel"])
m = CONV[len(kernel)](fan_in, out, kernel, bias="bias" in owns, padding="same")"""

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        in_dims, out = self.dense_dims(node, ins, err)
        if not node.kernel:
            raise err("a conv needs its finite 'kernel' dims (e.g. kernel: [k] or [kh, kw]); "
                      "without one it is a linear")
        x = ins[0]
        for d in node.kernel:
            if dims[d].infinite:
                raise err(f"kernel dim '{d}' is infinite; a conv kernel is finite (TP5 "
                          "J.2.1: a Θ(1)-sized collection of dense weights)")
            if d in x or d in node.dims:
                raise err(f"kernel dim '{d}' is a dim of its "
                          f"{'input' if d in x else 'output'}; kernel dims belong to the "
                          "weight only")
        if len(set(node.kernel)) != len(node.kernel):
            raise err(f"kernel dims {list(node.kernel)} repeat a dim")
        spatial = [d for d in x if d not in in_dims]
        if len(spatial) < len(node.kernel):
            raise err(f"a kernel {list(node.kernel)} slides over {len(node.kernel)} spatial "
                      f"dim(s) of its input, but it has only {spatial} besides 'in' "
                      f"{list(in_dims)}")
        return self.shaped(node, in_dims, out, in_dims + node.kernel)


LINEAR = Linear()
CONV = Conv()
