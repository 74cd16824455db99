"""Depth as a second infinite axis L: residual branches and each parameter's depth exponents.

A repeat block whose count is an infinite value (``values: {n_layer: {base: 2}}``) is a
residual stream x^l = x^(l−1) + Σ_branches L^−α·f(x^(l−1)) (TP6 Eq. 1, §6.3; CompleteP
Table 1). Its ``add`` nodes with exactly one input on the stream are the branches' adds;
the other inputs are the branches, each multiplied by the constant L^−α, α ∈ [½, 1] a
user choice: the desiderata leave a one-parameter family (TP6 Claims 7.1–7.4).

The limit is taken per axis (docs/depth.md): the width exponents are the width solver's,
at any depth; the depth exponents are solved here with every width-wise size Θ(1), from
the stream's sizes in L:

* init: x^l sums l ≤ L independent branch outputs, Θ(L^(½−α)) ≤ Θ(1) for α ≥ ½ (CLT, TP6
  Claim 7.1), so a branch reads a Θ(1) input: init depth exponent b = 0 with a = 0.
* training: Δx^L sums L correlated updates L^−α·Δf (LLN), Θ(L^(1−α))·Δf: each branch's
  Δf must be Θ(L^(α−1)) for Δx^L = Θ(1) (TP6 Claim 7.2, α + γ = 1). Adam's ΔW entries are
  L^−(a+c) whatever the gradient (TP4b), so a + c = 1 − α; SGD's carry the gradient,
  itself L^−α through the multiplier, so 2a + c = 1 − 2α.
* outside the branches (embeddings, final norm, readout) ∂x^L/∂x^0 = Θ(1): no factor.

Exponents are of L relative to the base depth: LR = η·L^−c etc., as the width's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from abccalc.calculus.solver import Step
from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, ZERO, Exp, Optimizer
from abccalc.graph.core import Graph
from abccalc.graph.ops import OPS

ALPHA_RANGE = (HALF, ONE)
_RATIONAL = re.compile(r"\d{1,6}(?:/[1-9]\d{0,5}|\.\d{1,6})?")


@dataclass(frozen=True)
class DepthRule:
    """A parameter's depth exponents: multiplier L^−a, init std L^−b, LR L^−c, and the
    branch add it lies in (None: outside every branch)."""

    a: Exp
    b: Exp
    c: Exp
    branch: str | None


@dataclass(frozen=True)
class Depth:
    """The depth analysis of a graph: ``branches`` maps each branch add to the depth
    exponent α of its multiplier L^−α and ``stream`` to the index of its stream input."""

    alpha: Exp
    blocks: tuple[tuple[str, str, int, int], ...]  # (block, value, base, count)
    branches: dict[str, Exp]
    stream: dict[str, int]
    params: dict[str, DepthRule]
    trace: dict[str, Step] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.blocks)


def parse_alpha(text: str | Exp) -> Exp:
    """``--depth-alpha``: an exact rational in [½, 1] (``1``, ``1/2``, ``0.75``)."""
    if isinstance(text, Fraction | int):
        value = Fraction(text)
    elif isinstance(text, str) and _RATIONAL.fullmatch(text.strip()):
        value = Fraction(text.strip())
    else:
        raise AbcError(f"--depth-alpha {text}: not an exact rational such as 1, 1/2 or 0.75")
    if not ALPHA_RANGE[0] <= value <= ALPHA_RANGE[1]:
        raise AbcError(f"--depth-alpha {text}: α must lie in [1/2, 1]: α < 1/2 blows up at "
                       "init, α > 1 makes the blocks trivial (TP6 Claims 7.1, 7.3)")
    return value


def _iterations(graph: Graph, block: str, count: int) -> list[list[str]]:
    head = block + "."
    out: list[list[str]] = [[] for _ in range(count)]
    for n in graph.order:
        if n.name.startswith(head):
            i, dot, _ = n.name[len(head):].partition(".")
            if dot and i.isdigit() and int(i) < count:
                out[int(i)].append(n.name)
    return out


def _branches(graph: Graph, block: str, carry_in: str, output: str, nodes: list[str]
              ) -> tuple[dict[str, int], dict[str, str]]:
    """(stream index of each branch add, branch add of each node in a branch) of one
    iteration: the stream runs from ``carry_in`` through adds that read it once."""
    stream, index = {carry_in}, {}
    for name in nodes:
        node = graph.node[name]
        on = [i for i, x in enumerate(node.inputs) if x in stream]
        if OPS[node.op].is_sum and len(on) == 1:
            stream.add(name)
            index[name] = on[0]
    if output not in stream:
        raise AbcError(f"{graph.source}: repeat '{block}' has an infinite count, but its "
                       f"output '{output}' is not a residual sum x + f(x) of its carry: "
                       "depth scaling needs residual branches (docs/depth.md); give the "
                       "count as an integer instead")
    member: dict[str, str] = {}
    local = set(nodes)
    for add, k in index.items():
        todo = [x for i, x in enumerate(graph.node[add].inputs) if i != k]
        while todo:
            x = todo.pop()
            if x in local and x not in stream and x not in member:
                member[x] = add
                todo += graph.node[x].inputs
    return index, member


def solve_depth(graph: Graph, optimizer: Optimizer, alpha: Exp | None = ONE) -> Depth:
    """The branches of every infinite repeat block and every parameter's depth exponents
    (module docstring), with the derivation of each in ``trace``. ``alpha`` None: depth is
    not scaled (a preset such as SP, or a params file): every exponent is 0."""
    off = alpha is None
    alpha = ONE if off else parse_alpha(alpha)
    stream: dict[str, int] = {}
    member: dict[str, str] = {}
    blocks = []
    for block, value, base, carry, output in () if off else graph.depth:
        count = graph.values[value]
        blocks.append((block, value, base, count))
        prev = carry
        for i, nodes in enumerate(_iterations(graph, block, count)):
            index, inside = _branches(graph, block, prev, f"{block}.{i}.{output}", nodes)
            stream.update(index)
            member.update(inside)
            prev = f"{block}.{i}.{output}"
    if blocks and optimizer not in (Optimizer.SGD, Optimizer.ADAM):
        raise AbcError(f"{graph.source}: depth exponents are derived for SGD and Adam-like "
                       f"optimizers, not {optimizer.value} (its update is normalized per "
                       f"matrix); drop the base of '{blocks[0][1]}' to scale width only")
    trace: dict[str, Step] = {}
    why_alpha = (f"α = {alpha} (--depth-alpha): stable at init iff α ≥ 1/2 (TP6 Claim 7.1), "
                 "faithful in training iff α ≤ 1 (Claim 7.3); the desiderata leave this "
                 "one-parameter family. Each block's features change by Δf/f = L^(α−1): "
                 + ("Θ(1) at α = 1, every block keeps learning (non-lazy, CompleteP §3)"
                    if alpha == ONE else f"L^{alpha - 1} → 0, the blocks turn lazy as L grows "
                    "(CompleteP §3; α = 1 keeps them learning)"))
    for add in stream:
        trace[f"depth alpha {add}"] = Step(
            f"depth exponent of the branch multiplier at {add}", why_alpha, alpha)
    k = optimizer.k
    lr_in = ONE - alpha if optimizer is Optimizer.ADAM else ONE - 2 * alpha
    params: dict[str, DepthRule] = {}
    for pname, param in graph.params.items():
        add = next((member[u.node] for u in param.uses if u.node in member), None)
        if not blocks:
            rule = ("depth is not scaled by this parametrization" if off and graph.depth
                    else "no infinite repeat count: no depth axis")
            params[pname] = DepthRule(ZERO, ZERO, ZERO, None)
            for what in ("a", "b", "c"):
                trace[f"depth {what} {pname}"] = Step(f"depth {what} of {pname}", rule, ZERO)
            continue
        params[pname] = DepthRule(ZERO, ZERO, lr_in if add else ZERO, add)
        trace[f"depth a {pname}"] = Step(
            f"depth a of {pname}", "gauge: the depth factor of a branch is its multiplier "
            "L^-α at the add, not the parameter's (any (a+θ, b−θ, c−kθ) is the same "
            "training)", ZERO)
        trace[f"depth b {pname}"] = Step(
            f"depth a + b of {pname}",
            (f"Θ(1) at init in depth: it is in the branch of {add}, which reads x^(l−1) = "
             f"x^0 + Σ_(j<l) L^-α·f_j, l ≤ L independent Θ(1) terms: Θ(L^(1/2−α)) ≤ Θ(1) "
             f"for α = {alpha} ≥ 1/2 (CLT), so W₀·x is Θ(1) with a + b = 0")
            if add else "Θ(1) at init in depth: it reads a Θ(1) input (the tokens, or the "
            "stream x^L, Θ(L^(1/2−α)) ≤ Θ(1) at init) outside every branch: a + b = 0", ZERO)
        if add is None:
            rule = ("maximal update in depth outside the branches: the stream's Jacobian "
                    "∂x^L/∂x^0 = Π(1 + L^-α·∂f) is Θ(1), so its update reaches x^L (or the "
                    f"output) at Θ(1) with no depth factor: {k}a + c = 0")
        elif optimizer is Optimizer.ADAM:
            rule = (f"maximal update in depth: Δx^L = Σ_l L^-α·Δf_l sums L correlated "
                    f"updates (LLN, like L), so Δf_l = Θ(L^(α−1)) (TP6 Claim 7.2, "
                    f"α + γ = 1); Adam's ΔW has L^-(a+c) entries whatever the gradient "
                    f"(TP4b), so a + c = 1 − α = {lr_in}")
        else:
            rule = (f"maximal update in depth: Δx^L = Σ_l L^-α·Δf_l sums L correlated "
                    f"updates (LLN, like L), so Δf_l = Θ(L^(α−1)) (TP6 Claim 7.2); SGD's "
                    f"ΔW = L^-(2a+c)·∂L/∂w and ∂L/∂w carries the multiplier L^-α "
                    f"(∂L/∂x^l is Θ(1)), so 2a + c = 1 − 2α = {lr_in}")
        trace[f"depth c {pname}"] = Step(f"depth {k}a + c of {pname}", rule,
                                         params[pname].c)
    return Depth(alpha, tuple(blocks), {a: alpha for a in stream}, stream, params, trace)
