"""Solve the μP desiderata (TP5 J.1) for every parameter's gauge invariants.

One forward pass fixes each use's init invariant a+b and each parameter-free constant;
one backward pass gives gradient sizes; then each use's LR invariant k·a+c follows.
No equation system is solved: each desideratum is linear in one unknown once the sizes
upstream (forward) or downstream (backward) are known, so the cost is linear in the graph.

Desiderata, per use h = W·x (TP5 J.1; TP4 §5, Prop. 5.5, Thm. 5.6):

* Θ(1) at init:  −(a+b) + ½·inf(fan_in) + st(x) = 0, with st the size during training so
  that a layer after a bottleneck is Θ(1) once trained (TP4 Cor. 3.10).
* maximal readout init (vector-like, fan_out finite):  −(a+b) + inf(fan_in) + sd(x) = 0.
* maximal update:  ΔW·x = Θ(1), which fixes k·a+c (see :mod:`abccalc.exponents`).
* a contraction of two activations is Θ(1) once they are correlated (LLN), which gives
  attention 1/d rather than 1/√d (TP5 Def. 4.1 and footnote 8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

from abccalc.calculus.repeats import same_inputs, twins
from abccalc.calculus.sizes import Sizes, UseKey, broadcast_dims, dead_params, key
from abccalc.calculus.updates import lr_offset, lr_rule
from abccalc.errors import AbcError
from abccalc.exponents import NEG_INF, ZERO, Exp, Optimizer, fmt_exp, half
from abccalc.graph.core import Graph, Kind, Role, Use
from abccalc.graph.ops import OPS
from abccalc.graph.ops.base import Rule


@dataclass(frozen=True, eq=False, slots=True)
class Step:
    """One line of a derivation: what was fixed, by which rule, from which sizes. The rule
    may be given as a function that writes it from ``args``: its text is made when first
    read (most solves never read it), and two steps are equal when their texts are."""

    what: str
    text: str | Callable[..., str] = field(repr=False)
    value: Exp
    deps: tuple[str, ...] = ()
    args: tuple = field(default=(), repr=False)

    @property
    def rule(self) -> str:
        """The rule's text (written once, on first read)."""
        if not isinstance(self.text, str):
            object.__setattr__(self, "text", self.text(*self.args))
            object.__setattr__(self, "args", ())
        return self.text  # type: ignore[return-value]

    def _key(self) -> tuple:
        return (self.what, self.rule, self.value, self.deps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Step(what={self.what!r}, rule={self.rule!r}, value={self.value!r}, "
                f"deps={self.deps!r})")


@dataclass(frozen=True, slots=True)
class Invariants:
    """The gauge-invariant exponents of one use (TP4 Eq. 5; TP5 Lemma J.1)."""

    use: Use
    role: Role
    init: Exp  # a + b
    lr: Exp  # k·a + c


@dataclass(frozen=True)
class Analysis:
    """The solver's result: invariants per use, constants, sizes and the derivation trace
    (:attr:`trace`, written when first read: table and codegen never read it)."""

    graph: Graph
    optimizer: Optimizer
    sizes: Sizes
    invariants: dict[UseKey, Invariants]
    alpha: dict[str, Exp]
    write_trace: Callable[[], dict[str, Step]] = field(repr=False, compare=False)
    dead_ends: tuple[str, ...] = ()  # parameters with no path to the loss: never trained

    @cached_property
    def trace(self) -> dict[str, Step]:
        """Each derivation step by key (``init P@N``, ``lr P@N``, ``alpha N``), in the
        order the solver fixed them."""
        return self.write_trace()


def role_of(graph: Graph, use: Use) -> Role:
    """TP5 Table 3 columns by infinite dims: input (finite→inf, and every vector-like bias
    or gain), output (inf→finite), hidden (inf→inf), scalar (finite→finite)."""
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    if k_in and k_out:
        return Role.HIDDEN
    if k_in:
        return Role.OUTPUT
    return Role.INPUT if k_out else Role.SCALAR


def solve(graph: Graph, optimizer: Optimizer | str, reuse: bool = True) -> Analysis:
    """Derive μP for ``graph`` under ``optimizer`` (``sgd`` or ``adam``). With ``reuse``, a
    repeat block's iteration whose inputs have the sizes of the previous one's is copied
    from it (:mod:`abccalc.calculus.repeats`): the same result, computed once per block."""
    opt = Optimizer.parse(optimizer) if isinstance(optimizer, str) else optimizer
    sizes = Sizes(graph, opt)
    s0, sd, dead, node_of = sizes.s0, sizes.sd, sizes.dead, graph.node
    init: dict[UseKey, Exp] = {}
    # (x, st) of what each use multiplies: the size its init rule reads (sd for a readout)
    # and its st = max(s0, sd); a copied use shares its twin's pair
    operand: dict[UseKey, tuple[Exp, Exp]] = {}
    alpha: dict[str, Exp] = {}
    constants: dict[str, tuple[Exp, Rule, tuple[str, ...]]] = {}  # for the trace: alpha's
    dead_steps: dict[str, Step] = {}  # the trace's steps at dead nodes (_dead_lr)
    # each use's rule arguments: a copied use shares its twin's tuple where they are equal
    # (one tuple fewer per use for the garbage collector to track); the init rule's are
    # (readout, k_in, x), all a copy's twin's, and the trace adds the operand's name
    init_args: dict[UseKey, tuple] = {}
    lr_args: dict[UseKey, tuple] = {}
    twin = twins(graph, sizes) if reuse else {}
    copied: dict[str, str] = {}  # node -> its twin, whose inputs had the same sizes
    uses_of, weight = sizes.uses, Kind.WEIGHT
    found = sizes.uses_by_node  # each node's uses, once the loop below met it

    for node in graph.order:
        name = node.name
        unit = OPS[node.op]
        t = twin.get(name)
        if t is not None and t in s0 and same_inputs(sizes, node, node_of[t]):
            copied[name] = t
            t_uses = found[t]  # forwarded (t in s0), so met
        else:
            t = None
        for j, (use, k_in, k_out) in enumerate(uses_of(node)):
            readout = (use.kind is weight and k_in and not k_out and name not in dead)
            if t is not None:  # the twin's a + b and operand sizes (the same objects)
                v = t_uses[j][0]
                u_t = (v.node, v.param)
                value, xs, args = init[u_t], operand[u_t], init_args[u_t]
                x = xs[0]
            else:
                x0, xd = sizes.operand(node, use)
                stx = xd if x0 is not xd and xd > x0 else x0  # max(x0, xd)
                x = xd if readout else stx
                xs = x, stx
                value = k_in + xd if readout else half(k_in) + x
            if readout and x == NEG_INF:
                raise AbcError(f"{graph.source}: node '{name}': readout of "
                               f"'{unit.operand_label(node, use)}', which never changes "
                               "in training")
            if t is None:  # a copy's (readout, k_in, x) are its twin's: shared
                args = (readout, k_in, x)  # the trace adds the operand's name
            u = (name, use.param)
            init[u], operand[u], init_args[u] = value, xs, args
        if unit.has_constant(node):
            constants[name] = c = unit.mup_constant(sizes, node)
            alpha[name] = c[0]
        if t is not None:
            s0[name], sd[name] = s0[t], sd[t]
        else:
            sizes.forward(node, init, alpha.get(name), _zero)

    def entries(use: Use) -> Exp:
        """ΔW entries of a maximally updated use: ΔW·x = n^(entries + inf(fan_in) + st(x))
        is Θ(1)."""
        node = node_of[use.node]
        return -(graph.inf(use.fan_in) + max(sizes.operand(node, use)))

    # backwards, iteration i + 1 comes first: it is the template of iteration i
    sizes.backward(init, alpha, entries, reuse={t: n for n, t in copied.items()})

    sgd = opt is Optimizer.SGD
    invariants: dict[UseKey, Invariants] = {}
    for node in graph.order:
        name = node.name
        if name in dead:
            continue  # no gradient flows here: see _dead_lr
        gh = sizes.g[name]
        t = copied.get(name)
        if t is not None and sgd and not _same(gh, sizes.g[t]):
            t = None
        if t is not None:
            t_uses = found[t]
        for j, (use, k_in, k_out) in enumerate(found[name]):
            u = (name, use.param)
            stx = operand[u][1]
            if t is not None:
                v = t_uses[j][0]
                u_t = (v.node, v.param)
                inv = invariants[u_t]
                role, lr = inv.role, inv.lr
            else:
                role, lr = role_of(graph, use), k_in + stx
                if not sgd and opt is not Optimizer.ADAM:  # LAMB, Muon
                    lr += lr_offset(opt, graph, use.param, k_in, k_out, init[u])
            if sgd:  # SGD's rule names the node's gradient
                kb = broadcast_dims(graph, use)
                if t is None:
                    lr += gh + stx + kb
                args = (opt, k_in, stx, gh, kb, name)
            elif opt is Optimizer.ADAM and t is not None:  # its rule names no parameter:
                args = lr_args[u_t]  # a copy shares its twin's
            else:
                args = (opt, k_in, stx, ZERO, 0, name, (graph, use.param, k_out, init[u]))
            lr_args[u] = args
            invariants[u] = Invariants(use, role, init[u], lr)
    if dead:  # the uses at dead nodes, whose LR no desideratum fixes
        raised = [_dead_lr(sizes, p.uses, init, invariants, dead_steps)
                  for p in graph.params.values() if any(u.node in dead for u in p.uses)]
        if any(raised):  # a dead use's init changed: resize the dead nodes (nothing live
            for node in graph.order:  # reads them)
                if node.name in dead:
                    sizes.forward(node, init, alpha.get(node.name), _zero)
        invariants = {key(u): invariants[key(u)] for n in graph.order
                      for u, _, _ in sizes.uses(n)}
    # the trace, written when read; a + b raised by _dead_lr has its own step there
    write_trace = partial(_trace, sizes, init, init_args, constants, invariants, lr_args,
                          dead_steps)
    return Analysis(graph, opt, sizes, invariants, alpha, write_trace,
                    dead_params(graph, dead))


def _trace(sizes: Sizes, init: dict[UseKey, Exp], init_args: dict[UseKey, tuple],
           constants: dict[str, tuple[Exp, Rule, tuple[str, ...]]],
           invariants: dict[UseKey, Invariants], lr_args: dict[UseKey, tuple],
           dead_steps: dict[str, Step]) -> dict[str, Step]:
    """The derivation steps of a solve, from what it kept: the forward pass's a + b and
    constants node by node, then the live uses' LR invariants, then the steps at dead
    nodes (replacing or following those), as the solve fixed them."""
    graph, opt, uses_of = sizes.graph, sizes.optimizer, sizes.uses
    trace: dict[str, Step] = {}
    for node in graph.order:
        name = node.name
        for use, _, _ in uses_of(node):
            u = (name, use.param)
            readout, k_in, x = init_args[u]
            label = OPS[node.op].operand_label(node, use)
            trace[f"init {use.param}@{name}"] = Step(
                f"a + b of {use.param} at node {name}", _init_rule, init[u],
                () if label == "1" else (f"size {node.inputs[0]}",),
                (readout, k_in, label, x))
        c = constants.get(name)
        if c is not None:
            value, rule, deps = c
            trace[f"alpha {name}"] = Step(f"multiplier exponent of {node.op} {name}", rule,
                                          value, deps)
    sgd, k = opt is Optimizer.SGD, opt.k
    for node in graph.order:
        name = node.name
        if name in sizes.dead:
            continue
        deps = (f"grad {name}",) if sgd else ()
        for use, _, _ in uses_of(node):
            u = (name, use.param)
            trace[f"lr {use.param}@{name}"] = Step(
                f"{k}a + c of {use.param} at node {name}", _lr_rule, invariants[u].lr, deps,
                lr_args[u])
    trace.update(dead_steps)
    return trace


def _zero(use: Use) -> Exp:
    """No update yet: the forward pass at init."""
    return ZERO


def _same(a: Exp, b: Exp) -> bool:
    return a is b or a == b


def _init_rule(readout: bool, k_in: int, operand: str, x: Exp) -> str:
    """The derivation of a use's a + b: ``x`` is sd (a readout) or st of its operand."""
    if readout:
        return (f"maximal readout init (TP4 Prop. 5.5): W₀·Δx = n^(-(a+b) + {k_in}·1 + "
                f"sd({operand})) with sd = {fmt_exp(x)} must be Θ(1)")
    return (f"Θ(1) at init (TP5 J.1): W₀·x = n^(-(a+b) + {k_in}/2 + st({operand})) with "
            f"st = {fmt_exp(x)} must be Θ(1)")


def _lr_rule(opt: Optimizer, k_in: int, stx: Exp, gh: Exp, kb: int, name: str,
             at: tuple = ()) -> str:
    """The derivation of a live use's k·a + c (maximal update) at node ``name``: SGD's rule
    reads its gradient ``gh`` there; another class's reads ``at`` = (graph, parameter,
    k_out, a + b) of the use (:func:`abccalc.calculus.updates.lr_rule`)."""
    if opt is not Optimizer.SGD:
        graph, pname, k_out, init = at
        return lr_rule(opt, graph, pname, k_in, k_out, fmt_exp(stx), init)
    over = (f" + {kb}·1 (LLN over the {kb} infinite dim(s) it is applied "
            "across, docs/derivations.md)") if kb else ""
    return (f"maximal update (TP4 Def. 5.2): SGD ΔW has n^(-(2a+c) + g({name})"
            f" + st(x){over}) entries; ΔW·x = n^(-(2a+c) + g + 2·st(x) + "
            f"{k_in}·1{' + ' + str(kb) + '·1' if kb else ''}) with "
            f"g = {fmt_exp(gh)}, st(x) = {fmt_exp(stx)} must be Θ(1)")


def _dead_lr(sizes: Sizes, uses: tuple[Use, ...], init: dict[UseKey, Exp],
             invariants: dict[UseKey, Invariants], steps: dict[str, Step]) -> bool:
    """The invariants of each use at a dead node (no path to the loss, zero gradient),
    whose LR no desideratum fixes; True when a dead use's init was raised.

    A parameter with no live use never trains: it gets a width-independent LR, c = 0 with
    a = 0 (lr = 0 at its first use), under either optimizer. A dead use of a parameter
    that trains through a live use shares its b and c, so its LR follows the live use,
    lr = lr_ref + k·(init − init_ref); its ΔW·x, fixed by the live uses' update, must not
    grow, so its a + b is raised when needed to the smallest value that keeps ΔW·x ≤ Θ(1)
    (it then stays Θ(1) at init or smaller): with Adam ΔW·x = n^(−(init − init_v) − lr_v
    + K), with SGD n^(−(init − init_v) − lr_v + g_v + st(x_v) + B_v + K) for each live use
    v, where K = inf(fan_in) + st(x) at the dead use. Their derivation steps go into
    ``steps`` (the trace's, over those the solve kept)."""
    graph, opt, dead = sizes.graph, sizes.optimizer, sizes.dead
    live = [u for u in uses if u.node not in dead]
    ref = live[0] if live else uses[0]
    lr_ref = invariants[key(ref)].lr if live else ZERO
    raised = False
    for use in uses:
        if use.node not in dead:
            continue
        u = key(use)
        if live:
            node = graph.node[use.node]
            k_in = graph.inf(use.fan_in)
            bound = max(_update_bound(sizes, v, invariants[key(v)]) for v in live) + k_in + \
                max(sizes.operand(node, use))
            if bound > init[u]:
                init[u], raised = bound, True
                steps[f"init {use.param}@{use.node}"] = Step(
                    f"a + b of {use.param} at node {use.node}",
                    f"dead end tied to a trained use: its update ΔW·x, fixed by the uses "
                    f"that train {use.param}, is Θ(1) (and its init smaller) when a + b = "
                    f"{bound}", bound, (f"size {node.inputs[0]}",))
        lr = lr_ref + opt.k * (init[u] - init[key(ref)])
        why = (f"its LR follows its use at {ref.node}, which trains it" if live else
               "it never trains, so any LR gives the same run: the LR is width-independent, "
               "c = 0 with a = 0")
        steps[f"lr {use.param}@{use.node}"] = Step(
            f"{opt.k}a + c of {use.param} at node {use.node}",
            f"dead end: node {use.node} has no path to an output, so it sends no gradient "
            f"to {use.param}; {why}", lr,
            (f"grad {use.node}",))
        invariants[u] = Invariants(use, role_of(graph, use), init[u], lr)
    return raised


def _update_bound(sizes: Sizes, v: Use, inv: Invariants) -> Exp:
    """init_v − lr_v (+ the gradient's size at v under SGD): ΔW's entries at a use with
    a + b = init are n^(this − init)."""
    node = sizes.graph.node[v.node]
    if sizes.optimizer is not Optimizer.SGD:  # e = −lr + offset (updates.lr_offset)
        return inv.init - inv.lr + lr_offset(sizes.optimizer, sizes.graph, v.param,
                                             sizes.graph.inf(v.fan_in),
                                             sizes.graph.inf(v.fan_out), inv.init)
    return (inv.init - inv.lr + sizes.g[v.node] + max(sizes.operand(node, v))
            + broadcast_dims(sizes.graph, v))
