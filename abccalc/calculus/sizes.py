"""Forward and backward propagation of size exponents through a graph.

:class:`Sizes` walks a graph in topological order with the rules of
:mod:`abccalc.exponents`. The solver drives it while it chooses exponents
(:mod:`abccalc.calculus.solver`); :func:`propagate` drives it for a given parametrization, which is
how ``check`` and ``classify`` find what blows up or vanishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from abccalc.calculus.updates import entries as class_entries
from abccalc.exponents import NEG_INF, POS_INF, ZERO, Exp, Optimizer, gradient_term, minus, plus
from abccalc.graph.core import Graph, Node, Use
from abccalc.graph.ops import OPS, Ctx

UseKey = tuple[str, str]  # (node, param): one use of a parameter


def key(use: Use) -> UseKey:
    return (use.node, use.param)


def dead_nodes(graph: Graph) -> frozenset[str]:
    """Nodes with no path to an output: the loss does not depend on them, so their
    gradient is exactly 0 (g = −∞)."""
    live: set[str] = set()  # consumers come first backwards: a live one marks its inputs
    for node in reversed(graph.order):
        if node.name in live or OPS[node.op].is_output:
            live.add(node.name)
            live.update(node.inputs)
    return frozenset(n.name for n in graph.nodes if n.name not in live)


def dead_params(graph: Graph, dead: frozenset[str] | None = None) -> tuple[str, ...]:
    """Parameters whose every use is at a dead node (:func:`dead_nodes`, or ``dead`` when
    the caller has them): their gradient is exactly 0 under any optimizer, so they never
    train (a dead end)."""
    if dead is None:
        dead = dead_nodes(graph)
    if not dead:
        return ()
    return tuple(p for p, param in graph.params.items()
                 if all(u.node in dead for u in param.uses))


def dead_end_warning(graph: Graph, pname: str) -> str:
    """The one-line diagnosis of a dead-end parameter."""
    nodes = ", ".join(f"'{u.node}'" for u in graph.params[pname].uses)
    return (f"{graph.source}: parameter '{pname}' is a dead end: its node {nodes} has no "
            "path to an output, so its gradient is 0 and it never trains (μP gives it a "
            "width-independent LR)")


def broadcast_dims(graph: Graph, use: Use) -> int:
    """Infinite dims a use is applied across: those of its node's output outside its
    fan_out (batch and tokens are finite; a token-mixing weight applied across every
    channel, or a per-head gain across every head, sums its gradient over them)."""
    dims = graph.node[use.node].dims
    return graph.inf([d for d in dims if d not in use.fan_out])


@dataclass
class Sizes:
    """Exponents per activation: ``s0`` at init, ``sd`` of the change, ``g`` of ∂L/∂v."""

    graph: Graph
    optimizer: Optimizer
    s0: dict[str, Exp] = field(default_factory=dict)
    sd: dict[str, Exp] = field(default_factory=dict)
    g: dict[str, Exp] = field(default_factory=dict)
    converged: bool = True  # False: a blow-up that feeds itself; growing sizes are ±∞
    dead: frozenset[str] = field(init=False)  # nodes with no path to an output
    # uses()'s results by node name, filled as nodes are asked for
    uses_by_node: dict[str, tuple[tuple[Use, int, int], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _inf: dict[tuple[str, ...], int] = field(  # graph.inf of a fan_in or fan_out, by dims
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.dead = dead_nodes(self.graph)

    def st(self, name: str) -> Exp:
        """The operative size during training, max(s0, sd)."""
        return max(self.s0[name], self.sd.get(name, NEG_INF))

    def uses(self, node: Node) -> tuple[tuple[Use, int, int], ...]:
        """The node's parameter uses with their infinite fan_in / fan_out counts (found
        once per node: the graph is frozen; a node without parameters shares ``()``)."""
        out = self.uses_by_node.get(node.name)
        if out is None:
            params, name, inf = self.graph.params, node.name, self._inf
            out = ()
            for pname in (node.weight, node.bias, node.gain):
                if pname is not None:
                    use = next(u for u in params[pname].uses if u.node == name)
                    k_in, k_out = inf.get(use.fan_in), inf.get(use.fan_out)
                    if k_in is None:
                        k_in = inf[use.fan_in] = self.graph.inf(use.fan_in)
                    if k_out is None:
                        k_out = inf[use.fan_out] = self.graph.inf(use.fan_out)
                    out += ((use, k_in, k_out),)
            self.uses_by_node[name] = out
        return out

    def operand(self, node: Node, use: Use) -> tuple[Exp, Exp]:
        """(s0, sd) of what the use multiplies: x, the normalized x̂, or the constant 1."""
        return OPS[node.op].operand(self, node, use)

    def normalized(self, x: str) -> tuple[Exp, Exp]:
        """(s0, sd) of x̂ = norm(x): Θ(1), changing as much as x does relative to its size."""
        return ZERO, minus(self.sd.get(x, NEG_INF), self.st(x), both_inf=ZERO)

    def forward(self, node: Node, init: Mapping[UseKey, Exp], alpha: Exp | None,
                upd: Callable[[Use], Exp]) -> None:
        """Set s0 and sd of ``node`` from its inputs by its op's rule (TP4 §3; TP5 App. J)."""
        ctx = Ctx(lambda use: init[key(use)], alpha, update=upd,
                  live=node.name not in self.dead)
        self.s0[node.name], self.sd[node.name] = OPS[node.op].forward(self, node, ctx)

    def backward(self, init: Mapping[UseKey, Exp], alpha: Mapping[str, Exp],
                 entries: Callable[[Use], Exp], reuse: Mapping[str, str] | None = None
                 ) -> None:
        """Set g of every node, from g(output) = 0 backwards (TP4 §5), through W₀ and
        through the trained ΔW (whose entries have size ``entries(use)``), by each op's
        rule. ``reuse`` maps a node to a twin that differs only by names and reads inputs
        of the same sizes (:mod:`abccalc.calculus.repeats`), and for which ``init``,
        ``alpha`` and ``entries`` agree: once the twin is done, a node with its g sends
        its inputs what the twin sent its own, input for input."""
        node_of, g = self.graph.node, self.g
        largest: dict[str, Exp] = {}  # the largest contribution to each gradient so far
        sent: dict[str, list[tuple[str, Exp]]] = {}  # a template's contributions
        for node in reversed(self.graph.order):
            name = node.name
            unit = OPS[node.op]
            gh = ZERO if unit.is_output else largest.get(name, NEG_INF)
            g[name] = gh
            out = None
            t = reuse.get(name) if reuse else None
            if t is not None:
                t_out = sent.pop(t, None)  # each template serves one node
                if t_out is not None and (g[t] is gh or g[t] == gh):
                    t_ins, ins = node_of[t].inputs, node.inputs
                    out = [(ins[t_ins.index(i)], size) for i, size in t_out if i in t_ins]
                    if len(out) != len(t_out):  # the twin sent to a node it does not read
                        out = None
            if out is None:
                ctx = Ctx(lambda use: init[key(use)], alpha.get(name), entries=entries)
                out = unit.backward(self, node, gh, ctx)
            if reuse:
                sent[name] = out
            for i, size in out:  # max over the contributions: the first of equal ones
                cur = largest.get(i)
                if cur is None or (size is not cur and size > cur):
                    largest[i] = size


@dataclass(frozen=True)
class ABC:
    """A concrete parametrization: ``a`` per use, ``b`` and ``c`` per parameter, and the
    multiplier exponent of each parameter-free constant."""

    a: dict[UseKey, Exp]
    b: dict[str, Exp]
    c: dict[str, Exp]
    alpha: dict[str, Exp]


def entries_size(sizes: Sizes, abc: ABC, use: Use) -> Exp:
    """Size of ΔW's entries at ``use``: n^-a·Δw with Δw = LR·(Adam: Θ(1) entries, TP4b;
    LAMB, Muon: :func:`abccalc.calculus.updates.entries`;
    SGD: the gradient, the largest of the uses' contributions, each summed over its
    broadcast dims, :func:`abccalc.exponents.gradient_term`). A parameter with no use on a
    path to the loss has a zero gradient and never changes (−∞) under either optimizer."""
    graph = sizes.graph
    a_u, c = abc.a[key(use)], abc.c[use.param]
    uses = graph.params[use.param].uses
    if all(v.node in sizes.dead for v in uses):
        return NEG_INF
    if sizes.optimizer is Optimizer.ADAM:
        return -a_u - c
    if sizes.optimizer is not Optimizer.SGD:  # LAMB, Muon (calculus/updates.py)
        return class_entries(sizes.optimizer, graph, use.param, graph.inf(use.fan_in),
                             graph.inf(use.fan_out), a_u, abc.b[use.param], c)
    grad = max(gradient_term(abc.a[key(v)], sizes.g.get(v.node, NEG_INF),
                             max(sizes.operand(graph.node[v.node], v)),
                             broadcast_dims(graph, v)) for v in uses)
    return plus(-a_u - c, grad)


def update_size(sizes: Sizes, abc: ABC, use: Use) -> Exp:
    """Size of ΔW·x at ``use``: LLN over the fan_in, x at its training-time size."""
    stx = max(sizes.operand(sizes.graph.node[use.node], use))
    return plus(entries_size(sizes, abc, use), sizes.graph.inf(use.fan_in), stx)


def propagate(graph: Graph, optimizer: Optimizer, abc: ABC, max_rounds: int = 16) -> Sizes:
    """Sizes of every activation under ``abc``, iterated to a fixed point.

    SGD gradients depend on training-time sizes and vice versa, so the backward and
    forward passes alternate until nothing changes (two rounds for a stable
    parametrization). A blow-up that feeds itself (growing activations make growing
    gradients) has no fixed point: after ``max_rounds`` whatever still grows is +∞ (or
    −∞), and ``converged`` is False.
    """
    sizes = Sizes(graph, optimizer)
    init = {u: abc.a[u] + abc.b[u[1]] for u in abc.a}
    for node in graph.order:  # init sizes first, with no change yet
        sizes.forward(node, init, abc.alpha.get(node.name), lambda use: NEG_INF)
        sizes.sd[node.name] = NEG_INF

    def one_round() -> None:
        sizes.backward(init, abc.alpha, lambda use: entries_size(sizes, abc, use))
        for node in graph.order:
            sizes.forward(node, init, abc.alpha.get(node.name),
                          lambda use: update_size(sizes, abc, use))

    for _ in range(max_rounds):
        before = (dict(sizes.s0), dict(sizes.sd), dict(sizes.g))
        one_round()
        if (sizes.s0, sizes.sd, sizes.g) == before:
            return sizes
    before = (dict(sizes.s0), dict(sizes.sd), dict(sizes.g))
    one_round()
    for new, old in zip((sizes.s0, sizes.sd, sizes.g), before, strict=True):
        for n, v in new.items():
            if v != old[n]:
                new[n] = POS_INF if v > old[n] else NEG_INF
    sizes.converged = False
    return sizes
