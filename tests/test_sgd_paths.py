"""SGD (and Adam) through classify, check and verify on every shipped example (issue 12,
point 1), and dead-end parameters (a parameter whose output never reaches the loss).

Before the fix, ±∞ exponents met as ∞ − ∞ = NaN (a layernorm's x̂ of a diverging x, an
exact-zero gradient times a diverging activation) and every SGD path through a norm
ended in ``TypeError: Invalid NaN comparison``; a dead end got c = −∞.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abccalc.calculus.sizes import dead_params
from abccalc.calculus.solver import solve
from abccalc.exponents import NEG_INF, POS_INF, ZERO, Optimizer, minus, plus
from abccalc.graph.spec import load_graph
from abccalc.parametrization.gauges import parametrize
from abccalc.parametrization.paramsfile import ParamsFile
from abccalc.parametrization.presets import PRESETS
from abccalc.verify.check import check
from abccalc.verify.check import render_markdown as check_markdown
from abccalc.verify.classify import classify
from abccalc.verify.classify import render_markdown as classify_markdown

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p.relative_to(ROOT)) for p in
                  [*ROOT.glob("examples/*.yaml"), *ROOT.glob("examples/archs/*.yaml")])
GPT = str(ROOT / "examples" / "gpt.yaml")
LLAMA = str(ROOT / "examples" / "archs" / "llama.yaml")
SP_FILE = str(ROOT / "examples" / "params" / "sp.yaml")

DEAD = """\
graph: dead
dims: {d_in: 8, d: {base: 64}, d_out: 4}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h, op: linear, inputs: x, dims: [d], weight: W_in}
  - {name: a, op: relu, inputs: h}
  - {name: f, op: linear, inputs: a, dims: [d_out], weight: W_out}
  - {name: out, op: output, inputs: f}
  - {name: side, op: linear, inputs: a, dims: [d], weight: W_side}
  - {name: side2, op: linear, inputs: side, dims: [d_out], weight: W_side_out}
"""


def _no_nan(text: str) -> None:
    assert "nan" not in text.lower().replace("nontrivial", "")


@pytest.fixture(scope="module")
def graphs():
    return {f: load_graph(ROOT / f) for f in EXAMPLES}


def test_cross_product_covers_every_shipped_example() -> None:
    assert len(EXAMPLES) >= 10 and "examples/gpt.yaml" in EXAMPLES
    assert "examples/archs/llama.yaml" in EXAMPLES


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_every_preset_optimizer_example(graphs, example: str, preset: str,
                                        optimizer: str) -> None:
    """classify and check give a result (JSON and markdown) with no NaN; μP is stable and
    feature learning (TP4 Thm 3.6, TP4b) and passes check; SP with a width-independent LR
    is unstable (TP4 Thm 4.1; TP4b Remark 2.2.7) on every example (each has a readout
    from an infinite dim)."""
    g = graphs[example]
    opt = Optimizer(optimizer)
    abc = PRESETS[preset](g, opt)
    c = classify(g, opt, abc, preset)
    _no_nan(json.dumps(c.to_dict()) + classify_markdown(c))
    res = check(g, opt, ParamsFile(preset, abc, {}, ()))
    _no_nan(json.dumps(res.to_dict(), ensure_ascii=False) + check_markdown(res))
    if preset == "mup":
        assert c.stable and c.feature_learning and res.ok
    if preset == "sp":
        assert not c.stable and not res.ok


@pytest.mark.parametrize("preset", ["sp", "ntk", "mf"])
@pytest.mark.parametrize("sets", [(), ("--set", "n_layer=1")])
def test_cli_classify_gpt_sgd(run, preset: str, sets: tuple[str, ...]) -> None:
    """The issue's reproducer: exit 0 with a classification, no traceback."""
    code, out, err = run("classify", GPT, "--params", preset, "--optimizer", "sgd", *sets)
    assert (code, err) == (0, "")
    assert "| stable | no |" in out  # 1/√d attention is too large for SGD's updates


@pytest.mark.parametrize("graph", [GPT, LLAMA])
@pytest.mark.parametrize("sets", [(), ("--set", "n_layer=1")])
def test_cli_check_sp_sgd(run, graph: str, sets: tuple[str, ...]) -> None:
    """SP fails check (exit 1, violations listed), cleanly."""
    code, out, err = run("check", graph, "--params", SP_FILE, "--optimizer", "sgd", *sets)
    assert (code, err) == (1, "")
    assert "violations: r = " in out and "unstable" in out


def test_cli_verify_sp_sgd_small(run) -> None:
    """verify --params sp under SGD runs to a verdict (exit 1: SP is not μP)."""
    pytest.importorskip("torch")
    code, out, err = run("verify", GPT, "--params", "sp", "--optimizer", "sgd",
                         "--set", "n_layer=1", "--widths", "16,32,64", "--steps", "1")
    assert code == 1 and "Traceback" not in err
    assert "FAIL" in out


def test_infinity_arithmetic() -> None:
    """−∞ is an exact zero and absorbs (0·∞ = 0); ∞/∞ is +∞ unless known bounded."""
    assert plus(NEG_INF, POS_INF) == NEG_INF
    assert plus(POS_INF, 1) == POS_INF and plus(1, ZERO, -2) == -1
    assert minus(NEG_INF, POS_INF) == NEG_INF
    assert minus(POS_INF, POS_INF) == POS_INF
    assert minus(POS_INF, POS_INF, both_inf=ZERO) == ZERO
    assert minus(1, POS_INF) == NEG_INF


# -- dead ends ----------------------------------------------------------------------------


@pytest.fixture
def dead_yaml(tmp_path: Path) -> str:
    path = tmp_path / "dead.yaml"
    path.write_text(DEAD)
    return str(path)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dead_end_exponents_are_finite(dead_yaml: str, optimizer: str) -> None:
    """A dead end never trains: its LR is width-independent, c = 0 at a = 0 (table3);
    a dead readout's input change is independent of W₀ (no gradient through it), so it
    is Θ(1) at init like a hidden weight, b = 1/2. The live parameters keep μP's
    values (TP5 Table 3: W_out b = 1, Adam c = 1, SGD c = 1; W_in SGD c = −1)."""
    g = load_graph(dead_yaml)
    a = solve(g, optimizer)
    assert a.dead_ends == ("W_side", "W_side_out") == dead_params(g)
    p = parametrize(a, "table3")
    got = {n: (str(r.a), str(r.b), str(r.c)) for n, r in p.params.items()}
    assert got["W_side"] == ("0", "1/2", "0")
    assert got["W_side_out"] == ("0", "1/2", "0")
    assert got["W_out"] == ("0", "1", "1")
    assert got["W_in"] == ("0", "0", "-1" if optimizer == "sgd" else "0")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dead_end_cli_warns_and_outputs_are_finite(run, dead_yaml: str,
                                                   optimizer: str, tmp_path: Path) -> None:
    code, out, err = run("table", dead_yaml, "--optimizer", optimizer, "--format", "json")
    assert code == 0
    assert err.count("abccalc: warning:") == 2
    assert "parameter 'W_side' is a dead end" in err and "'side'" in err
    assert "oo" not in out and "inf" not in out.lower()
    code, out, err = run("explain", dead_yaml, "W_side_out", "--optimizer", optimizer)
    assert code == 0 and "oo" not in out and "dead end" in out
    assert "grad side2: g = -∞, exactly 0" in out
    code, out, err = run("codegen", dead_yaml, "--optimizer", optimizer, "--model",
                         "-o", str(tmp_path / "gen.py"))
    assert code == 0 and "dead end" in err
    code, out, err = run("classify", dead_yaml, "--preset", "sp", "--optimizer", optimizer,
                         "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["dead_ends"] == ["W_side", "W_side_out"]
    side = next(q for q in data["parameters"] if q["name"] == "W_side")
    assert side["r_l"] is None and side["updated_maximally"] is None and side["dead_end"]
    assert data["r"] == "0"  # W_in alone: SP's input layer is updated maximally


def test_dead_end_check_ignores_its_lr(run, dead_yaml: str, tmp_path: Path) -> None:
    """Any LR on a dead end is μP (it never trains); its init still counts."""
    params = tmp_path / "p.yaml"
    params.write_text("parameters:\n  W_in: {a: 0, b: 0, c: -1}\n"
                      "  W_out: {a: 0, b: 1, c: 1}\n  W_side: {a: 0, b: 1/2, c: 5}\n"
                      "  W_side_out: {a: 0, b: 1/2, c: 3}\n")
    code, out, err = run("check", dead_yaml, "--params", str(params), "--optimizer", "sgd")
    assert code == 0 and out.count("OK: this is μP") == 1 and "dead end" in err
    assert "Dead ends" in out and "W_side, W_side_out" in out


def test_dead_end_coordcheck_predicts_finite(dead_yaml: str) -> None:
    """coordcheck's predictions on a dead end are finite numbers (no NaN comparisons)."""
    pytest.importorskip("torch")
    from abccalc.verify import coordcheck

    p = parametrize(solve(load_graph(dead_yaml), "sgd"), "table8")
    cc = coordcheck.run(p, [32, 64, 128], steps=1)
    pred = {s.name: s.predicted_change for s in cc.series}
    assert pred == {"h": 0.0, "a": 0.0, "f": 0.0, "side": 0.0, "side2": 0.0}


TIED_DEAD = """\
graph: tied_dead
dims: {vocab: 16, ctx: 4, d: {base: 32}}
nodes:
  - {name: tokens, op: input, dims: [ctx]}
  - {name: emb, op: embedding, inputs: tokens, vocab: vocab, dims: [ctx, d], weight: wte}
  - {name: h, op: linear, inputs: emb, dims: [ctx, d], weight: W_h}
  - {name: logits, op: linear, inputs: h, dims: [ctx, vocab], weight: wte}
  - {name: out, op: output, inputs: logits}
  - {name: side, op: linear, inputs: emb, dims: [ctx, vocab], weight: wte}
"""


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dead_use_of_a_trained_tied_parameter(tmp_path: Path, optimizer: str) -> None:
    """wte trains through its embedding and readout uses; its third use 'side' is dead.
    That use shares wte's b and c, so its LR follows the live uses and its a + b is the
    one that keeps its ΔW·x = Θ(1): the readout's, 1 (a Θ(1)-at-init rule would give ½
    and an update growing like n^½). Not a dead-end parameter; μP stays stable."""
    path = tmp_path / "tied.yaml"
    path.write_text(TIED_DEAD)
    g = load_graph(path)
    a = solve(g, optimizer)
    assert a.dead_ends == ()
    assert a.invariants[("side", "wte")].init == 1
    assert a.invariants[("side", "wte")].lr == a.invariants[("logits", "wte")].lr
    opt = Optimizer(optimizer)
    c = classify(g, opt, PRESETS["mup"](g, opt), "mup")
    assert c.stable and c.feature_learning and c.r_l("wte") == 0
    assert [t.dead for t in c.param_terms("wte")] == [False, False, True]
