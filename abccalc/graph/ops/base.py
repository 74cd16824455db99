"""The op unit: everything abccalc knows about one op, in one class.

An :class:`Op` is to abccalc what a primitive is to JAX (docs/contributing_ops.md): its dim
check is the shape rule, its forward size rule the abstract evaluation, its backward rule
the transpose rule, and its PyTorch emission (``torch_forward``) the lowering. The solver,
size propagation, the presets, classify, check and codegen ask the unit; none of them names
an op.

Sizes are exponents of the width n (:mod:`abccalc.exponents`): ``s0`` at init, ``sd`` of
the change in training, ``st = max(s0, sd)``, ``g`` of ∂L/∂v. Every method has the default
of a Θ(1)-Jacobian op that keeps its input's dims (an elementwise nonlinearity).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from abccalc.errors import AbcError
from abccalc.exponents import NEG_INF, ZERO, Exp, init_term, w0_dx_term
from abccalc.graph.core import Dim, Kind, Node, Use

if TYPE_CHECKING:
    from abccalc.graph.core import Graph

Err = Callable[[str], AbcError]
# The one-line rule of a constant's α (the derivation trace): its text, or a function of no
# arguments that writes it (only ``explain`` reads it, so most solves never call it)
Rule = str | Callable[[], str]


@dataclass(frozen=True)
class Shaped:
    """A node with its dims filled in, and the parameter uses it makes (with shapes)."""

    node: Node
    uses: tuple[tuple[Use, tuple[str, ...]], ...] = ()


class SizesLike(Protocol):
    """What an op's size rules read (:class:`abccalc.calculus.sizes.Sizes`): the graph,
    the exponents found so far and the nodes with no path to the loss."""

    graph: Graph
    s0: dict[str, Exp]
    sd: dict[str, Exp]
    g: dict[str, Exp]
    dead: frozenset[str]

    def st(self, name: str) -> Exp: ...

    def normalized(self, x: str) -> tuple[Exp, Exp]: ...

    def uses(self, node: Node) -> list[tuple[Use, int, int]]: ...

    def operand(self, node: Node, use: Use) -> tuple[Exp, Exp]: ...


def _never(use: Use) -> Exp:
    return NEG_INF


@dataclass(frozen=True)
class Ctx:
    """What a size rule needs beyond the sizes: ``init(use)`` = a+b of a use, ``alpha`` the
    node's constant exponent (None if it has none), ``update(use)`` the size of ΔW·x,
    ``entries(use)`` the size of ΔW's entries, ``live`` whether the node reaches the loss."""

    init: Callable[[Use], Exp]
    alpha: Exp | None = None
    update: Callable[[Use], Exp] = _never
    entries: Callable[[Use], Exp] = _never
    live: bool = True


class Op:
    """One op. Subclasses override what differs from an elementwise Θ(1) op."""

    name: str = ""
    fields: frozenset[str] = frozenset()  # op-specific Node fields it accepts
    constant: bool = False  # carries a free constant n^-α (a multiplier with no parameter)
    only_multiplies: bool = False  # h = m·x and nothing else: m can be read as a neighbour's
    is_input: bool = False  # a model input: fed by the caller, no inputs of its own
    is_output: bool = False  # a model output: the loss reads it (g = 0)
    is_sum: bool = False  # a sum of its inputs: on a depth axis, a residual add (docs/depth.md)
    reads_ids: bool = False  # its input holds integer ids (an embedding lookup)

    # -- graph: dims -----------------------------------------------------------------------
    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        """Validate ``node`` against its inputs' dims ``ins``; its output dims and the
        parameter uses it makes. Default: one input, output dims = input dims."""
        arity(node, 1, err)
        return Shaped(node.with_(dims=same_dims(node, ins, err)))

    # -- calculus: sizes -------------------------------------------------------------------
    def operand(self, sizes: SizesLike, node: Node, use: Use) -> tuple[Exp, Exp]:
        """(s0, sd) of what ``use`` multiplies: its input x, or the constant 1 (a bias)."""
        if use.kind is Kind.BIAS:
            return ZERO, NEG_INF
        x = node.inputs[0]
        return sizes.s0[x], sizes.sd.get(x, NEG_INF)

    def operand_label(self, node: Node, use: Use) -> str:
        """How a derivation names what ``use`` multiplies (``1`` for a constant operand)."""
        return "1" if use.kind is Kind.BIAS else node.inputs[0]

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        """(s0, sd) of the node's output. Default: its input's (a Θ(1) Jacobian)."""
        x = node.inputs[0]
        return sizes.s0[x], sizes.sd.get(x, NEG_INF)

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        """Contributions (input, size) to the inputs' gradients given g(node) = ``gh``.
        Default: a Θ(1) Jacobian passes ``gh`` to every input."""
        return [(i, gh) for i in node.inputs]

    # -- parametrization: the free constant ------------------------------------------------
    def mup_constant(self, sizes: SizesLike, node: Node) -> tuple[Exp, Rule, tuple[str, ...]]:
        """μP's exponent α of the constant n^-α, the rule that fixes it (one line, or a
        function of no arguments that writes it: :data:`Rule`) and the sizes it reads.
        Only for ops with ``constant``."""
        raise NotImplementedError(f"op '{node.op}' has no constant")

    def sp_constant(self, graph: Graph, node: Node) -> Exp:
        """SP's exponent of the constant (what standard code writes)."""
        return ZERO

    def constant_note(self, mup_exponent: Exp) -> str:
        """Why μP's constant has exponent ``mup_exponent``, when that surprises (check's
        report appends it to the constant's line); empty by default."""
        return ""

    def has_constant(self, node: Node) -> bool:
        """Whether this node carries the free constant (a ``reduce`` only when it sums)."""
        return self.constant

    # -- graph: composites -----------------------------------------------------------------
    def expand(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim], err: Err
               ) -> list[Node] | None:
        """The primitive nodes a composite op stands for, given its checked ``node`` and
        its inputs' dims (it may add dims), the last keeping the node's name; None for a
        primitive op."""
        return None

    def followers(self, node: Node) -> tuple[tuple[str, str], ...]:
        """(dim, follower) pairs: a follower of the same size follows ``--set dim=…``
        (key positions ``ctx → ctx_k``)."""
        return node.rename

    # -- emit: PyTorch ---------------------------------------------------------------------
    def use_dims(self, node: Node, use: Use) -> list[str]:
        """The dims of a parameter as ``use`` reads it: fan_out then fan_in."""
        return [*use.fan_out, *use.fan_in]

    def fan_axes(self, node: Node, use: Use) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(fan_in axes, fan_out axes) of the parameter's PyTorch tensor: a bias or gain is
        (fan_out,) with fan_in 1."""
        return (), (0,)

    def torch_groups(self, node: Node, use: Use, shape: tuple[str, ...]
                     ) -> list[tuple[str, ...]]:
        """The axes of the PyTorch tensor of the parameter whose first use is ``use``, each
        a group of its dims ``shape``: flat by default (a Params entry, a norm's gain)."""
        return [shape]

    def torch_module(self, node: Node, ctx: TorchCtx) -> str | None:
        """The generated Model's module owning the node's parameters (those whose first
        use it is, ``ctx.owned(node)``), as a constructor call; None when it owns none.
        Default: a ``Params`` holding them flat (a norm's gain is its ``weight``)."""
        owned = ctx.owned(node)
        if not owned:
            return None
        args = ", ".join(f"{'weight' if k is not Kind.BIAS else 'bias'}={ctx.numel(p)}"
                         for k, p in owned)
        return ctx.params_module(args)

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """Lines of the generated ``forward`` that set ``ctx.var(node.name)`` (the node's
        activation: a leading batch axis, then its dims in order) from its inputs.
        Default: the input itself, in the node's dim order."""
        return [f"{ctx.var(node.name)} = {ctx.value(node.inputs[0], node.dims)}"]

    def torch_covers(self, graph: Graph, node: Node) -> tuple[str, ...]:
        """Earlier nodes this node's forward computes with it (fused), which emit no lines
        of their own: an attention's scores and probabilities (``contract``)."""
        return ()

    def torch_sibling_key(self, node: Node, ctx: TorchCtx) -> Hashable | None:
        """A key under which nodes of this op in one forward compute together: two or
        more nodes of equal keys are emitted by one :meth:`torch_forward_siblings`, where
        the first of them comes (sibling linears reading one input: one matmul). None,
        the default: the node is emitted alone."""
        return None

    def torch_forward_siblings(self, nodes: Sequence[Node], ctx: TorchCtx) -> list[str]:
        """Lines of the generated ``forward`` that set every node's variable, for nodes of
        one :meth:`torch_sibling_key` (graph order; their inputs are all computed before
        the first). Default: each node's own lines."""
        return [line for node in nodes for line in self.torch_forward(node, ctx)]


class TorchCtx(Protocol):
    """What an op's PyTorch emission asks the generated forward it is written into
    (:class:`abccalc.emit.model_scope.Scope`). Every name it returns is already escaped."""

    graph: Graph

    def var(self, name: str) -> str:
        """The local variable holding node ``name``'s activation."""

    def value(self, name: str, dims: Sequence[str]) -> str:
        """Node ``name``'s activation with its axes in the order ``dims`` (a permute when
        that differs from its own)."""

    def arrange(self, expr: str, have: Sequence[str], want: Sequence[str]) -> str:
        """``expr``, an activation of dims ``have``, permuted to ``want``."""

    def size(self, dims: Sequence[str]) -> str:
        """The product of the dims' sizes at run time (``s["d_model"]``)."""

    def numel(self, param: str) -> str:
        """The number of entries of parameter ``param``."""

    def owned(self, node: Node) -> list[tuple[Kind, str]]:
        """The (kind, parameter) fields whose first use is this node."""

    def module(self, node: Node) -> str:
        """The module owning the node's parameters (``self.q``)."""

    def params_module(self, args: str) -> str:
        """A ``Params(args)`` module (parameters with no torch module of their own)."""

    def param(self, node: Node, kind: Kind, shape: Sequence[Sequence[str]]) -> str:
        """The parameter of field ``kind`` as this use reads it (its dims in the use's order:
        fan_out then fan_in, an embedding's vocab first) reshaped to ``shape`` (groups of
        dims, each one axis), times its multiplier at this use."""

    def scale(self, node: Node, kind: Kind) -> str | None:
        """The multiplier of the parameter of field ``kind`` at this use, None when it is
        identically 1."""

    def scale_value(self, node: Node, kind: Kind) -> str | None:
        """The expression of the dim sizes that :meth:`scale` reads (``64/s['d_model']``):
        equal texts are equal multipliers; None when identically 1."""

    def const(self, node: Node) -> str | None:
        """The node's constant n^-α (a residual branch add's: the branch multiplier
        L^-α), None when it is identically 1."""

    def stream(self, node: Node) -> int | None:
        """The index of the residual stream among a branch add's inputs (every other input
        is a branch); None for any other node."""

    def batch(self) -> str:
        """The batch size at run time."""

    def atom(self, expr: str) -> str:
        """``expr``, parenthesized unless a method call can follow it as it is."""

    def flatten(self, expr: str, dims: Sequence[str]) -> str:
        """``expr`` with its last ``len(dims)`` axes, the dims ``dims``, made one."""

    def unflatten(self, expr: str, dims: Sequence[str]) -> str:
        """``expr`` with its last axis split into the dims ``dims``."""

    def helper(self, name: str) -> str:
        """Declare module-level helper ``name`` (emitted once) and return its name."""


def over_dims(node: Node, ins: list[tuple[str, ...]], err: Err, verb: str
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(output dims, ``over`` dims) of a one-input op that keeps its input's dims and acts
    over some of them (default: the last); ``verb`` names the action in messages."""
    arity(node, 1, err)
    out = same_dims(node, ins, err)
    over = node.over or out[-1:]
    for d in over:
        if d not in out:
            raise err(f"{verb} over '{d}', which is not a dim of its input")
    return out, over


def weighted(unit: Op, sizes: SizesLike, node: Node, ctx: Ctx, s0: list[Exp],
             sd: list[Exp]) -> tuple[Exp, Exp]:
    """(s0, sd) of a node that sums its parameter uses h = W·x (TP4 §3; TP5 App. J,
    Table 14): at init W₀·x (CLT over the fan_in); in training the largest of ΔW·x
    (``ctx.update``) and W₀·Δx; ``s0``/``sd`` hold terms that add to these (a norm's x̂)."""
    s0, sd = list(s0), list(sd)
    for use, k_in, k_out in sizes.uses(node):
        x0, xd = unit.operand(sizes, node, use)
        init = ctx.init(use)
        s0.append(init_term(init, k_in, x0))
        sd += [ctx.update(use), w0_dx_term(init, k_in, k_out, xd, ctx.live)]
    return max(s0), max(sd)


def arity(node: Node, n: int | None, err: Err, at_least: int = 0) -> None:
    """Refuse a node without ``n`` inputs (or fewer than ``at_least``)."""
    k = len(node.inputs)
    if n is not None and k != n:
        raise err(f"op '{node.op}' takes {n} input{'s' if n != 1 else ''}, got {k}")
    if k < at_least:
        raise err(f"op '{node.op}' takes at least {at_least} inputs, got {k}")


def same_dims(node: Node, ins: list[tuple[str, ...]], err: Err) -> tuple[str, ...]:
    """The common dims of the inputs (in any order), which are the node's own."""
    dims = ins[0]
    for name, d in zip(node.inputs[1:], ins[1:], strict=True):
        if sorted(d) != sorted(dims):
            raise err(f"inputs have different dims: {node.inputs[0]} {list(dims)} "
                      f"vs {name} {list(d)}")
    if node.dims and sorted(node.dims) != sorted(dims):
        raise err(f"dims {list(node.dims)} do not match its input's dims {list(dims)}")
    return node.dims or dims
