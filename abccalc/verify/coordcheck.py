"""Empirical coordinate check (microsoft/mup's coord check; TP5 Figure 5).

Build the generated model at several widths, train a few steps on seeded synthetic data,
and record the RMS coordinate size of every activation's change x_t − x_0 on a fixed
batch (t = 0: of x_0 itself). Each activation's log–log slope against width estimates its
width exponent; the symbolic propagation (:func:`abccalc.calculus.sizes.propagate`) predicts it.
"""

from __future__ import annotations

import itertools
import math
import types
from dataclasses import dataclass

from abccalc.calculus.sizes import propagate
from abccalc.errors import AbcError
from abccalc.exponents import NEG_INF, Optimizer
from abccalc.graph.ops import OPS
from abccalc.parametrization.gauges import Parametrization
from abccalc.verify.torchopt import optimizers

# Width exponents of an abc-parametrization are multiples of 1/2 (CLT: √n, LLN: n; TP4 §3),
# so a measured slope is read as the nearest multiple of 1/2: |slope − e| ≤ 1/4 means
# exponent e. One tolerance for every verdict (docs/verdicts.md).
THRESHOLD = 0.25
MAX_PARAMS = 100_000_000  # trainable parameters at the largest width (≈ 1.6 GB with Adam)
MAX_WIDTH = 2**31 - 1
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit seed
PLOT_FORMATS = (".png", ".pdf", ".svg")
TOKENS = 8  # distinct training vectors (examples or tokens) and keys per query, at most


@dataclass(frozen=True)
class Series:
    """RMS sizes of one activation: ``rms[step][i]`` at ``widths[i]``."""

    name: str
    rms: list[list[float]]
    slopes: list[float]
    predicted_init: float
    predicted_change: float
    clt: bool = False  # downstream of a logit contraction: clause 2 applies (consistent)


@dataclass(frozen=True)
class CoordCheck:
    graph: str
    parametrization: str
    optimizer: str
    widths: list[int]
    steps: int
    lr: float
    seed: int
    series: list[Series]

    def verdicts(self) -> list[tuple[str, str, float, float]]:
        """(activation, verdict, slope after the last step, predicted exponent)."""
        return [(s.name, verdict(s, self.widths), s.slopes[-1], s.predicted_change)
                for s in self.series]

    @property
    def flat(self) -> bool:
        """No activation grows or shrinks with width (each is ``flat`` or ``unchanged``)."""
        return all(v in ("flat", "unchanged") for _, v, _, _ in self.verdicts())


def unchanged(s: Series) -> bool:
    """The activation did not move at any width (e.g. it depends on no parameter)."""
    return all(r <= 1e-7 * max(i, 1e-30) for r, i in zip(s.rms[-1], s.rms[0], strict=True))


def clt_fit(widths: list[int], rms: list[float], e: float) -> tuple[float, float]:
    """Fit RMS² = n^{2e}(A² + B²/n), A², B² ≥ 0, in relative error; return (A², B²).

    A Θ(n^e) quantity of an abc-parametrization is its LLN limit plus fluctuations a CLT
    factor √n smaller (TP4 §3, TP5 App. J), independent of it at leading order, so their
    squares add. Attention logits and what they feed are such a case (:func:`clt_nodes`:
    the random W_q, W_k carry an input's change into q·k as a sum of d terms of random
    sign)."""
    ys = [max(r * r * n ** (-2 * e), 1e-300) for n, r in zip(widths, rms, strict=True)]
    rows = [(1 / y, 1 / (n * y)) for n, y in zip(widths, ys, strict=True)]  # ≈ 1 each

    def solve2(cols: tuple[int, ...]) -> list[float]:
        coef = [0.0, 0.0]
        if cols == (0, 1):
            s00 = sum(r[0] ** 2 for r in rows)
            s01 = sum(r[0] * r[1] for r in rows)
            s11 = sum(r[1] ** 2 for r in rows)
            t0, t1 = sum(r[0] for r in rows), sum(r[1] for r in rows)
            det = s00 * s11 - s01 ** 2
            if det > 0:
                coef = [(t0 * s11 - t1 * s01) / det, (s00 * t1 - s01 * t0) / det]
        else:
            c = cols[0]
            coef[c] = sum(r[c] for r in rows) / sum(r[c] ** 2 for r in rows)
        return coef

    coef = solve2((0, 1))
    if coef[0] < 0 or coef[1] < 0:
        fits = [solve2((0,)), solve2((1,))]
        coef = min(fits, key=lambda c: sum((c[0] * r[0] + c[1] * r[1] - 1) ** 2
                                           for r in rows))
    return coef[0], coef[1]


def lln_share(s: Series, widths: list[int], e: float) -> float:
    """Fraction of RMS² at the largest width that :func:`clt_fit` assigns to the LLN part."""
    a2, b2 = clt_fit(widths, s.rms[-1], e)
    n = widths[-1]
    return a2 / (a2 + b2 / n) if a2 + b2 > 0 else 0.0


def consistent(s: Series, widths: list[int], e: float) -> bool:
    """The measured change of ``s`` is Θ(n^e): its slope is within THRESHOLD of ``e``, or,
    for an activation predicted to carry a CLT term (``s.clt``, :func:`clt_nodes`), it lies
    in [e − 1/2 − THRESHOLD, e) as a Θ(n^e) limit plus that n^{e−1/2} term does, and
    :func:`clt_fit` puts at least half of RMS² at the largest width in the limit (a
    genuinely vanishing Θ(n^{e−1/2}) quantity has none)."""
    slope = s.slopes[-1]
    if abs(slope - e) <= THRESHOLD:
        return True
    return s.clt and e - 0.5 - THRESHOLD <= slope < e and lln_share(s, widths, e) >= 0.5


def clt_nodes(graph) -> set[str]:
    """Activations whose change carries a predicted CLT term: a ``contract`` of two
    activations over an infinite dim (attention logits qᵀk/d) and everything it feeds.

    Its change has the LLN part, Θ(n^e), from Δq·k_0 with Δq built from k_0 by the
    gradient, and parts such as (W_q Δx)·k_0 / d where the random W_q, W_k carry an
    input change Δx: two independent vectors, a sum of d terms of random sign, n^{e−1/2}
    (TP4 §3). Its constant is large at small widths (docs/verdicts.md)."""
    seeds = [n.name for n in graph.nodes if OPS[n.op].constant and len(n.inputs) == 2
             and not any(OPS[graph.node[i].op].is_input for i in n.inputs)
             and any(graph.dims[d].infinite for d in n.over)]
    out: set[str] = set()
    while seeds:
        name = seeds.pop()
        if name not in out:
            out.add(name)
            seeds.extend(graph.consumers[name])
    return out


def shorten_sequences(graph, dims: dict[str, dict], tokens: int) -> dict[str, int]:
    """Shorten each sequence dim (a finite dim of an input read by an embedding) and the
    key dims a ``contract`` renames from it (``ctx → ctx_k``) to at most ``tokens``, in
    the generated module's ``DIMS``; return the new sizes.

    A query's logit change sums over its keys: ΔW_q is built from every key k(t''), and
    Δq(t)·k(t') picks up ⟨k(t''), k(t')⟩ / d_head, n^−1/2 each, from the ctx_k − 1 other
    keys, a term of relative size √(ctx_k / d_head) beside the Θ(1) limit. With ctx_k 64
    and d_head 16…256 it dominates (docs/verdicts.md); the limit is n → ∞ at fixed ctx."""
    seq = {d for n in graph.nodes if OPS[n.op].is_input
           and any(OPS[graph.node[c].op].reads_ids for c in graph.consumers[n.name])
           for d in n.dims if not graph.dims[d].infinite}
    seq |= {new for n in graph.nodes for old, new in n.rename if old in seq}
    out = {}
    for d in sorted(seq):
        if d in dims and dims[d]["size"] > tokens:
            dims[d]["size"] = out[d] = tokens
    return out


def verdict(s: Series, widths: list[int]) -> str:
    """``unchanged`` (no change at any width); ``flat`` when the change is Θ(1) by
    :func:`consistent`; else ``grows`` or ``shrinks`` by the sign of the slope."""
    if unchanged(s):
        return "unchanged"
    if consistent(s, widths, 0.0):
        return "flat"
    return "grows" if s.slopes[-1] > 0 else "shrinks"


def agrees(s: Series, widths: list[int]) -> bool:
    """The measurement matches the prediction: an activation predicted never to change
    (exponent −∞) is unchanged; otherwise its change is Θ(n^predicted) by
    :func:`consistent`."""
    if s.predicted_change == NEG_INF:
        return unchanged(s)
    return not unchanged(s) and consistent(s, widths, s.predicted_change)


def slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(width)."""
    xs = [math.log(w) for w in widths]
    ys = [math.log(max(v, 1e-30)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)


def check_widths(widths: list[int]) -> None:
    """At least 3 increasing widths in 1…MAX_WIDTH (their size is checked in :func:`run`)."""
    if any(not 1 <= w <= MAX_WIDTH for w in widths):
        raise AbcError(f"--widths {','.join(map(str, widths))}: widths must be between 1 "
                       f"and {MAX_WIDTH}")
    if len(widths) < 3:
        raise AbcError(f"--widths {','.join(map(str, widths))}: give at least 3 widths "
                       "to fit a slope")
    if any(b <= a for a, b in itertools.pairwise(widths)):
        raise AbcError(f"--widths {','.join(map(str, widths))}: widths must increase")


def check_options(*, lr: float | None = None, seed: int = 0, steps: int = 1,
                  batch: int | None = None, loss: str = "linear") -> None:
    """The training options of :func:`run`, checked before any work."""
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise AbcError(f"--lr {lr}: the learning rate must be a positive finite number")
    if not 0 <= seed <= MAX_SEED:
        raise AbcError(f"--seed {seed}: must be between 0 and 2^63 - 1")
    if steps < 1:
        raise AbcError(f"--steps {steps}: must be at least 1")
    if batch is not None and batch < 1:
        raise AbcError(f"--batch {batch}: must be at least 1")
    if loss not in LOSSES:
        raise AbcError(f"--loss {loss}: expected one of {', '.join(LOSSES)}")


def check_plot_path(path: str) -> None:
    """``--plot`` must end in a format :func:`plot` writes."""
    if not path.lower().endswith(PLOT_FORMATS):
        raise AbcError(f"--plot {path}: unsupported file type; use a name ending in "
                       f"{', '.join(PLOT_FORMATS)}")


def check_graph(p: Parametrization) -> None:
    """A coordinate check varies the width along an infinite dim (a graph always has
    parameters: the builder refuses one without)."""
    graph = p.graph
    if not any(d.infinite and d.of is None for d in graph.dims.values()):
        raise AbcError(f"{graph.source}: no infinite dim to vary the width along")


def _check_size(torch, gen_module, p: Parametrization, width: int) -> None:
    """Refuse a largest width whose model exceeds MAX_PARAMS (counted without allocating)."""
    with torch.device("meta"):
        model = gen_module.Model(_widths_for(p, width))
    n = sum(x.numel() for x in model.parameters())
    if n > MAX_PARAMS:
        raise AbcError(f"{p.graph.source}: --widths: the model at width {width} has {n:,} "
                       f"parameters, over the limit of {MAX_PARAMS:,}; use smaller widths")


def import_torch() -> types.ModuleType:
    try:
        import torch
    except ImportError:
        raise AbcError("coordcheck needs PyTorch: pip install 'abccalc[torch]'") from None
    return torch


def _module(p: Parametrization, lion: bool = False) -> types.ModuleType:
    from abccalc.emit.codegen import generate  # sympy and torch only when a model is built

    module = types.ModuleType(f"abccalc_generated_{p.graph.name}")
    exec(compile(generate(p, model=True, lion=lion), module.__name__, "exec"),
         module.__dict__)
    return module


def _widths_for(p: Parametrization, width: int) -> dict[str, int]:
    """All independent infinite dims scaled by width / base of the first one."""
    dims = [d for d in p.graph.dims.values() if d.infinite and d.of is None]
    ratio = width / dims[0].size
    return {d.name: max(1, round(d.size * ratio)) for d in dims}


def default_batch(p: Parametrization, examples: int = TOKENS) -> int:
    """About ``examples`` examples or tokens (sequences shortened by
    :func:`shorten_sequences`)."""
    graph = p.graph
    tokens = max([math.prod(min(graph.dims[d].size, examples) for d in n.dims)
                  for n in graph.nodes
                  if OPS[n.op].is_input and any(OPS[graph.node[c].op].reads_ids
                                                for c in graph.consumers[n.name])] or [1])
    return max(1, examples // tokens)


def _batch(torch, p: Parametrization, sizes: dict[str, int], batch: int, gen):
    """Seeded inputs (ids for embedding inputs, N(0, 1) otherwise) and class targets over
    the output's last dim."""
    graph = p.graph
    inputs = []
    for node in graph.order:  # the generated Model's INPUTS order
        if not OPS[node.op].is_input:
            continue
        shape = (batch, *(sizes[d] for d in node.dims))
        vocab = [graph.node[c].vocab for c in graph.consumers[node.name]
                 if OPS[graph.node[c].op].reads_ids]
        if vocab:
            inputs.append(torch.randint(0, sizes[vocab[0]], shape, generator=gen))
        else:
            inputs.append(torch.randn(shape, generator=gen))
    out = graph.outputs[0]
    shape = (batch, *(sizes[d] for d in out.dims[:-1]))
    targets = torch.randint(0, sizes[out.dims[-1]], shape, generator=gen)
    return inputs, targets


LOSSES = ("linear", "xent")


def _train(torch, gen_module, p: Parametrization, names: list[str], width: int, *,
           init_seed: int, data_seed: int, steps: int, lr: float, batch: int, loss: str,
           run_as: str | None = None) -> dict[str, list[float]]:
    """One model at ``width``: per activation, the mean square of x_0 (step 0) and of
    x_t − x_0 after each step t."""
    torch.manual_seed(init_seed)
    model = gen_module.Model(_widths_for(p, width))
    gen_module.init_(model)
    opts = optimizers(torch, gen_module, model, p, lr, run_as)
    # one fixed batch, trained on and measured: ΔW is built from the same inputs it is
    # measured on, as in mup's coord check (LLN correlation, TP5 Table 14)
    probe, targets = _batch(torch, p, model.sizes, batch,
                            torch.Generator().manual_seed(data_seed))
    ms: dict[str, list[float]] = {n: [] for n in names}
    x0: dict = {}
    for step in range(steps + 1):
        acts: dict = {}
        with torch.no_grad():
            model(*probe, capture=acts)
        for n in names:
            x = acts[n].float()
            if step == 0:
                x0[n] = x
            ms[n].append((x if step == 0 else x - x0[n]).pow(2).mean().item())
        if step == steps:
            break
        logits = model(*probe)
        if loss == "xent":
            value = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        else:  # ∂L/∂f = −y whatever f is: no finite-width effect of f_0 (TP5 D.2)
            y = torch.nn.functional.one_hot(targets, logits.shape[-1]).float()
            value = -(logits * (2 * y - 1)).sum(-1).mean()
        for opt in opts:
            opt.zero_grad()
        value.backward()
        for opt in opts:
            opt.step()
    return ms


def run(p: Parametrization, widths: list[int], *, steps: int = 5, lr: float | None = None,
        seed: int = 0, batch: int | None = None, name: str = "mup", loss: str = "linear",
        repeats: int = 3, run_as: str | None = None) -> CoordCheck:
    """Train each width ``steps`` steps and fit per-activation slopes.

    The default batch holds about TOKENS examples (tokens, for inputs read by an
    embedding), and sequences are shortened to TOKENS positions (:func:`shorten_sequences`):
    Adam's first update is sign-like, so ΔW·x is LLN-sized only once the width exceeds
    the number of distinct training vectors, and a logit's change only once d_head
    exceeds the keys per query; few of them keep small widths in the asymptotic regime.
    Each width is trained from ``repeats`` initializations (seeds
    ``seed``, ``seed + 1``, … mod 2^63; the batch is drawn with ``seed``) and the RMS is
    the root of their mean square: the CLT correction of :func:`consistent` is a statement
    about that expectation, and one initialization's slope fluctuates by ±0.1 or more.
    ``run_as`` steps with another torch optimizer than ``p``'s class
    (:mod:`abccalc.verify.torchopt`): Lion, or Muon with match_rms_adamw."""
    check_widths(widths)
    check_options(lr=lr, seed=seed, steps=steps, batch=batch, loss=loss)
    if repeats < 1:
        raise AbcError(f"repeats {repeats}: must be at least 1")
    check_graph(p)
    batch = batch or default_batch(p)
    torch = import_torch()
    gen_module = _module(p, lion=run_as == "lion")
    shorten_sequences(p.graph, gen_module.DIMS, TOKENS)
    _check_size(torch, gen_module, p, widths[-1])
    lr = lr if lr is not None else (0.1 if p.optimizer is Optimizer.SGD else 1e-2)
    sizes = propagate(p.graph, p.optimizer, p.abc())
    names = [n.name for n in p.graph.order
             if not (OPS[n.op].is_input or OPS[n.op].is_output)]
    clt = clt_nodes(p.graph)
    rms: dict[str, list[list[float]]] = {n: [[] for _ in range(steps + 1)] for n in names}
    for width in widths:
        runs = [_train(torch, gen_module, p, names, width, init_seed=(seed + k) % 2**63,
                       data_seed=seed, steps=steps, lr=lr, batch=batch, loss=loss,
                       run_as=run_as)
                for k in range(repeats)]
        for n in names:
            for step in range(steps + 1):
                rms[n][step].append(math.sqrt(sum(r[n][step] for r in runs) / repeats))
    series = []
    for n in names:
        change = sizes.sd[n]
        series.append(Series(n, rms[n], [slope(widths, r) for r in rms[n]],
                             float(sizes.s0[n]),
                             float("-inf") if change == NEG_INF else float(change),
                             n in clt))
    return CoordCheck(p.graph.name, name, run_as or p.optimizer.value, list(widths), steps, lr,
                      seed, series)


def markdown(cc: CoordCheck) -> str:
    """Per activation: the slope after the last step, the verdict and the prediction."""
    lines = [f"## Coordinate check: `{cc.graph}`, {cc.parametrization}, {cc.optimizer}",
             "",
             f"Widths {', '.join(map(str, cc.widths))}; {cc.steps} steps at LR {cc.lr:g}; "
             f"seed {cc.seed}. Slope of log RMS(x_t − x_0) against log width; "
             f"|slope| > {THRESHOLD} counts as growing or shrinking (docs/verdicts.md).",
             "",
             "| activation | verdict | slope (last step) | slopes by step 1…T | predicted |",
             "|---|---|---|---|---|"]
    for s, (_, verdict, last, pred) in zip(cc.series, cc.verdicts(), strict=True):
        steps = ", ".join(f"{x:+.2f}" for x in s.slopes[1:])
        lines.append(f"| {s.name} | {verdict} | {last:+.2f} | {steps} | "
                     f"{'—' if pred == float('-inf') else f'n^{pred:g}'} |")
    grows = [s.name for s, v in zip(cc.series, cc.verdicts(), strict=True)
             if v[1] not in ("flat", "unchanged")]
    summary = "not flat: " + ", ".join(grows) if grows else \
        "flat: every activation is width-independent"
    lines += ["", f"**{summary}**"]
    return "\n".join(lines) + "\n"


def as_dict(cc: CoordCheck) -> dict:
    return {
        "graph": cc.graph, "parametrization": cc.parametrization, "optimizer": cc.optimizer,
        "widths": cc.widths, "steps": cc.steps, "lr": cc.lr, "seed": cc.seed,
        "threshold": THRESHOLD, "flat": cc.flat,
        "activations": [
            {"name": s.name, "verdict": v[1], "slope": s.slopes[-1], "slopes": s.slopes,
             "rms": s.rms, "predicted_init": s.predicted_init,
             "predicted_change": None if s.predicted_change == float("-inf")
             else s.predicted_change}
            for s, v in zip(cc.series, cc.verdicts(), strict=True)],
    }


def plot(cc: CoordCheck, path: str) -> None:
    """mup-style coord check: one panel per step, RMS size against width, log–log."""
    check_plot_path(path)
    try:
        import matplotlib
    except ImportError:
        raise AbcError("--plot needs matplotlib: pip install 'abccalc[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = cc.steps + 1
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), sharex=True)
    for t, ax in enumerate(axes):
        for s in cc.series:
            ax.plot(cc.widths, s.rms[t], marker="o", ms=3, lw=1, label=s.name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title("t = 0: RMS x_0" if t == 0 else f"t = {t}: RMS(x_t − x_0)", fontsize=9)
        ax.set_xlabel("width")
    axes[0].set_ylabel("RMS coordinate size")
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(f"{cc.graph}: {cc.parametrization}, {cc.optimizer}, LR {cc.lr:g}")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise AbcError(f"{path}: cannot write the plot: {e.strerror}") from None
    finally:
        plt.close(fig)
