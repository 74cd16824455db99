"""Equivalent variants (issue #4 points 1-2): ``--variant all|auto``, ``--shift``, ``--form
ratio`` and ``--base``, checked against TP5 Lemma J.1, TP5 Tables 8/9 and TP5 Eq. 4."""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from pathlib import Path

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from abccalc import load_graph, parametrize, solve
from abccalc.calculus.sizes import key
from abccalc.emit.render import latex, rows
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.parametrization.gauges import (
    VARIANTS,
    Conflict,
    parametrize_all,
    parametrize_auto,
    parse_theta,
)
from abccalc.parametrization.rules import ALPHA, ETA, FAN_IN, SIGMA, M, fmt, greek

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
GPT = str(ROOT / "examples" / "gpt.yaml")
R = sympy.Rational

# An embedding E (vocab → width) reused as the readout weight (width → vocab).
TIED = """\
graph: tied
dims:
  vocab: 100
  ctx: 8
  width: {base: 64}
nodes:
  - {name: tokens, op: input, dims: [ctx]}
  - {name: emb, op: embedding, inputs: tokens, vocab: vocab, dims: [ctx, width], weight: E}
  - {name: h, op: linear, inputs: emb, dims: [ctx, width], weight: W, bias: b}
  - {name: act, op: relu, inputs: h}
  - {name: logits, op: linear, inputs: act, dims: [ctx, vocab], weight: E}
  - {name: out, op: output, inputs: logits}
"""
T3 = ("--variant", "table3")  # TP5 Table 3 cells; the default variant is table8


@pytest.fixture
def tied(tmp_path: Path) -> str:
    path = tmp_path / "tied.yaml"
    path.write_text(TIED)
    return str(path)


def _json(run, *args: str) -> dict:
    code, out, err = run("table", *args, "--format", "json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def _by_name(params: list[dict]) -> dict[str, dict]:
    return {p["name"]: p for p in params}


@cache
def _analysis(path: str, opt: str):
    return solve(load_graph(path), opt)


def _error(run, *args: str) -> str:
    code, out, err = run("table", *args)
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("abccalc: error: ")
    return err


# -- the abc-symmetry: TP5 Lemma J.1's worked example ------------------------------------

@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_lemma_j1_table3_to_table8(opt: str) -> None:
    """Output weight of Table 3 with θ = 1/fan_in (exponent shift 1): A = 1/fan_in, B = 1,
    C = η·fan_in (SGD, C/θ²) or η (Adam, C/θ): Table 8's output weight."""
    an = _analysis(MLP, opt)
    w3 = parametrize(an, "table3", {"W3": R(1)}).params["W3"]
    sgd = opt == "sgd"
    assert (w3.a, w3.b, w3.c) == (1, 0, -1 if sgd else 0)
    row = _by_name(rows(parametrize(an, "table3", {"W3": R(1)})))["W3"]
    assert (row["multiplier"], row["init_var"], row["lr"]) == \
        ("1/fan_in", "1", "fan_in" if sgd else "1")
    t8 = parametrize(an, "table8").params["W3"]
    assert (w3.a, w3.b, w3.c) == (t8.a, t8.b, t8.c)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_lemma_j1_table3_to_table9(opt: str) -> None:
    """θ = 1/√fan_in (shift ½) takes Table 3's output weight to Table 9's."""
    an = _analysis(MLP, opt)
    shifted = parametrize(an, "table3", {"W3": R(1, 2)})
    w3, t9 = shifted.params["W3"], parametrize(an, "table9").params["W3"]
    assert (w3.a, w3.b, w3.c) == (t9.a, t9.b, t9.c)
    assert (w3.a, w3.b, w3.c) == (R(1, 2), R(1, 2), 0 if opt == "sgd" else R(1, 2))
    row = _by_name(rows(shifted))["W3"]
    assert (row["multiplier"], row["init_var"]) == ("1/sqrt(fan_in)", "1/fan_in")
    assert row["lr"] == ("1" if opt == "sgd" else "1/sqrt(fan_in)")


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_cli_shift_w3_equals_table8_row(run, opt: str) -> None:
    shifted = _json(run, MLP, *T3, "--optimizer", opt, "--shift", "W3=1")
    t8 = _json(run, MLP, "--optimizer", opt, "--variant", "table8")
    assert shifted["variant"] == "table3"
    assert shifted["shifts"] == {"W3": "1"}
    assert _by_name(shifted["parameters"])["W3"] == _by_name(t8["parameters"])["W3"]
    # the other parameters are untouched
    base = _by_name(_json(run, MLP, *T3, "--optimizer", opt)["parameters"])
    for name in ("W1", "b1", "W2", "b2"):
        assert _by_name(shifted["parameters"])[name] == base[name]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("theta", [R(-1), R(-1, 2), R(1, 3), R(1), R(2)])
def test_shift_keeps_invariants(opt: str, theta) -> None:
    an = _analysis(MLP, opt)
    k = 2 if opt == "sgd" else 1
    p0 = parametrize(an, "table3")
    p1 = parametrize(an, "table3", {n: theta for n in p0.params})
    for name, r0 in p0.params.items():
        r1 = p1.params[name]
        assert (r1.a, r1.b, r1.c) == (r0.a + theta, r0.b - theta, r0.c - k * theta)
        assert r1.a + r1.b == r0.a + r0.b
        assert k * r1.a + r1.c == k * r0.a + r0.c


def test_shift_markdown_names_the_symmetry(run) -> None:
    code, out, err = run("table", MLP, "--optimizer", "sgd", "--shift", "W3=-1/2")
    assert code == 0, err
    assert "(a+θ, b−θ, c−2θ)" in out
    assert "`W3` θ = -1/2" in out
    code, out, _ = run("table", MLP, "--optimizer", "adam", "--shift", "W3=1/2")
    assert "(a+θ, b−θ, c−θ)" in out


def test_parse_theta() -> None:
    assert parse_theta("1/2") == R(1, 2)
    assert parse_theta("-1") == -1
    assert parse_theta("0.25") == R(1, 4)
    for bad in ("x", "1/0", "sqrt(2)", "inf", "nan", ""):
        with pytest.raises(AbcError):
            parse_theta(bad)


@pytest.mark.parametrize("args, needle", [
    (("--shift", "W9=1"), "unknown parameter 'W9'"),
    (("--shift", "W3=sqrt(2)"), "not an exact rational"),
    (("--shift", "W3=1/0"), "divides by zero"),
    (("--shift", "W3"), "expected NAME=VALUE"),
    (("--base", "d_in=8"), "'d_in' is finite"),
    (("--base", "depth=8"), "unknown dim 'depth'"),
    (("--base", "width=0"), "positive integer"),
    (("--base", "width=1.5"), "positive integer"),
])
def test_bad_shift_and_base(run, args: tuple[str, ...], needle: str) -> None:
    err = _error(run, MLP, *args)
    assert needle in err
    assert "mlp.yaml" in err or "expected NAME=VALUE" in err


def test_base_of_a_times_dim_is_an_error(run) -> None:
    err = _error(run, GPT, "--base", "d_ff=1024")
    assert "'d_ff' is 4 × d_model and follows its base" in err
    assert "d_model" in err


# -- --variant all -----------------------------------------------------------------------

@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_all_json(run, opt: str) -> None:
    data = _json(run, MLP, "--optimizer", opt, "--variant", "all")
    assert set(data) == {"graph", "optimizer", "variant", "variants"}
    assert (data["graph"], data["optimizer"], data["variant"]) == ("mlp", opt, "all")
    assert list(data["variants"]) == list(VARIANTS)
    assert list(VARIANTS) == ["table3", "table8", "table9", "tp4", "unit"]
    w3 = _by_name(data["variants"]["table8"]["parameters"])["W3"]
    assert (w3["a"], w3["b"], w3["multiplier"]) == ("1", "0", "1/fan_in")
    for name, obj in data["variants"].items():  # each is the single-variant object
        assert obj == _json(run, MLP, "--optimizer", opt, "--variant", name)


def test_all_markdown_merges_identical_variants(run) -> None:
    code, out, err = run("table", MLP, "--optimizer", "sgd", "--variant", "all")
    assert code == 0, err
    lines = out.splitlines()
    assert "| variant |  | Input weights & all biases | Output weights | Hidden weights |" \
        in lines
    assert "| table3 | Init. Var. | 1/fan_in | 1/fan_in^2 | 1/fan_in |" in lines
    assert "| table9 = tp4 | Init. Var. | 1/fan_out | 1/fan_in | 1/fan_in |" in lines
    assert "| parameter | role | a+b | 2a+c | table3 | table8 | table9 = tp4 | unit |" in lines
    assert "| W3 | output | 1 | 1 | 0, 1, 1 | 1, 0, -1 | 1/2, 1/2, 0 | 1, 0, -1 |" in lines
    assert "Conflicts" not in out


def test_all_with_a_conflict(run, tied: str) -> None:
    data = _json(run, tied, "--variant", "all")
    t3 = data["variants"]["table3"]
    assert set(t3) == {"graph", "optimizer", "variant", "conflict"}
    assert "parameter 'E'" in t3["conflict"] and "table8" in t3["conflict"]
    e = _by_name(data["variants"]["table8"]["parameters"])["E"]
    assert [u["a"] for u in e["uses"]] == ["0", "1"]

    code, out, err = run("table", tied, "--variant", "all")
    assert code == 0, err
    assert "### Conflicts" in out
    assert "- **table3**: " in out and "| table8 |" in out

    code, out, err = run("table", tied, "--variant", "all", "--format", "csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert list(table[0]) == ["variant", "name", "role", "kind", "shape", "a", "b", "c",
                              "init_var", "multiplier", "lr", "conflict"]
    assert table[0]["variant"] == "table3" and table[0]["name"] == ""
    assert "tied uses conflict" in table[0]["conflict"]
    assert {r["variant"] for r in table[1:]} == {"table8", "table9", "tp4", "unit"}
    assert all(r["conflict"] == "" for r in table[1:])

    code, out, err = run("table", tied, "--variant", "all", "--format", "latex")
    assert code == 0, err
    assert "% variant table3: conflict: " in out
    assert out.count(r"\begin{tabular}") == 4


def test_parametrize_all_keeps_conflicts(tied: str) -> None:
    results = parametrize_all(_analysis(tied, "adam"))
    assert isinstance(results["table3"], Conflict)
    assert all(not isinstance(results[v], Conflict) for v in VARIANTS[1:])


# -- --variant auto ----------------------------------------------------------------------

def test_auto_on_tied_embeddings_picks_table8(run, tied: str) -> None:
    _error(run, tied, "--variant", "table3")  # the conflict, named with its fix
    data = _json(run, tied, "--variant", "auto")
    assert (data["variant"], data["auto"]) == ("table8", True)
    assert list(data["skipped"]) == ["table3"]
    assert "parameter 'E'" in data["skipped"]["table3"]
    e = _by_name(data["parameters"])["E"]
    assert [u["multiplier"] for u in e["uses"]] == ["1", "1/fan_in"]
    assert data["parameters"] == _json(run, tied, "--variant", "table8")["parameters"]

    code, out, err = run("table", tied, "--variant", "auto")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("variant auto"))
    assert line.startswith("variant auto → table8 (table3: ")
    assert "parameter 'E': tied uses conflict under table3" in line


def test_auto_picks_table3_when_it_solves(run) -> None:
    data = _json(run, MLP, "--variant", "auto")
    assert (data["variant"], data["auto"], data["skipped"]) == ("table3", True, {})
    code, out, _ = run("table", MLP, "--variant", "auto")
    assert code == 0
    assert "variant auto → table3\n" in out
    p, skipped = parametrize_auto(_analysis(MLP, "sgd"))
    assert (p.variant, skipped) == ("table3", {})


# -- --form ratio and --base (TP5 Eq. 4) --------------------------------------------------

def test_fmt_tunable_constants() -> None:
    assert fmt(SIGMA**2 / (FAN_IN * M)) == "sigma^2/(fan_in*m)"
    assert fmt(SIGMA**2 * M / FAN_IN) == "sigma^2*m/fan_in"
    assert fmt(ETA * M) == "eta*m"
    assert fmt(ALPHA / M) == "alpha/m"
    assert fmt(ALPHA * sympy.sqrt(M)) == "alpha*sqrt(m)"
    assert greek("sigma^2/(fan_in*m)") == "σ^2/(fan_in*m)"
    assert greek("eta/sqrt(m)") == "η/sqrt(m)"
    assert greek("alpha") == "α"


def test_ratio_adam_table3(run) -> None:
    data = _json(run, MLP, *T3, "--optimizer", "adam", "--form", "ratio")
    assert (data["form"], data["base"]) == ("ratio", {"width": 256})
    by = _by_name(data["parameters"])
    # TP5 Eq. 4: output init var σ²/(fan_in·m), LR η/m; hidden LR η/m; input LR η
    assert (by["W3"]["init_var"], by["W3"]["multiplier"], by["W3"]["lr"]) == \
        ("sigma^2/(fan_in*m)", "alpha", "eta/m")
    assert (by["W2"]["init_var"], by["W2"]["lr"]) == ("sigma^2/fan_in", "eta/m")
    assert (by["W1"]["init_var"], by["W1"]["lr"]) == ("sigma^2/fan_in", "eta")
    assert (by["W1"]["m"], by["W2"]["m"], by["W3"]["m"], by["b1"]["m"]) == \
        ("fan_out/256", "fan_in/256", "fan_in/256", "fan_out/256")
    assert (by["W3"]["a"], by["W3"]["b"], by["W3"]["c"]) == ("0", "1", "1")  # unchanged


def test_ratio_sgd_table3(run) -> None:
    by = _by_name(_json(run, MLP, *T3, "--optimizer", "sgd", "--form", "ratio")["parameters"])
    # TP5 Eq. 4: η_W1 = η·ñ, η_W2 = η, η_W3 = η/ñ
    assert [by[n]["lr"] for n in ("W1", "b1", "W2", "W3")] == ["eta*m", "eta*m", "eta", "eta/m"]


def test_ratio_table8_output(run) -> None:
    by = _by_name(_json(run, MLP, "--variant", "table8", "--optimizer", "sgd",
                        "--form", "ratio")["parameters"])
    assert (by["W3"]["init_var"], by["W3"]["multiplier"], by["W3"]["lr"]) == \
        ("sigma^2*m/fan_in", "alpha/m", "eta*m")


def test_ratio_markdown(run) -> None:
    code, out, err = run("table", MLP, *T3, "--optimizer", "adam", "--form", "ratio")
    assert code == 0, err
    lines = out.splitlines()
    assert "| Init. Var. | σ^2/fan_in | σ^2/(fan_in*m) | σ^2/fan_in |" in lines
    assert "| Multiplier | α | α | α |" in lines
    assert "| Adam LR | η | η/m | η/m |" in lines
    assert "- `width` = 256" in lines
    assert "m = fan/base_fan" in out
    assert any(ln.startswith("| W3 |") and ln.endswith("| η/m | fan_in/256 |") for ln in lines)


def test_ratio_latex_and_csv(run) -> None:
    code, out, err = run("table", MLP, *T3, "--form", "ratio", "--format", "latex")
    assert code == 0, err
    assert r"\sigma^{2}" in out and r"\eta" in out and r"\alpha" in out
    code, out, err = run("table", MLP, *T3, "--form", "ratio", "--format", "csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert table[-1]["name"] == "W3"
    assert (table[-1]["init_var"], table[-1]["lr"], table[-1]["m"]) == \
        ("sigma^2/(fan_in*m)", "eta/m", "fan_in/256")


def test_base_changes_nothing_in_fan_form_but_is_reported(run) -> None:
    plain = _json(run, MLP, "--optimizer", "sgd")
    based = _json(run, MLP, "--optimizer", "sgd", "--base", "width=512")
    assert (based["form"], based["base"]) == ("fan", {"width": 512})
    assert {k: v for k, v in based.items() if k not in ("form", "base")} == plain
    code, out, _ = run("table", MLP, "--base", "width=512")
    assert code == 0
    assert "- `width` = 512" in out.splitlines()
    by = _by_name(_json(run, MLP, "--base", "width=512", "--form", "ratio")["parameters"])
    assert by["W3"]["m"] == "fan_in/512"


def test_base_on_gpt_moves_times_dims(run) -> None:
    data = _json(run, GPT, *T3, "--base", "d_model=128", "--form", "ratio")
    assert data["base"] == {"d_model": 128, "d_head": 16, "d_ff": 512}
    by = _by_name(data["parameters"])
    assert by["block.0.W_proj"]["m"] == "fan_in/512"  # d_ff = 4 × d_model follows it
    assert by["block.0.W_o"]["m"] == "fan_in/64"      # n_head × d_head = 4 × 16
    assert by["W_unemb"]["lr"] == "eta/m"


# -- property: every variant has the same invariants --------------------------------------

THETAS = [R(-1), R(-1, 2), R(0), R(1, 2), R(1)]


@cache
def _names(path: str) -> tuple[str, ...]:
    return tuple(load_graph(path).params)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), path=st.sampled_from([MLP, GPT]), opt=st.sampled_from(["sgd", "adam"]))
def test_all_variants_agree_on_invariants(data, path: str, opt: str) -> None:
    shifts = data.draw(st.dictionaries(st.sampled_from(_names(path)), st.sampled_from(THETAS),
                                       max_size=6))
    an = _analysis(path, opt)
    k = Optimizer(opt).k
    results = parametrize_all(an, VARIANTS, shifts)
    assert set(results) == set(VARIANTS)
    for p in results.values():
        assert not isinstance(p, Conflict)
        for name, r in p.params.items():
            for use in r.uses:
                inv = an.invariants[key(use)]
                a = r.a_by_use[key(use)]
                assert a + r.b == inv.init, (p.variant, name)
                assert k * a + r.c == inv.lr, (p.variant, name)
        # the shift moved exactly the shifted parameters
        plain = parametrize(an, p.variant)
        for name, r in p.params.items():
            theta = shifts.get(name, 0)
            assert r.a - plain.params[name].a == theta
            assert plain.params[name].b - r.b == theta


def test_latex_smoke_all_variants_gpt() -> None:
    an = _analysis(GPT, "adam")
    for variant in VARIANTS:
        assert r"\end{tabular}" in latex(parametrize(an, variant))
