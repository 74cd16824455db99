"""``check``: SP's known failures with Adam (TP5 Fig. 5 / scaling_calculus.md "SP for
contrast"), the fix in the user's own gauge, μP params files that pass, round trips of every
variant through a params file, and one-line errors for bad params files (issue #4, point 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy

from abccalc import Optimizer, load_graph, parametrize, solve
from abccalc.errors import AbcError
from abccalc.parametrization.gauges import VARIANTS
from abccalc.parametrization.paramsfile import load_params, params_from_dict
from abccalc.parametrization.rules import fmt, rule
from abccalc.verify.check import check

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
GPT = str(ROOT / "examples" / "gpt.yaml")
GPT_TIED = str(ROOT / "examples" / "archs" / "gpt_tied.yaml")
SP = str(ROOT / "examples" / "params" / "sp.yaml")
MUP8 = str(ROOT / "examples" / "params" / "mup_table8.yaml")


def _json(run, *args: str) -> tuple[int, dict]:
    code, out, err = run("check", *args, "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


# -- SP with Adam: what the issue says check must report -------------------------------------

def test_sp_mlp_adam(run) -> None:
    code, d = _json(run, MLP, "--params", SP, "--optimizer", "adam")
    assert code == 1 and d["ok"] is False and d["stable"] is False
    origins = {(a["node"], a["when"]): a["exponent"] for a in d["activations"] if a["origin"]}
    assert origins[("h2", "training")] == "1"  # hidden updates grow like n at LR Θ(1)
    p = {x["name"]: x for x in d["parameters"]}
    assert set(p) == {"W2", "W3"}  # input weights and biases are already μP with Adam
    assert p["W2"]["r_l"] == "-1"
    assert (p["W2"]["current"]["lr"], p["W2"]["fix"]["lr"]) == ("1", "1/fan_in")
    assert p["W2"]["fix"]["init_var"] == "1/fan_in"
    w3 = p["W3"]  # in the user's gauge (a = 0): TP5 Table 3's output column
    assert (w3["fix"]["a"], w3["fix"]["init_var"], w3["fix"]["lr"]) == \
        ("0", "1/fan_in^2", "1/fan_in")
    assert w3["initialized_maximally"] is False and w3["updated_maximally"] is False
    alt = w3["alternative"]  # or the missing output multiplier (TP5 Table 8)
    assert (alt["multiplier"], alt["init_var"], alt["lr"]) == ("1/fan_in", "1", "1")


def test_sp_mlp_adam_markdown(run) -> None:
    code, out, err = run("check", MLP, "--params", SP, "--optimizer", "adam")
    assert code == 1, err
    assert "h2: change after training grows like n^1" in out
    assert "fix: LR 1 → 1/fan_in" in out
    assert "init var 1/fan_in → 1/fan_in^2, LR 1 → 1/fan_in" in out
    assert "output multiplier 1/fan_in" in out


def test_sp_gpt_adam(run) -> None:
    code, d = _json(run, GPT, "--params", SP, "--optimizer", "adam")
    assert code == 1 and not d["ok"]
    origins = {a["node"]: a["exponent"] for a in d["activations"]
               if a["origin"] and a["when"] == "training"}
    for node in ("block.0.fc", "block.0.q", "block.1.fc", "block.1.q"):
        assert origins[node] == "1", node
    consts = {k["name"]: k for k in d["constants"]}
    assert set(consts) == {"block.0.scores", "block.1.scores"}
    assert (consts["block.0.scores"]["multiplier"],
            consts["block.0.scores"]["fix_multiplier"]) == ("1/sqrt(d_head)", "1/d_head")
    p = {x["name"]: x for x in d["parameters"]}
    for name in ("block.0.W_q", "block.0.W_fc", "block.1.W_proj"):
        assert p[name]["fix"]["lr"] == "1/fan_in"
    assert (p["W_unemb"]["fix"]["init_var"], p["W_unemb"]["fix"]["lr"]) == \
        ("1/fan_in^2", "1/fan_in")
    assert p["W_unemb"]["alternative"]["multiplier"] == "1/fan_in"
    assert not any(n.startswith(("wte", "wpe")) or "ln" in n or ".b_" in n for n in p)


def test_sp_gpt_markdown(run) -> None:
    code, out, _ = run("check", GPT, "--params", SP)
    assert code == 1
    assert "block.0.fc: change after training grows like n^1" in out
    assert "block.0.scores: multiplier 1/sqrt(d_head)" in out and "should be 1/d_head" in out


def test_sp_sgd_diverges(run) -> None:
    """SGD at a width-independent LR: SP's sizes never settle (TP4 Thm 4.1)."""
    code, d = _json(run, MLP, "--params", SP, "--optimizer", "sgd")
    assert code == 1 and d["r"] == "-oo" and not d["stable"]
    p = {x["name"]: x for x in d["parameters"]}
    assert p["W1"]["fix"]["lr"] == "fan_out" and p["W2"]["fix"] is None  # Table 3, SGD


# -- μP passes --------------------------------------------------------------------------------

@pytest.mark.parametrize("graph", [MLP, GPT])
def test_mup_table8_passes(run, graph: str) -> None:
    code, out, err = run("check", graph, "--params", MUP8, "--optimizer", "adam")
    assert code == 0, out + err
    assert out.splitlines()[2].startswith("OK")


@pytest.mark.parametrize("graph", [MLP, GPT])
@pytest.mark.parametrize("opt", list(Optimizer))
def test_every_variant_round_trips(graph: str, opt: Optimizer) -> None:
    """μP in any gauge, written as exponents or as the rules the tables print, passes."""
    g = load_graph(graph)
    analysis = solve(g, opt)
    for variant in VARIANTS:
        p = parametrize(analysis, variant)
        consts = {n: {"exponent": str(a)} for n, a in p.constants.items()}
        exps = {n: {"a": str(r.a), "b": str(r.b), "c": str(r.c)} for n, r in p.params.items()}
        res = check(g, opt, params_from_dict({"parameters": exps, "constants": consts}, g))
        assert res.ok, (variant, res.to_dict())
        rules = {}
        for n, r in p.params.items():
            ru = rule(p, r)
            rules[n] = {"init_var": fmt(ru.init_var), "multiplier": fmt(ru.multiplier),
                        "lr": fmt(ru.lr)}
        res = check(g, opt, params_from_dict({"parameters": rules, "constants": consts}, g))
        assert res.ok, (variant, res.to_dict())


def test_tied_embeddings(tmp_path: Path) -> None:
    """One multiplier for both uses cannot reach μP; per-use multipliers (Table 8) can."""
    g = load_graph(GPT_TIED)
    res = check(g, "adam", load_params(MUP8, g))
    (wte,) = [p for p in res.params if p.name == "wte"]
    assert wte.conflict and wte.fix.multiplier == {"tok_emb": "1", "logits": "1/fan_in"}
    f = tmp_path / "tied.yaml"
    f.write_text(Path(MUP8).read_text().replace(
        "parameters:\n", "parameters:\n  wte: {init_var: 1, multiplier: "
        "{tok_emb: 1, logits: 1/fan_in}, lr: 1}\n"))
    assert check(g, "adam", load_params(f, g)).ok


def test_default_constants_are_reported(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text('parameters:\n  "*": {a: 0, b: 0, c: 0}\n')
    g = load_graph(GPT)
    params = load_params(f, g)
    assert params.defaulted_constants == ("block.0.scores", "block.0.att", "block.1.scores",
                                          "block.1.att")
    res = check(g, "adam", params)
    assert {k.name for k in res.constants if k.defaulted} == {"block.0.scores",
                                                              "block.1.scores"}


def test_rule_forms() -> None:
    """Dim names, sqrt, ^ and constant factors; a glob or role matching nothing is fine."""
    g = load_graph(GPT)
    data = {"parameters": {
        "*.W_q": {"init_var": "0.02^2/d_model", "multiplier": 1, "lr": "3e-4*64/d_model"},
        "@scalar": {"a": 0, "b": 0, "c": 0},
        "W_unemb": {"a": "1/2", "b": 0.5, "c": 1},
        "*": {"init_var": "1/fan_in", "lr": "1/sqrt(fan_in)^2"}},
        "constants": {"*scores": "8/d_head"}}
    abc = params_from_dict(data, g).abc
    half = sympy.Rational(1, 2)
    assert abc.b["block.0.W_q"] == abc.b["block.1.W_k"] == half
    assert abc.c["block.0.W_q"] == 1 and abc.c["wte"] == 0
    assert abc.a[("logits", "W_unemb")] == half and abc.alpha["block.0.scores"] == 1


# -- bad params files: one line, exit 2, naming the file and the parameter ---------------------

BAD = [
    ('parameters:\n  W1: {init_var: 1, lr: 1}\n  W2: {init_var: 1/fan_in, lr: 1}\n'
     '  b1: {a: 0, b: 0, c: 0}\n  b2: {a: 0, b: 0, c: 0}\n', "parameter 'W3': missing"),
    ('parameters:\n  W4: {a: 0, b: 0, c: 0}\n  "*": {a: 0, b: 0, c: 0}\n',
     "key 'W4': unknown parameter name"),
    ('parameters:\n  "*": {init_var: 1/fan_wat, lr: 1}\n', "unknown name 'fan_wat'"),
    ('parameters:\n  "*": {a: 0, b: half, c: 0}\n', "'b': expected a number"),
    ('parameters:\n  "*": {init_var: 1/fan_in + 1, lr: 1}\n', "not a monomial"),
    ('parameters:\n  "*": {init_var: 0, lr: 1}\n', "is zero"),
    ('parameters:\n  "*": {init_var: 1, lr: 1, b: 0}\n', "either rules"),
    ('parameters:\n  "*": {init_var: 1}\n', "missing 'lr'"),
    ('parameters:\n  "*": {init_var: "1/(", lr: 1}\n', "not an expression"),
    ('parameters:\n  "*": {init_var: 1, lr: 1, eta: 1}\n', "unknown field 'eta'"),
    ('parameters: [1]\n', "not a params file"),
    ('parameters:\n  "*": {a: 0, b: 0, c: 0}\n  "*": {a: 0, b: 0, c: 0}\n', "duplicate key"),
    ('parameters:\n  "*": {a: 0, b: 0, c: 0\n', "malformed YAML"),
    ('parameters:\n  "@middle": {a: 0, b: 0, c: 0}\n', "unknown role"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_params_file(run, tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    code, out, err = run("check", MLP, "--params", str(f))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"abccalc: error: {f}") and message in lines[0], lines[0]


@pytest.mark.parametrize(("text", "name"), [
    (BAD[0][0], "'W3'"), (BAD[1][0], "'W4'"), (BAD[2][0], "parameter 'W1'"),
    (BAD[3][0], "parameter 'W1'")])
def test_errors_name_the_parameter(tmp_path: Path, text: str, name: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(AbcError, match=name):
        load_params(f, load_graph(MLP))


def test_unknown_constant_and_missing_file(run, tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text('parameters:\n  "*": {a: 0, b: 0, c: 0}\nconstants:\n  scores: 1\n')
    code, _, err = run("check", GPT, "--params", str(f))
    assert code == 2 and "constants key 'scores'" in err
    code, _, err = run("check", GPT, "--params", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read" in err
