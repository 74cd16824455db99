"""Dense weights: ``linear`` (h = W·x over the ``in`` dims) and ``conv`` (TP5 J.2.1: a
Θ(1)-sized collection of dense weights, one per kernel offset).

For a use h = W·x with W = n^-a·w, w ~ N(0, n^-2b), init = a+b, k_in/k_out infinite
fan_in/fan_out dims (TP4 §3, §5; TP5 App. J, Table 14; :mod:`abccalc.exponents`):

    s0(h) = −init + k_in/2 + s0(x)                                    (CLT)
    sd(h) = max(ΔW·x, −init + κ·k_in + sd(x))     κ = ½ matrix-like, 1 vector-like readout
    g(x) ⊇ −init + k_out/2 + g(h),  ΔW entries + k_out + g(h)         (CLT; LLN once trained)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from abccalc.exponents import Exp, backward_term, dw_backward_term
from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity, weighted

LAYOUTS = ("out_in", "in_out")


class Linear(Op):
    """h = W·x (+ b): W has dims (out, in); ``in`` defaults to the input's last dim and the
    other input dims (batch, tokens) are kept. ``mode`` is how the tensor is stored:
    ``out_in`` (the default, ``nn.Linear``) or ``in_out`` (``x @ W``, Hugging Face's
    ``Conv1D``): it decides which axis of the tensor is fan_in, not any exponent."""

    name = "linear"
    fields = frozenset({"weight", "bias", "in_dims", "mode"})

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

    def torch_groups(self, node: Node, use: Use, shape: tuple[str, ...]
                     ) -> list[tuple[str, ...]]:
        """A Linear weight is (fan_out, fan_in) ((fan_in, fan_out) stored ``in_out``), a
        conv weight (out, in, *kernel)."""
        if use.kind is not Kind.WEIGHT:
            return [shape]
        if node.mode == "in_out":
            return [node.in_dims, use.fan_out]
        return [use.fan_out, node.in_dims, *((k,) for k in node.kernel)]

    def torch_module(self, node: Node, ctx: TorchCtx) -> str | None:
        owned = dict(ctx.owned(node))
        if Kind.WEIGHT not in owned:
            return super().torch_module(node, ctx)
        if node.mode == "in_out":  # stored (in, out): no nn.Linear holds it
            shape = f"({ctx.size(node.in_dims)}, {ctx.size(self.out_dims(ctx, node))})"
            bias = f", bias={ctx.numel(owned[Kind.BIAS])}" if Kind.BIAS in owned else ""
            return ctx.params_module(f"weight={shape}{bias}")
        out = ctx.size(self.out_dims(ctx, node))
        bias = "" if Kind.BIAS in owned else ", bias=False"
        return f"torch.nn.Linear({ctx.size(node.in_dims)}, {out}{bias})"

    @staticmethod
    def out_dims(ctx: TorchCtx, node: Node) -> list[str]:
        batch = [d for d in ctx.graph.node[node.inputs[0]].dims if d not in node.in_dims]
        return [d for d in node.dims if d not in batch]

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """The input with its ``in`` dims last and flattened, the module (or the weight
        as this use reads it), the out dims unflattened."""
        x = node.inputs[0]
        batch = [d for d in ctx.graph.node[x].dims if d not in node.in_dims]
        out = self.out_dims(ctx, node)
        xe = ctx.flatten(ctx.value(x, [*batch, *node.in_dims]), node.in_dims)
        y = ctx.unflatten(self.apply(node, ctx, xe, out), out)
        return [f"{ctx.var(node.name)} = {ctx.arrange(y, [*batch, *out], node.dims)}"]

    def torch_sibling_key(self, node: Node, ctx: TorchCtx) -> Hashable | None:
        """Linears that read the same input over the same ``in`` dims, each an
        ``nn.Linear`` owning its weight and (all or none of them) its bias, with no bias
        multiplier and one weight multiplier (applied to x, as :meth:`apply` does), are
        one matmul of their weights concatenated along the output dim (``fused_linear``):
        exactly what the separate calls compute. None for any other linear."""
        owned = dict(ctx.owned(node))
        if node.mode == "in_out" or Kind.WEIGHT not in owned:
            return None
        if node.bias is not None and (Kind.BIAS not in owned or ctx.scale(node, Kind.BIAS)):
            return None
        return (node.inputs[0], node.in_dims, node.bias is not None,
                ctx.scale_value(node, Kind.WEIGHT))

    def torch_forward_siblings(self, nodes: Sequence[Node], ctx: TorchCtx) -> list[str]:
        """``k, q, v = fused_linear(x, self.k, self.q, self.v)`` (x times the common weight
        multiplier), then each output's out dims unflattened and arranged, as
        :meth:`torch_forward` does for one."""
        first = nodes[0]
        x = first.inputs[0]
        batch = [d for d in ctx.graph.node[x].dims if d not in first.in_dims]
        xe = ctx.flatten(ctx.value(x, [*batch, *first.in_dims]), first.in_dims)
        w = ctx.scale(first, Kind.WEIGHT)
        if w:  # equal multipliers (the sibling key): the first one's text stands for all
            xe = f"{xe} * {w}"
        names = [ctx.var(n.name) for n in nodes]
        modules = ", ".join(ctx.module(n) for n in nodes)
        lines = [f"{', '.join(names)} = {ctx.helper('fused_linear')}({xe}, {modules})"]
        for node, var in zip(nodes, names, strict=True):
            out = self.out_dims(ctx, node)
            y = ctx.arrange(ctx.unflatten(var, out), [*batch, *out], node.dims)
            if y != var:
                lines.append(f"{var} = {y}")
        return lines

    def apply(self, node: Node, ctx: TorchCtx, x: str, out: list[str]) -> str:
        """W·x + b: the module's call when it is exactly that (scaled by a multiplier
        shared by weight and bias, or a weight-only one on x), else ``F.linear``."""
        owned = dict(ctx.owned(node))
        w = ctx.scale(node, Kind.WEIGHT)
        b = ctx.scale(node, Kind.BIAS) if node.bias else None
        if (Kind.WEIGHT in owned and node.mode != "in_out"
                and (node.bias is None or Kind.BIAS in owned)):
            if node.bias is not None and w is not None and b is None:
                return f"{ctx.module(node)}({x} * {w})"
            if node.bias is None or w == b:
                y = f"{ctx.module(node)}({x})"
                return f"{y} * {w}" if w else y
        weight = ctx.param(node, Kind.WEIGHT, [out, node.in_dims])
        bias = f", {ctx.param(node, Kind.BIAS, [out])}" if node.bias else ""
        return f"F.linear({x}, {weight}{bias})"

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

    def torch_sibling_key(self, node: Node, ctx: TorchCtx) -> Hashable | None:
        """Convolutions are emitted one by one."""
        return None

    def torch_module(self, node: Node, ctx: TorchCtx) -> str | None:
        owned = dict(ctx.owned(node))
        if Kind.WEIGHT not in owned:
            return Op.torch_module(self, node, ctx)
        kernel = ", ".join(ctx.size([k]) for k in node.kernel)
        kernel = f"({kernel},)" if len(node.kernel) == 1 else f"({kernel})"
        bias = "" if Kind.BIAS in owned else ", bias=False"
        return (f"torch.nn.Conv{len(node.kernel)}d({ctx.size(node.in_dims)}, "
                f"{ctx.size(self.out_dims(ctx, node))}, {kernel}, padding=\"same\"{bias})")

    def apply(self, node: Node, ctx: TorchCtx, x: str, out: list[str]) -> str:
        """The kernel slides over the last len(kernel) batch dims (channels last)."""
        weight = ctx.param(node, Kind.WEIGHT, [out, node.in_dims, *((k,) for k in node.kernel)])
        bias = ctx.param(node, Kind.BIAS, [out]) if node.bias else "None"
        return f"{ctx.helper('conv_last')}({x}, {weight}, {bias})"

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
