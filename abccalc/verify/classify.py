"""Classify any abc-parametrization of any graph the way TP4 (SGD) and TP4b (Adam) do.

The sizes come from :func:`abccalc.calculus.sizes.propagate` on the whole graph, and each
parameter use's terms from the rules of :mod:`abccalc.exponents`:

* ``init``   W₀·x at initialization;
* ``w0_dx``  W₀·Δx, the effect of the change of the use's input;
* ``update`` ΔW·x, the effect of the parameter's own update.

What is computed, for a use h = W·x with exponents of the width n:

* r_l := −size(ΔW·x): 0 when the parameter is updated maximally (TP4 Def. 5.2 / 5.4), > 0
  when it is under-updated, < 0 when its update blows up. On an MLP this is TP4 Prop. 5.3's
  r_l for l ≤ L (and TP4b Def. 2.8.5's for Adam); r := min of r_l over the input and hidden
  uses (not the readouts), the exponent with Δx^L = Θ(n^-r) (TP4 Def. 3.2).
* stable (TP4 Def. H.4, Thm 3.3): no activation grows at init or in training (s0, sd ≤ 0),
  and no activation with an infinite dim vanishes at init, i.e. is smaller at init than
  under μP (Θ(1), except behind a finite bottleneck where μP itself is only Θ(1) once
  trained, TP4 Cor. 3.10). Finite-dim activations (logits, attention scores) may vanish.
* nontrivial (TP4 Def. H.7): the output's change does not vanish, sd(output) ≥ 0 (for a
  stable parametrization, sd = 0: Thm 3.4).
* feature learning (TP4 Def. 3.5, Thm 3.6): stable, nontrivial, and the input of every
  readout changes by Θ(1) (sd = 0; on an MLP this is r = 0). Without a readout, r = 0.
* kernel regime (TP4 Thm 3.8; TP4b Thm 2.8.19): stable, nontrivial and r > 0.
* initialized maximally (TP4 Def. 5.4, Prop. 5.5): a readout's W₀·Δx is Θ(1).

A dead end (a use at a node with no path to an output) gets no gradient: it does not
enter r, r_l or "updated maximally", and a parameter with no other use (``dead_ends``)
never trains, so its r_l and "updated maximally" are not defined (None); its activations
are still checked, since they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from abccalc.calculus.sizes import ABC, Sizes, dead_params, key, propagate, update_size
from abccalc.calculus.solver import role_of, solve
from abccalc.errors import AbcError
from abccalc.exponents import (
    NEG_INF,
    POS_INF,
    ZERO,
    Exp,
    Optimizer,
    init_term,
    is_integer,
    text,
    w0_dx_term,
)
from abccalc.graph.core import Graph, Kind, Role, Use
from abccalc.graph.ops import OPS


@dataclass(frozen=True)
class UseTerms:
    """The sizes of one parameter use's terms (exponents of n)."""

    use: Use
    role: Role
    init: Exp
    w0_dx: Exp
    update: Exp
    dead: bool = False  # at a node with no path to an output: sends no gradient

    @property
    def readout(self) -> bool:
        """A vector-like readout (TP5 Table 3 "output weights"): infinite → finite."""
        return self.role is Role.OUTPUT and self.use.kind is Kind.WEIGHT

    @property
    def r(self) -> Exp:
        return -self.update


@dataclass(frozen=True)
class Issue:
    """An activation that grows (``blows_up``) or is too small (``vanishes``) with width.

    ``origin`` is False when it only inherits the problem from one of its inputs."""

    node: str
    when: str  # "init" or "training"
    problem: str  # "blows_up" or "vanishes"
    exponent: Exp
    origin: bool
    cause: str


def _e(x: Exp) -> str:
    return text(x)


def use_terms(graph: Graph, sizes: Sizes, abc: ABC) -> dict[tuple[str, str], UseTerms]:
    """Every use's init, W₀·Δx and ΔW·x sizes under ``abc`` (with the propagated sizes)."""
    out = {}
    for node in graph.order:
        for use, k_in, k_out in sizes.uses(node):
            u = key(use)
            x0, xd = sizes.operand(node, use)
            init = abc.a[u] + abc.b[use.param]
            out[u] = UseTerms(use, role_of(graph, use), init_term(init, k_in, x0),
                              w0_dx_term(init, k_in, k_out, xd, node.name not in sizes.dead),
                              update_size(sizes, abc, use), node.name in sizes.dead)
    return out


def check_abc(graph: Graph, abc: ABC) -> None:
    """Every use, parameter and constant must have an exponent."""
    missing = [f"a of {p}@{n}" for p, param in graph.params.items()
               for n, _ in (key(u) for u in param.uses) if (n, p) not in abc.a]
    missing += [f"b, c of {p}" for p in graph.params if p not in abc.b or p not in abc.c]
    missing += [f"constant {n.name}" for n in graph.order
                if OPS[n.op].has_constant(n) and n.name not in abc.alpha]
    if missing:
        raise AbcError(f"{graph.source}: the parametrization has no {missing[0]}")


@dataclass(frozen=True)
class Classification:
    """TP4's classification of one parametrization of one graph."""

    graph: Graph
    optimizer: Optimizer
    abc: ABC
    name: str
    sizes: Sizes
    terms: dict[tuple[str, str], UseTerms]
    target_s0: dict[str, Exp]

    @cached_property
    def dead_ends(self) -> tuple[str, ...]:
        """Parameters that never reach the loss (:func:`abccalc.calculus.sizes.dead_params`)."""
        return dead_params(self.graph)

    @cached_property
    def r(self) -> Exp | None:
        rs = [t.r for t in self.terms.values()
              if t.role in (Role.INPUT, Role.HIDDEN) and not t.dead]
        return min(rs) if rs else None

    @cached_property
    def issues(self) -> list[Issue]:
        """Every activation that blows up or vanishes, in topological order."""
        g, s = self.graph, self.sizes
        out: list[Issue] = []
        flagged: dict[tuple[str, str], bool] = {}
        for node in g.order:
            if OPS[node.op].is_input:
                continue
            ins = node.inputs
            checks = (("init", "blows_up", s.s0[node.name],
                       max((s.s0[i] for i in ins), default=NEG_INF)),
                      ("training", "blows_up", s.sd[node.name],
                       max((s.sd.get(i, NEG_INF) for i in ins), default=NEG_INF)))
            for when, problem, size, upstream in checks:
                if size > 0:
                    flagged[(node.name, when)] = True
                    out.append(Issue(node.name, when, problem, size, bool(size > upstream),
                                     self._cause(node.name, when)))
            s0 = s.s0[node.name]
            if g.inf(node.dims) and s0 < self.target_s0.get(node.name, ZERO):
                inherited = any(flagged.get((i, "vanish")) for i in ins)
                flagged[(node.name, "vanish")] = True
                out.append(Issue(node.name, "init", "vanishes", s0, not inherited,
                                 self._cause(node.name, "init")))
        return out

    def _cause(self, name: str, when: str) -> str:
        node = self.graph.node[name]
        size = self.sizes.s0[name] if when == "init" else self.sizes.sd[name]
        own = [t for (n, _), t in self.terms.items() if n == name]
        if own:
            causes = []
            for t in own:
                pairs = (("init", t.init),) if when == "init" else \
                    (("update", t.update), ("w0_dx", t.w0_dx))
                for what, v in pairs:
                    if v == size:
                        causes.append(
                            f"the init of {t.use.param}" if what == "init" else
                            f"the update of {t.use.param} (ΔW·x)" if what == "update" else
                            f"{t.use.param} times the change of its input (W₀·Δx)")
            if causes:
                return ", ".join(causes)
        if OPS[node.op].has_constant(node):
            alpha = self.abc.alpha.get(name, ZERO)
            return f"its inputs and its constant n^{_paren(-alpha)}"
        return f"its input{'s' if len(node.inputs) > 1 else ''} {', '.join(node.inputs)}"

    @cached_property
    def diverges(self) -> bool:
        """Some size has no fixed point: it grows with every step (marked +∞)."""
        return any(i.exponent == POS_INF for i in self.issues)

    @cached_property
    def stable(self) -> bool:
        return not self.issues

    @cached_property
    def nontrivial(self) -> bool:
        return any(bool(self.sizes.sd[o.name] >= 0) for o in self.graph.outputs)

    @property
    def readouts(self) -> list[UseTerms]:
        return [t for t in self.terms.values() if t.readout and not t.dead]

    @cached_property
    def feature_learning(self) -> bool:
        if not (self.stable and self.nontrivial):
            return False
        if not self.readouts:
            return self.r == 0
        s = self.sizes
        return all(s.operand(self.graph.node[t.use.node], t.use)[1] == 0
                   for t in self.readouts)

    @cached_property
    def kernel_regime(self) -> bool:
        return bool(self.stable and self.nontrivial and self.r is not None and self.r > 0)

    def param_terms(self, pname: str) -> list[UseTerms]:
        return [self.terms[key(u)] for u in self.graph.params[pname].uses]

    def live_terms(self, pname: str) -> list[UseTerms]:
        """The uses that send a gradient (on a path to an output)."""
        return [t for t in self.param_terms(pname) if not t.dead]

    def r_l(self, pname: str) -> Exp | None:
        """min r over the parameter's live uses; None for a dead end."""
        return min((t.r for t in self.live_terms(pname)), default=None)

    def updated_maximally(self, pname: str) -> bool | None:
        """ΔW·x = Θ(1) at every live use; None for a dead end (never trained)."""
        live = self.live_terms(pname)
        return all(t.update == 0 for t in live) if live else None

    def initialized_maximally(self, pname: str) -> bool | None:
        """W₀·Δx = Θ(1) on every readout use; None for a parameter with no readout use."""
        readouts = [t for t in self.param_terms(pname) if t.readout and not t.dead]
        return all(t.w0_dx == 0 for t in readouts) if readouts else None

    @cached_property
    def tp4(self) -> dict[str, str] | None:
        """TP4 Table 1's readout rows (SGD: 2a_{L+1}+c; Adam, TP4b Thm 2.8.15:
        a_{L+1}+c_{L+1}; and a_{L+1}+b_{L+1}+r) when the graph has exactly one readout."""
        if len(self.readouts) != 1:
            return None
        use = self.readouts[0].use
        a, b, c = self.abc.a[key(use)], self.abc.b[use.param], self.abc.c[use.param]
        lr_name = {2: "2a_{L+1}+c", 1: "a_{L+1}+c_{L+1}", 0: "c_{L+1}"}[self.optimizer.k]
        out = {"readout": use.param, lr_name: str(self.optimizer.k * a + c)}
        out["a_{L+1}+b_{L+1}+r"] = str(a + b + self.r) if self.r is not None else None
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (documented in docs/check.md)."""
        params = []
        for pname, param in self.graph.params.items():
            first = param.uses[0]
            entry: dict[str, Any] = {
                "name": pname, "role": role_of(self.graph, first).value,
                "kind": first.kind.value, "a": str(self.abc.a[key(first)]),
                "b": str(self.abc.b[pname]), "c": str(self.abc.c[pname]),
                "r_l": _opt(self.r_l(pname)),
                "updated_maximally": self.updated_maximally(pname),
                "initialized_maximally": self.initialized_maximally(pname),
                "dead_end": pname in self.dead_ends}
            if len(param.uses) > 1:
                entry["uses"] = [{"node": t.use.node, "a": str(self.abc.a[key(t.use)]),
                                  "r_l": None if t.dead else _e(t.r)}
                                 for t in self.param_terms(pname)]
            params.append(entry)
        s = self.sizes
        return {
            "graph": self.graph.name, "optimizer": self.optimizer.value,
            "parametrization": self.name,
            "r": None if self.r is None else _e(self.r),
            "stable": self.stable, "nontrivial": self.nontrivial,
            "feature_learning": self.feature_learning, "kernel_regime": self.kernel_regime,
            "tp4": self.tp4,
            "dead_ends": list(self.dead_ends),
            "parameters": params,
            "constants": [{"name": n, "exponent": str(a)} for n, a in self.abc.alpha.items()],
            "activations": [{"name": n.name, "s0": _e(s.s0[n.name]), "sd": _e(s.sd[n.name])}
                            for n in self.graph.order],
            "issues": [{"node": i.node, "when": i.when, "problem": i.problem,
                        "exponent": str(i.exponent), "origin": i.origin, "cause": i.cause}
                       for i in self.issues],
        }


def _opt(x: Exp | None) -> str | None:
    return None if x is None else _e(x)


def _paren(e: Exp) -> str:
    return str(e) if is_integer(e) and e >= 0 else f"({text(e)})"


def classify(graph: Graph, optimizer: Optimizer | str, abc: ABC,
             name: str = "custom") -> Classification:
    """Propagate ``abc`` through ``graph`` and classify it (TP4 §3, §5; TP4b §2.8)."""
    opt = Optimizer.parse(optimizer) if isinstance(optimizer, str) else optimizer
    check_abc(graph, abc)
    sizes = propagate(graph, opt, abc)  # diverging sizes come back as ±∞
    terms = use_terms(graph, sizes, abc)
    try:  # what Θ(1) at init means behind a bottleneck: μP's own init sizes
        target = dict(solve(graph, opt).sizes.s0)
    except AbcError:
        target = {}
    return Classification(graph, opt, abc, name, sizes, terms, target)


def growth(e: Exp) -> str:
    """``n^1``, ``n^(1/2)``, ``n^(-1/2)``; ±∞ when the sizes never settle."""
    if e == POS_INF:
        return "n^∞"
    if e == NEG_INF:
        return "n^-∞"
    return f"n^{_paren(e)}"


DIVERGES = ("n^∞: the exponent grows with every step without settling (growing activations "
            "and SGD gradients feed each other), so training diverges.")


DEAD_ENDS = ("Dead ends (no path to an output: zero gradient, never trained, LR "
             "irrelevant): ")


def render_markdown(c: Classification) -> str:
    """A summary table and one row per parameter."""
    def yn(v: bool | None) -> str:
        return "" if v is None else "yes" if v else "no"

    lines = [f"# {c.graph.name}: {c.name} ({c.optimizer.value})", "",
             "| property | value |", "|---|---|",
             f"| r (TP4 Def. 3.2) | {'' if c.r is None else _e(c.r)} |",
             f"| stable | {yn(c.stable)} |", f"| nontrivial | {yn(c.nontrivial)} |",
             f"| feature learning | {yn(c.feature_learning)} |",
             f"| kernel regime | {yn(c.kernel_regime)} |"]
    if c.tp4:
        for k, v in c.tp4.items():
            if k != "readout":
                lines.append(f"| {k} ({c.tp4['readout']}) | {v} |")
    lines += ["", "| parameter | role | a | b | c | r_l | updated maximally | "
              "initialized maximally |", "|---|---|---|---|---|---|---|---|"]
    for p in c.to_dict()["parameters"]:
        lines.append(f"| {p['name']} | {p['role']} | {p['a']} | {p['b']} | {p['c']} | "
                     f"{p['r_l'] or 'dead end'} | {yn(p['updated_maximally'])} | "
                     f"{yn(p['initialized_maximally'])} |")
    if c.dead_ends:
        lines += ["", DEAD_ENDS + ", ".join(c.dead_ends) + "."]
    if c.issues:
        lines += ["", "Unstable:"]
        lines += [f"- {i.node}: {'grows' if i.problem == 'blows_up' else 'vanishes'} like "
                  f"{growth(i.exponent)} {'at init' if i.when == 'init' else 'in training'}"
                  f" ({i.cause})" for i in c.issues if i.origin]
        if c.diverges:
            lines += ["", DIVERGES]
    return "\n".join(lines) + "\n"
