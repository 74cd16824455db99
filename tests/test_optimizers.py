"""Update classes (abccalc/calculus/updates.py; docs/optimizers.md): the tables/optim_*.csv
exponents against hand derivations, the solver against both, and the CLI's Muon table."""

import csv
import json
from fractions import Fraction as F
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abccalc.calculus.solver import solve
from abccalc.calculus.updates import ADJUSTS, CLASSES, muon_managed, offset, update_class
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.graph.spec import load_builder
from abccalc.parametrization.gauges import parametrize

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "tables"
H = F(1, 2)

# Roles of TP5 Table 3 as (k_in, k_out): the number of infinite dims of fan_in, fan_out.
FANS = {"input": (0, 1), "output": (1, 0), "hidden": (1, 1)}
# Gauges as (a, b) per role: TP5 Table 3 has no multipliers (output init var 1/fan_in², b = 1);
# Table 8 puts the output's 1/fan_in in a multiplier (a = 1, b = 0). Either way a + b is
# input 0, output 1 (maximal readout init, TP4 Prop. 5.5), hidden 1/2 (CLT).
GAUGES = {"table3": {"input": (0, 0), "output": (0, 1), "hidden": (0, H)},
          "table8": {"input": (0, 0), "output": (1, 0), "hidden": (0, H)}}

# Hand derivations of c. For every class, maximal update needs ΔW's entries
# e = −(k_in + st(x)) with st(x) = 0 here (x Θ(1)): input e = 0, output e = −1, hidden e = −1.
HAND = {
    # raw (SGD): ΔW's entries are n^-a·LR·∂L/∂w = −(2a + c) + g(h) + st(x), with g(h) the
    # size of ∂L/∂h: 0 at the readout (the loss reads it), −1 at hidden and input
    # activations (they reach the loss through the 1/n readout, TP4 §5). So
    # input 0 = −(2a + c) − 1, output −1 = −(2a + c) + 0, hidden −1 = −(2a + c) − 1:
    # 2a + c = input −1, output 1, hidden 0; c = that − 2a: Table 3 (−1, 1, 0),
    # Table 8 (−1, 1 − 2 = −1, 0), as TP5 Tables 3 and 8 (SGD LR).
    ("sgd", "table3"): {"input": -1, "output": 1, "hidden": 0},
    ("sgd", "table8"): {"input": -1, "output": -1, "hidden": 0},
    # entrywise: e = −(a + c) ⇒ a + c = k_in: input 0, output 1, hidden 1; c = a + c − a:
    # Table 3 (0, 1, 1), Table 8 (0, 1 − 1 = 0, 1): TP5 Tables 3 and 8, Adam LR.
    ("adam", "table3"): {"input": 0, "output": 1, "hidden": 1},
    ("adam", "table8"): {"input": 0, "output": 0, "hidden": 1},
    # Lion: sign(·) has entries ±1, Θ(1): the entrywise class, Adam's c.
    ("lion", "table3"): {"input": 0, "output": 1, "hidden": 1},
    ("lion", "table8"): {"input": 0, "output": 0, "hidden": 1},
    # frobenius: e = −(a + b) − c ⇒ c = k_in − (a + b): input 0 − 0 = 0, output 1 − 1 = 0,
    # hidden 1 − 1/2 = 1/2 (TP5 B.3: 1/√fan_in), the same in both gauges (k = 0).
    ("lamb", "table3"): {"input": 0, "output": 0, "hidden": H},
    ("lamb", "table8"): {"input": 0, "output": 0, "hidden": H},
    # spectral: e = −(a + c) + σ − (k_in + k_out)/2 ⇒ a + c = k_in + σ − (k_in + k_out)/2.
    # keller σ = max(0, k_out − k_in)/2: input 1/2, output 0, hidden 0, so a + c =
    # input 0 + 1/2 − 1/2 = 0, output 1 + 0 − 1/2 = 1/2, hidden 1 + 0 − 1 = 0.
    ("muon-keller", "table3"): {"input": 0, "output": H, "hidden": 0},
    ("muon-keller", "table8"): {"input": 0, "output": -H, "hidden": 0},
    # spectral σ = (k_out − k_in)/2: input 1/2, output −1/2, hidden 0 ⇒ a + c = 0 for all
    # three (the spectral condition is met by s alone).
    ("muon-spectral", "table3"): {"input": 0, "output": 0, "hidden": 0},
    ("muon-spectral", "table8"): {"input": 0, "output": -1, "hidden": 0},
    # match_rms_adamw σ = max(k_out, k_in)/2 = 1/2 for all three ⇒ a + c = input 0,
    # output 1 + 1/2 − 1/2 = 1, hidden 1 + 1/2 − 1 = 1/2: hidden LR ∝ n^-1/2.
    ("muon-match_rms_adamw", "table3"): {"input": 0, "output": 1, "hidden": H},
    ("muon-match_rms_adamw", "table8"): {"input": 0, "output": 0, "hidden": H},
}
CLASS_OF = {"sgd": "raw", "adam": "entrywise", "lion": "entrywise", "lamb": "frobenius",
            "muon-keller": "spectral", "muon-spectral": "spectral",
            "muon-match_rms_adamw": "spectral"}
FILES = {"raw": "optim_raw.csv", "entrywise": "optim_entrywise.csv",
         "frobenius": "optim_frobenius.csv", "spectral": "optim_spectral.csv"}


def table_rows(cls: str) -> list[dict]:
    lines = [ln for ln in (TABLES / FILES[cls]).read_text().splitlines()
             if not ln.startswith("#")]
    return list(csv.DictReader(lines))


ALL_ROWS = [(cls, r) for cls in FILES for r in table_rows(cls)]


def test_every_hand_derivation_is_in_a_table() -> None:
    got = {(r["optimizer"], r["gauge"], r["role"]) for _, r in ALL_ROWS}
    assert got == {(o, g, role) for (o, g), cs in HAND.items() for role in cs}


@pytest.mark.parametrize(("cls", "row"), ALL_ROWS,
                         ids=[f"{r['optimizer']}-{r['gauge']}-{r['role']}" for _, r in ALL_ROWS])
def test_table_row_equals_hand_derivation(cls: str, row: dict) -> None:
    role, gauge = row["role"], row["gauge"]
    assert CLASS_OF[row["optimizer"]] == cls
    assert (F(row["a"]), F(row["b"])) == GAUGES[gauge][role]
    assert F(row["c"]) == HAND[(row["optimizer"], gauge)][role]
    assert row["source"]


@pytest.mark.parametrize(("cls", "row"), [x for x in ALL_ROWS if x[0] != "raw"],
                         ids=[f"{r['optimizer']}-{r['gauge']}-{r['role']}"
                              for c, r in ALL_ROWS if c != "raw"])
def test_class_rule_gives_the_table(cls: str, row: dict) -> None:
    """updates.offset on the role's fans reproduces c: k·a + c = k_in + offset."""
    k_in, k_out = FANS[row["role"]]
    a, b = GAUGES[row["gauge"]][row["role"]]
    adj = row["optimizer"].removeprefix("muon-")
    s = ADJUSTS[adj].sigma(k_out, k_in) if cls == "spectral" else F(0)
    lr_invariant = k_in + offset(cls, k_in, k_out, a + b, s)
    assert lr_invariant - CLASSES[cls].k * a == F(row["c"])


SETUP = {"sgd": "sgd", "adam": "adam", "lion": "lion", "lamb": "lamb",
         "muon-keller": "muon", "muon-spectral": "muon", "muon-match_rms_adamw": "muon"}
PARAM_OF = {"input": "W1", "output": "W3", "hidden": "W2"}


@pytest.fixture(scope="module")
def mlp():
    return load_builder(str(ROOT / "examples" / "mlp.yaml"), {}).build()


@pytest.mark.parametrize(("opt", "gauge"), sorted(HAND))
def test_solver_on_mlp_matches_hand(mlp, opt: str, gauge: str) -> None:
    """The solver on examples/mlp.yaml: W1 input, W2 hidden, W3 output. In a Muon setup only
    the hidden W2 is Muon's; W1 and W3 get AdamW's (entrywise) exponents."""
    adjust = opt.removeprefix("muon-") if opt.startswith("muon") else "keller"
    p = parametrize(solve(mlp, Optimizer.parse(SETUP[opt], adjust)), gauge)
    for role, pname in PARAM_OF.items():
        want = HAND[(opt, gauge)][role] if not opt.startswith("muon") or role == "hidden" \
            else HAND[("adam", gauge)][role]
        assert p.params[pname].c_exp == want, (opt, gauge, role)


@pytest.mark.parametrize(("name", "value", "k"), [
    ("sgd", "sgd", 2), ("momentum", "sgd", 2), ("adamw", "adam", 1), ("Lion", "adam", 1),
    ("signsgd", "adam", 1), ("RMSProp", "adam", 1), ("adagrad", "adam", 1),
    ("lamb", "lamb", 0), ("adafactor", "lamb", 0), ("muon", "muon", 1)])
def test_parse_names_and_symmetry(name: str, value: str, k: int) -> None:
    opt = Optimizer.parse(name)
    assert opt.value == value
    assert opt.k == k  # (a+θ, b−θ, c−kθ) keeps the dynamics


def test_setup_k_agrees_with_class_table(mlp) -> None:
    for opt in Optimizer:
        assert {update_class(opt, mlp, p).k for p in mlp.params} == {opt.k}


def test_class_table_lists_every_name(mlp) -> None:
    """Each accepted name parses to a setup whose class for a hidden matrix (W2) is the
    class that lists the name (Muon's hidden matrices: spectral)."""
    from abccalc.exponents import OPTIMIZER_NAMES

    listed = {name: c.name for c in CLASSES.values() for name in c.optimizers}
    assert set(OPTIMIZER_NAMES) <= set(listed)
    for name in OPTIMIZER_NAMES:
        assert update_class(Optimizer.parse(name), mlp, "W2").name == listed[name], name


def test_parse_muon_adjust() -> None:
    assert Optimizer.parse("muon", "match_rms_adamw") is Optimizer.MUON_RMS
    assert Optimizer.parse("muon", "spectral") is Optimizer.MUON_SPECTRAL
    with pytest.raises(AbcError, match="unknown Muon adjustment 'moonlight'"):
        Optimizer.parse("muon", "moonlight")


def test_muon_takes_the_gpt_hidden_matrices() -> None:
    g = load_builder(str(ROOT / "examples" / "gpt.yaml"), {}).build()
    muon = sorted(p for p in g.params if muon_managed(g, p))
    assert muon == sorted(f"block.{i}.{w}" for i in range(2)
                          for w in ("W_q", "W_k", "W_v", "W_o", "W_fc", "W_proj"))


@given(st.integers(0, 3), st.integers(0, 3))
def test_spectral_convention_is_the_condition(k_in: int, k_out: int) -> None:
    """With s = (fan_out/fan_in)^½ every shape's a + c is st(x) (0 here): the factor alone
    meets ‖ΔW‖_* = Θ(√(fan_out/fan_in)); Keller's differs by max(0, k_in − k_out)/2, where
    max(1, ·) stops shrinking s, and match_rms_adamw by k_in, or k_out when it is larger."""
    def lr(adj: str) -> F:
        return k_in + offset("spectral", k_in, k_out, F(0), ADJUSTS[adj].sigma(k_out, k_in))

    assert lr("spectral") == 0
    assert lr("keller") == H * max(0, k_in - k_out)
    assert lr("match_rms_adamw") == H * (max(k_in, k_out) - k_out + k_in)


def test_trace_names_the_class(mlp) -> None:
    def rule(opt: str) -> str:
        return next(s.rule for k, s in solve(mlp, opt).trace.items() if k.startswith("lr W2@"))

    assert "spectral condition" in rule("muon") and "U·Vᵀ" in rule("muon")
    assert "trust ratio" in rule("lamb")


def test_cli_table_muon_json(run) -> None:
    code, out, _ = run("table", "examples/mlp.yaml", "--optimizer", "muon", "--muon-adjust",
                       "match_rms_adamw", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["optimizer"] == "muon-match_rms_adamw"
    by = {p["name"]: p for p in data["parameters"]}
    assert {n: by[n]["optimizer"] for n in by} == {
        "W1": "adamw", "b1": "adamw", "W2": "muon", "b2": "adamw", "W3": "adamw"}
    assert by["W2"]["lr"] == "1/sqrt(fan_in)"  # the base LR must shrink like n^-1/2
    assert "n^-½" in data["muon_note"]


def test_cli_muon_adjust_needs_muon(run) -> None:
    code, out, err = run("table", "examples/mlp.yaml", "--muon-adjust", "spectral")
    assert code == 2 and out == ""
    assert "--muon-adjust spectral: applies to --optimizer muon only" in err


# -- check on an optimizer setup (an LR file on abccalc's μP model) -------------------------

def _check(graph_file: str, opt: Optimizer, lrs: dict):
    from abccalc.parametrization.paramsfile import lrs_from_dict
    from abccalc.verify.check import check

    g = load_builder(str(ROOT / "examples" / graph_file), {}).build()
    base = parametrize(solve(g, opt), "table8").abc()
    return check(g, opt, lrs_from_dict({"lr": lrs}, g, base, "lrs.yaml"))


def test_check_names_the_double_scaling_trap() -> None:
    """μP-Adam's hidden LR 1/fan_in (c = 1) on Muon (keller) matrices, whose μP c is 0:
    ΔW·x = n^(e + 1) with e = −(a + c) − ½(1 + 1) = −2 vanishes like n^-1."""
    res = _check("gpt.yaml", Optimizer.MUON, {"@hidden": "1/fan_in", "*": 1})
    bad = {p.name: p for p in res.params}
    muon = {f"block.{i}.{w}" for i in range(2)
            for w in ("W_q", "W_k", "W_v", "W_o", "W_fc", "W_proj")}
    assert set(bad) == muon  # the AdamW groups at LR 1 are μP in Table 8
    for p in bad.values():
        assert any("vanishes like n^(-1)" in x for x in p.problems)
        assert any(x.startswith("double scaling") for x in p.problems)
        assert p.fix.lr == "1"


def test_check_match_rms_needs_a_shrinking_lr() -> None:
    """match_rms_adamw, LR 1: s = 0.2·√n on W2 makes ΔW·x grow like n^½; fix n^-½."""
    res = _check("mlp.yaml", Optimizer.MUON_RMS, {"*": 1})
    w2 = next(p for p in res.params if p.name == "W2")
    assert any("grows like n^(1/2)" in x for x in w2.problems)
    assert any("must shrink like n^-1/2" in x for x in w2.problems)
    assert w2.fix.lr == "1/sqrt(fan_in)"
    assert _check("mlp.yaml", Optimizer.MUON_RMS, {"W2": "1/sqrt(fan_in)", "*": 1}).ok


def test_check_lr_file_cli(run) -> None:
    code, out, _ = run("check", "examples/gpt.yaml", "--params",
                       "examples/params/muon_adam_lrs.yaml", "--optimizer", "muon")
    assert code == 1
    assert "12 violations" in out and "double scaling" in out
    code, _, _ = run("check", "examples/mlp.yaml", "--params",
                     "examples/params/muon_adam_lrs.yaml", "--optimizer", "muon")
    assert code == 1  # the MLP's hidden W2 too
    code, out, _ = run("check", "examples/mlp.yaml", "--params",
                       "examples/params/muon_adam_lrs.yaml", "--optimizer", "adam")
    assert code == 0, out  # the same LRs are μP for Adam


# -- coordinate check with a real torch.optim.Muon and a real Lion step ----------------------

def _cc(graph_file: str, opt: str, run_as: str | None, widths: list[int]):
    pytest.importorskip("torch")
    from abccalc.verify import coordcheck

    g = load_builder(str(ROOT / "examples" / graph_file), {}).build()
    return {s.name: s.slopes[1:] for s in coordcheck.run(
        parametrize(solve(g, opt), "table8"), widths, steps=2, repeats=1,
        run_as=run_as).series}


MLP_WIDTHS = [64, 128, 256, 512]


@pytest.mark.parametrize(("opt", "run_as"), [("muon", None), ("muon-spectral", None),
                                             ("adam", "lion"), ("muon", "muon-alone")])
def test_mlp_coordcheck_flat_under_derived_scaling(opt: str, run_as: str | None) -> None:
    """Muon (keller, spectral) on W2 at its derived c = 0 with Adam elsewhere, Lion at
    Adam's exponents, and Muon's W2 alone: every change is width-independent (measured
    |slope| ≤ 0.07; bound 0.15)."""
    for name, slopes in _cc("mlp.yaml", opt, run_as, MLP_WIDTHS).items():
        assert all(abs(x) <= 0.15 for x in slopes), (name, slopes)


def test_mlp_match_rms_with_a_constant_lr_grows_like_sqrt_n() -> None:
    """match_rms_adamw's s = 0.2·√n on W2 at the width-independent c = 0 (W2 alone
    trains): ΔW2·x1 = n^(σ − (a+c) − ½(1+1) + 1) = n^½, and so everything after it
    (measured 0.45)."""
    slopes = _cc("mlp.yaml", "muon", "muon-match_rms_adamw-alone", MLP_WIDTHS)
    assert slopes["h1"] == pytest.approx([0, 0], abs=0.05)  # W1 does not train
    for name in ("h2", "x2", "f"):
        assert all(0.35 <= x <= 0.6 for x in slopes[name]), (name, slopes[name])


def test_gpt_muon_convention_moves_slopes_by_one_half() -> None:
    """GPT, the Muon matrices alone trained: match_rms_adamw at a width-independent LR
    changes the hidden activations n^½ faster than the derived (keller) scaling; the
    difference of slopes is σ_rms − σ_keller = ½ (measured 0.49 to 0.52)."""
    widths = [64, 128, 256]
    keller = _cc("gpt.yaml", "muon", "muon-alone", widths)
    rms = _cc("gpt.yaml", "muon", "muon-match_rms_adamw-alone", widths)
    for name in ("block.0.fc", "block.0.proj", "ln_f"):  # measured −0.07 to −0.16
        assert all(abs(x) <= 0.25 for x in keller[name]), (name, keller[name])
    for name in ("block.0.fc", "block.0.proj", "block.1.o", "block.1.fc", "ln_f"):
        diff = [r - k for r, k in zip(rms[name], keller[name], strict=True)]
        assert all(0.4 <= d <= 0.6 for d in diff), (name, diff)


def test_cli_coordcheck_muon_and_lion(run) -> None:
    pytest.importorskip("torch")
    for opt in ("muon", "lion"):
        code, out, _ = run("coordcheck", "examples/mlp.yaml", "--optimizer", opt,
                           "--widths", "64,128,256", "--steps", "2", "--format", "json")
        assert code == 0, out
        data = json.loads(out)
        assert data["flat"] and data["optimizer"] == opt
