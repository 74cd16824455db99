"""Scalar-like weights applied across an infinite dim (issue 12, point 2).

An MLP-Mixer's token-mixing weight (tok → tok_hidden, both finite) is applied to each of
the n channels, and a QK-norm gain of shape [d_head] to each of n_head heads. Both are
scalar-like (TP5 App. B.2): (a, b, c) = (0, 0, 0) for SGD and Adam. Their gradient sums
over the infinite dim: Θ(n^-½) at init (CLT), Θ(1) once trained (LLN), see
docs/derivations.md. Before the fix SGD gave 2a + c = −1 (LR ∝ n) for the mixer and
``table``/``explain``/``codegen`` raised ``ValueError: exponent 1 on a scalar-like
quantity``.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.graph.core import Role
from abccalc.graph.spec import load_graph
from abccalc.parametrization.gauges import parametrize

ROOT = Path(__file__).resolve().parent.parent
MIXER = str(ROOT / "examples" / "archs" / "mixer_token_mlp.yaml")

QK_NORM = """\
graph: qk_norm
dims: {vocab: 32, ctx: 8, ctx_k: 8, n_head: {base: 4}, d_head: 8, d_model: {base: 32}}
nodes:
  - {name: tokens, op: input, dims: [ctx]}
  - {name: emb, op: embedding, inputs: tokens, vocab: vocab, dims: [ctx, d_model], weight: wte}
  - {name: q, op: linear, inputs: emb, dims: [ctx, n_head, d_head], weight: W_q}
  - {name: k, op: linear, inputs: emb, dims: [ctx, n_head, d_head], weight: W_k}
  - {name: v, op: linear, inputs: emb, dims: [ctx, n_head, d_head], weight: W_v}
  - {name: qn, op: rmsnorm, inputs: q, over: d_head, gain: q_g}
  - {name: kn, op: rmsnorm, inputs: k, over: d_head, gain: k_g}
  - {name: scores, op: contract, inputs: [qn, kn], rename: {ctx: ctx_k}, over: d_head,
     dims: [ctx, n_head, ctx_k]}
  - {name: probs, op: softmax, inputs: scores, over: ctx_k, causal: [ctx, ctx_k]}
  - {name: att, op: contract, inputs: [probs, v], rename: {ctx: ctx_k}, over: ctx_k,
     dims: [ctx, n_head, d_head]}
  - {name: o, op: linear, inputs: att, in: [n_head, d_head], dims: [ctx, d_model], weight: W_o}
  - {name: logits, op: linear, inputs: o, dims: [ctx, vocab], weight: W_unemb}
  - {name: out, op: output, inputs: logits}
"""


@pytest.fixture
def qk_yaml(tmp_path: Path) -> str:
    path = tmp_path / "qk.yaml"
    path.write_text(QK_NORM)
    return str(path)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mixer_token_weight_is_scalar_like_000(optimizer: str) -> None:
    p = parametrize(solve(load_graph(MIXER), optimizer), "table3")
    r = p.params["W_tok"]
    assert r.role is Role.SCALAR
    assert (r.a, r.b, r.c) == (0, 0, 0)
    inv = p.analysis.invariants[("t", "W_tok")]
    assert (inv.init, inv.lr) == (0, 0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_qk_norm_gains_over_infinite_heads_are_000(qk_yaml: str, optimizer: str) -> None:
    p = parametrize(solve(load_graph(qk_yaml), optimizer), "table3")
    for gain in ("q_g", "k_g"):
        r = p.params[gain]
        assert r.role is Role.SCALAR and (r.a, r.b, r.c) == (0, 0, 0), gain


def test_sgd_trace_names_the_lln_over_the_channels() -> None:
    step = solve(load_graph(MIXER), "sgd").trace["lr W_tok@t"]
    assert step.value == 0
    assert "LLN over the 1 infinite dim(s) it is applied across" in step.rule


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mixer_commands_run(run, tmp_path: Path, optimizer: str) -> None:
    """table, explain and codegen (which raised ValueError under SGD) exit 0."""
    code, out, err = run("table", MIXER, "--optimizer", optimizer)
    assert (code, err) == (0, "")
    assert "| W_tok | scalar | weight | tok_hidden×tok | 0 | 0 | 0 |" in out
    code, out, err = run("explain", MIXER, "W_tok", "--optimizer", optimizer)
    assert (code, err) == (0, "") and "result: a = 0, b = 0, c = 0" in out
    code, _, err = run("codegen", MIXER, "--optimizer", optimizer, "--model",
                       "-o", str(tmp_path / "mixer.py"))
    assert code == 0 and "Traceback" not in err


def test_width_exponent_on_scalar_like_is_a_clean_error(run, tmp_path: Path) -> None:
    """A params file giving the scalar-like W_tok an LR ∝ n (the old SGD answer) cannot be
    written as a fan rule: a one-line error naming it, exit 2."""
    params = tmp_path / "p.yaml"
    params.write_text("parameters:\n  W_tok: {a: 0, b: 0, c: -1}\n"
                      "  W_in: {a: 0, b: 0, c: -1}\n  W_out: {a: 0, b: 1, c: 1}\n")
    code, out, err = run("codegen", MIXER, "--optimizer", "sgd", "--params", str(params),
                         "-o", str(tmp_path / "x.py"))
    assert code == 2 and out == ""
    assert err.startswith("abccalc: error: ") and "parameter 'W_tok' is scalar-like" in err
    assert not (tmp_path / "x.py").exists()


# -- measured: the gradient's size and a coordinate check --------------------------------

WIDTHS = [128, 256, 512, 1024]
SEEDS = range(4)


def _module(p):
    from abccalc.emit.codegen import generate

    module = types.ModuleType("mixer_generated")
    exec(compile(generate(p, model=True), module.__name__, "exec"), module.__dict__)
    return module


def _grad_rms(torch, m, width: int, seed: int, steps: int, sgd: bool) -> float:
    """RMS of ∂L/∂W_tok after ``steps`` updates, on one fixed batch (linear loss)."""
    torch.manual_seed(seed)
    model = m.Model({"chan": width})
    m.init_(model)
    groups = m.param_groups(model, 0.1 if sgd else 1e-2, eps=1e-12)  # ε negligible
    opt = torch.optim.SGD(groups) if sgd else torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 8, 16, generator=gen)
    y = 2 * torch.nn.functional.one_hot(torch.randint(0, 4, (8, 16), generator=gen), 4) - 1
    for step in range(steps + 1):
        loss = -(model(x) * y).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        if step < steps:
            opt.step()
    return model.t.weight.grad.pow(2).mean().sqrt().item()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_measured_gradient_clt_at_init_lln_once_trained(optimizer: str) -> None:
    """Slope of RMS(∂L/∂W_tok) against width, geometric mean over 4 seeds: −½ at init
    (CLT over the channels), ≈ 0 after 10 steps (LLN). The rule without the sum over the
    channels predicts −1, which this rules out."""
    torch = pytest.importorskip("torch")
    from abccalc.verify.coordcheck import slope

    m = _module(parametrize(solve(load_graph(MIXER), optimizer), "table8"))
    widths = [64, 128, 256, 512, 1024]
    for steps, lo, hi in ((0, -0.65, -0.35), (10, -0.15, 0.15)):
        rms = [math.exp(sum(math.log(_grad_rms(torch, m, w, s, steps, optimizer == "sgd"))
                            for s in SEEDS) / len(SEEDS)) for w in widths]
        assert lo < slope(widths, rms) < hi, (steps, rms)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_measured_coordcheck_flat(optimizer: str) -> None:
    """abccalc.verify.coordcheck on the mixer: every activation's change after 3 steps has
    |slope| < 0.1 (coordcheck.THRESHOLD), from the geometric mean over 4 seeds of the RMS
    at each width. One seed's slope scatters by about ±0.1 at these widths (a finite
    readout of 64 outputs), so the mean of 4 has a spread near 0.05; a wrong exponent
    shows as a slope ≥ 0.5 (the old LR ∝ n gives ΔW_tok·h = n^½ after one step).
    Widths start at 128: below that the n^-½ part of the first SGD step still shows."""
    pytest.importorskip("torch")
    from abccalc.verify import coordcheck

    p = parametrize(solve(load_graph(MIXER), optimizer), "table8")
    runs = [coordcheck.run(p, WIDTHS, steps=3, seed=s) for s in SEEDS]
    for i, series in enumerate(runs[0].series):
        assert series.predicted_change == 0
        rms = [math.exp(sum(math.log(r.series[i].rms[-1][j]) for r in runs) / len(runs))
               for j in range(len(WIDTHS))]
        assert abs(coordcheck.slope(WIDTHS, rms)) < coordcheck.THRESHOLD, (series.name, rms)
