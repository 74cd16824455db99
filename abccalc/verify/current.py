"""The parametrization a live model already has (issue 14 point 4), as the
:class:`~abccalc.parametrization.paramsfile.ParamsFile` that ``check --params FILE`` reads.

In TP5's notation (Def. A.2) a parameter is W = n^-a·w with w₀ ~ N(0, n^-2b) and LR η·n^-c;
a parameter-free constant is n^-α. The model itself says what its a, b, c and α are:

- **b, init.** The model is built on the CPU at each traced width with one fixed seed. The
  root mean square of each parameter's entries is fitted against the width on a log-log
  scale: rms ∝ n^-b, read to the nearest ½ (the grain of every rule in TP5 Tables 3, 8
  and 9). The RMS, not the std, so that a constant tensor has a size too: a LayerNorm
  weight of ones is Θ(1), b = 0, as TP5 B.1 treats vector-like gains. An all-zero tensor
  satisfies every init rule (TP5 App. B): it gets μP's a+b for its first use, less its a,
  so its init is never a violation.
- **a and α, multipliers.** The constants the tracer recorded (:class:`Recorded`). A
  constant at a node that only multiplies (``Op.only_multiplies``, the ``scale`` unit) is
  read as the multiplier of what it multiplies: the uses that take its output as their
  operand (``lm_head(x / m)``, the pre-hooks of abccalc's ``apply_multipliers``: W(x/m) =
  (W/m)x, the bias untouched), else every use at its input's node when it is that node's
  only consumer ((Wx + b)/m), else the α of the contraction it follows
  (``(q @ k.T) * self.scale``). Folded so, it is left with α = 0, μP's for a Θ(1) input.
  A norm's gain never takes it (the norm divides it out).
- **c, learning rates.** From an optimizer factory (``make_opt(model)`` returning an
  optimizer, a list of param groups or the parameters) called at each width: each
  parameter's LR is fitted as lr ∝ n^-c. Or from an LR file (``lr:`` names, globs or
  roles to scale rules, as ``check`` reads it). With neither, one global LR: c = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from abccalc.calculus.sizes import ABC, UseKey, key
from abccalc.calculus.solver import solve
from abccalc.errors import AbcError
from abccalc.exponents import ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Use
from abccalc.graph.ops import OPS
from abccalc.importer.imported import Imported
from abccalc.parametrization.paramsfile import ParamsFile, constant_nodes
from abccalc.verify.learning_rates import read_lr_factory, read_lr_scales, same_class
from abccalc.verify.live import aliases, build_models, global_ratios, lookup, ratios, untraced

INIT_GRAIN = Fraction(1, 2)  # init exponents are read to the nearest ½
GLOBAL_LR = ("plain global-LR training assumed (every parameter at one width-independent "
             "LR); give --optimizer-factory or --lr-scales for your own")


@dataclass(frozen=True)
class InitReading:
    """One parameter's initialization at each width: its RMS, the fitted slope of
    log rms against log n, and what that reads as."""

    name: str
    kind: str  # "random", "constant" (every entry equal) or "zeros"
    rms: tuple[float, ...]
    slope: float | None  # None for zeros
    b: Exp


@dataclass(frozen=True)
class Current:
    """What a model does now: its exponents as a params file, and how each was read."""

    params: ParamsFile
    init: dict[str, InitReading]
    lr: dict[str, tuple[float, ...]]  # measured LRs (empty without an optimizer factory)
    lr_source: str  # "" for the global-LR assumption
    folded: dict[str, str] = field(default_factory=dict)  # scale node -> where it went
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tied: other names
    optimizer_class: str | None = None
    untraced: tuple[str, ...] = ()  # trainable parameters the graph does not hold

    @property
    def notes(self) -> list[str]:
        out = [] if self.lr_source else [GLOBAL_LR]
        if self.untraced:
            out.append("parameters the trace did not reach, not judged: "
                       + ", ".join(self.untraced))
        out += [f"{s}: its constant is read as the multiplier of {w}"
                for s, w in sorted(self.folded.items())]
        return out


def slope(ns: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log n."""
    xs, ls = [math.log(n) for n in ns], [math.log(y) for y in ys]
    mx, my = sum(xs) / len(xs), sum(ls) / len(ls)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ls, strict=True)) / den


def _grain(value: float, grain: Fraction) -> Exp:
    return Fraction(round(value / grain)) * grain


def read_init(imp: Imported, models: list[tuple[dict[str, int], Any]], glob: list[float],
              mup_b: Callable[[str], Exp]) -> dict[str, InitReading]:
    """Each parameter's init exponent b (rms ∝ n^-b); ``mup_b(p)`` is used for zeros."""
    import torch

    rms: dict[str, list[float]] = {p: [] for p in imp.graph.params}
    numel: dict[str, list[int]] = {p: [] for p in imp.graph.params}
    const: dict[str, bool] = dict.fromkeys(imp.graph.params, True)
    for knobs, model in models:
        named = lookup(model, imp, knobs)
        with torch.no_grad():
            for p in imp.graph.params:
                t = named[p].detach().double()
                rms[p].append(float(t.pow(2).mean().sqrt()) if t.numel() else 0.0)
                numel[p].append(t.numel())
                const[p] = const[p] and bool((t == t.flatten()[0]).all())
    out = {}
    for p in imp.graph.params:
        if max(rms[p]) == 0:
            out[p] = InitReading(p, "zeros", tuple(rms[p]), None, mup_b(p))
            continue
        if min(rms[p]) == 0:
            raise AbcError(f"parameter '{p}': zero at some traced widths and not at others "
                           f"(rms {rms[p]}); its init does not scale like a power of width")
        s = slope(ratios(imp.graph, p, numel[p], glob), rms[p])
        out[p] = InitReading(p, "constant" if const[p] else "random", tuple(rms[p]), s,
                             -_grain(s, INIT_GRAIN))
    return out


def _uses_at(graph: Graph) -> dict[str, list[Use]]:
    at: dict[str, list[Use]] = {}
    for param in graph.params.values():
        for u in param.uses:
            at.setdefault(u.node, []).append(u)
    return at


def read_multipliers(imp: Imported) -> tuple[dict[UseKey, Exp], dict[str, Exp],
                                             dict[str, str]]:
    """a of every use and α of every constant node from the recorded constants, scale
    nodes folded into the use or contraction next to them (module docstring)."""
    g = imp.graph
    at = _uses_at(g)
    consumers: dict[str, list[str]] = {}
    for n in g.order:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n.name)
    a: dict[UseKey, Exp] = {key(u): ZERO for p in g.params.values() for u in p.uses}
    alpha: dict[str, Exp] = dict.fromkeys(constant_nodes(g), ZERO)
    folded: dict[str, str] = {}
    for name, rec in sorted(imp.constants.items()):
        node = g.node.get(name)
        if node is None:
            raise AbcError(f"{imp.spec}: a constant is recorded at '{name}', not a node of "
                           "the traced graph")
        target = name
        if OPS[node.op].only_multiplies:
            after, (before,) = consumers.get(name, []), node.inputs
            direct = [u for u in at.get(after[0], []) if OPS[g.node[after[0]].op].operand_label(
                g.node[after[0]], u) == name] if len(after) == 1 else []
            if direct:
                for u in direct:  # W(x·m) = (W·m)x: the uses that multiply it, not a bias
                    a[key(u)] += rec.exponent
                target = f"{after[0]} (its weight)"
            elif consumers.get(before) == [name] and before in at:
                for u in at[before]:  # (Wx + b)·m: every use at that node
                    a[key(u)] += rec.exponent
                target = before
            elif consumers.get(before) == [name] and before in alpha:
                alpha[before] += rec.exponent
                target = before
            if target != name:
                folded[name] = target
                continue
        if name in alpha:
            alpha[name] += rec.exponent
        elif name in at:
            for u in at[name]:
                a[key(u)] += rec.exponent
        else:
            raise AbcError(f"{imp.spec}: a constant is recorded at '{name}' ({node.op}), "
                           "which neither carries a constant nor uses a parameter")
    return a, alpha, folded


def current(imp: Imported, optimizer: Optimizer | str, *,
            factory: Callable[[Any], Any] | None = None, factory_name: str = "",
            lr_scales: str | None = None, seed: int = 0) -> Current:
    """The live model's own parametrization (module docstring), ready for
    :func:`abccalc.verify.check.check`."""
    if factory is not None and lr_scales is not None:
        raise AbcError("give either --optimizer-factory or --lr-scales, not both")
    opt = Optimizer.parse(optimizer) if isinstance(optimizer, str) else optimizer
    g = imp.graph
    a, alpha, folded = read_multipliers(imp)
    invariants = solve(g, opt).invariants
    first = {p: param.uses[0] for p, param in g.params.items()}

    def mup_b(p: str) -> Exp:  # zeros satisfy every init rule (TP5 App. B)
        return invariants[key(first[p])].init - a[key(first[p])]

    glob = global_ratios(imp)
    models = build_models(imp, seed)
    init = read_init(imp, models, glob, mup_b)
    lrs: dict[str, tuple[float, ...]] = {}
    cls = None
    if factory is not None:
        c, lrs, cls = read_lr_factory(imp, models, factory, factory_name, glob)
        same_class(cls, opt, factory_name)
        source = f"--optimizer-factory {factory_name}"
    elif lr_scales is not None:
        c, source = read_lr_scales(imp, lr_scales), f"--lr-scales {lr_scales}"
    else:
        c, source = dict.fromkeys(g.params, ZERO), ""
    b = {p: r.b for p, r in init.items()}
    pf = ParamsFile(f"{imp.spec} (measured)", ABC(a, b, c, alpha), dict.fromkeys(g.params,
                    "measured"), ())
    model = models[0][1]
    return Current(pf, init, lrs, source, folded, aliases(model, g), cls, untraced(model, g))
