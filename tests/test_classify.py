"""``classify``: every cell of TP4 Table 1 re-derived by propagating SP (LR 1/n), NTP, MFP and
μP through examples/mlp.yaml (L = 2) and examples/mlp1.yaml (L = 1); TP4 Theorem 4.1;
TP4b's NTP and μP for Adam; the CLI and its JSON fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from abccalc import Optimizer, load_graph
from abccalc.calculus.sizes import key
from abccalc.emit.goldens import read_rows
from abccalc.parametrization.paramsfile import load_params
from abccalc.parametrization.presets import PRESETS
from abccalc.verify.classify import Classification, classify

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
MLP1 = str(ROOT / "examples" / "mlp1.yaml")
GPT = str(ROOT / "examples" / "gpt.yaml")
SP_LR_1_N = str(ROOT / "examples" / "params" / "tp4_sp_lr_1_over_n.yaml")
TABLE1 = ROOT / "tables" / "tp4_table1.csv"


def _table1() -> dict[str, dict[str, str]]:
    lines = [ln for ln in TABLE1.read_text().splitlines() if ln and not ln.startswith("#")]
    columns = lines[0].split(",")[1:]
    return {col: {row[0]: row[i + 1] for row in read_rows(TABLE1)}
            for i, col in enumerate(columns)}


def _column(name: str) -> tuple[Classification, list[str]]:
    """The classification behind one Table 1 column and the MLP's weights l = 1..L+1."""
    if name == "SP (w/ LR 1/n)":
        g = load_graph(MLP)
        return classify(g, "sgd", load_params(SP_LR_1_N, g).abc, name), ["W1", "W2", "W3"]
    preset, path, weights = {"NTP": ("ntk", MLP, ["W1", "W2", "W3"]),
                             "MFP (L = 1)": ("mf", MLP1, ["W1", "W2"]),
                             "µP (ours)": ("mup", MLP, ["W1", "W2", "W3"])}[name]
    g = load_graph(path)
    return classify(g, "sgd", PRESETS[preset](g, Optimizer.SGD), preset), weights


def _per_layer(cell: str, n_layers: int) -> list[str]:
    """'0 (l=1); 1/2 (l>=2)' → the value of each layer l = 1..L+1 (L+1 = n_layers)."""
    L = n_layers - 1
    conds = {"l=1": lambda k: k == 1, "l>=2": lambda k: k >= 2, "l=2": lambda k: k == 2,
             "2<=l<=L": lambda k: 2 <= k <= L, "l=L+1": lambda k: k == L + 1}
    parts = []
    for part in cell.split(";"):
        m = re.fullmatch(r"\s*(\S+)(?:\s*\((.+)\))?\s*", part)
        assert m, part
        parts.append((m.group(1), conds[m.group(2)] if m.group(2) else lambda k: True))
    out = []
    for layer in range(1, n_layers + 1):
        values = [v for v, cond in parts if cond(layer)]
        assert len(values) == 1, (cell, layer)
        out.append(values[0])
    return out


@pytest.mark.parametrize("column", list(_table1()))
def test_tp4_table1_every_cell(column: str) -> None:
    cells = _table1()[column]
    c, weights = _column(column)
    uses = [c.graph.params[w].uses[0] for w in weights]
    assert [str(c.abc.a[key(u)]) for u in uses] == _per_layer(cells["a_l"], len(weights))
    assert [str(c.abc.b[w]) for w in weights] == _per_layer(cells["b_l"], len(weights))
    assert {str(v) for v in c.abc.c.values()} == {cells["c"]}  # one global c, biases too
    assert str(c.r) == cells["r"]
    assert c.tp4 is not None and c.tp4["readout"] == weights[-1]
    assert c.tp4["2a_{L+1}+c"] == cells["2a_{L+1}+c"]
    assert c.tp4["a_{L+1}+b_{L+1}+r"] == cells["a_{L+1}+b_{L+1}+r"]
    marks = {"Nontrivial?": c.nontrivial, "Stable?": c.stable,
             "Feature Learning?": c.feature_learning, "Kernel Regime?": c.kernel_regime}
    assert {k: cells[k] == "✓" for k in marks} == marks


def test_table1_has_every_row_and_column() -> None:
    t = _table1()
    assert list(t) == ["SP (w/ LR 1/n)", "NTP", "MFP (L = 1)", "µP (ours)"]
    assert list(t["NTP"]) == ["a_l", "b_l", "c", "r", "2a_{L+1}+c", "a_{L+1}+b_{L+1}+r",
                              "Nontrivial?", "Stable?", "Feature Learning?", "Kernel Regime?"]


def test_mup_column_agrees_with_the_tp4_mup_golden() -> None:
    rows = {r[0]: r[1:] for r in read_rows(ROOT / "tables" / "tp4_table1_mup.csv")}
    t = _table1()["µP (ours)"]
    assert _per_layer(t["a_l"], 3) == rows["a"]
    assert rows["r"][0] == t["r"]


# -- TP4 Theorem 4.1: SP needs LR O(1/n), and is then in the kernel regime -------------------

def test_sp_with_width_independent_lr_is_unstable() -> None:
    g = load_graph(MLP)
    c = classify(g, "sgd", PRESETS["sp"](g, Optimizer.SGD), "sp")
    assert not c.stable and not c.feature_learning and not c.kernel_regime
    assert c.r is not None and c.r < 0
    assert c.tp4["2a_{L+1}+c"] == "0"  # < 1: the logits blow up (TP4 Thm 3.3 eq. 8)
    assert c.diverges  # with SGD, growing logits and gradients feed each other
    assert {i.node for i in c.issues} >= {"h2", "f", "out"}


def test_sp_with_lr_1_over_n_is_stable_and_kernel() -> None:
    g = load_graph(MLP)
    c = classify(g, "sgd", load_params(SP_LR_1_N, g).abc)
    assert c.stable and c.nontrivial and c.kernel_regime and not c.feature_learning
    assert not c.updated_maximally("W2") and c.r_l("W2") == c.r  # r = r_2 = 1/2


def test_mup_updates_every_parameter_maximally() -> None:
    """TP4 Thm 5.6: every W^l updated maximally, the readout initialized maximally."""
    for path in (MLP, GPT):
        for opt in Optimizer:
            g = load_graph(path)
            c = classify(g, opt, PRESETS["mup"](g, opt), "mup")
            assert c.r == 0 and c.stable and c.feature_learning
            assert all(c.updated_maximally(p) for p in g.params)
            readouts = [p for p in g.params if c.initialized_maximally(p) is not None]
            assert readouts and all(c.initialized_maximally(p) for p in readouts)


def test_adam_presets_tp4b() -> None:
    """TP4b: NTP r = r_l = 1/2 (kernel), μP r = r_l = 0; SP (c = 0) blows up."""
    g = load_graph(MLP)
    ntk = classify(g, "adam", PRESETS["ntk"](g, Optimizer.ADAM))
    assert ntk.r == pytest.approx(0.5) and ntk.kernel_regime
    assert {str(ntk.r_l(w)) for w in ("W1", "W2")} == {"1/2"}
    mup = classify(g, "adam", PRESETS["mup"](g, Optimizer.ADAM))
    assert {str(mup.r_l(p)) for p in g.params} == {"0"}
    assert mup.tp4["a_{L+1}+c_{L+1}"] == "1" and mup.tp4["a_{L+1}+b_{L+1}+r"] == "1"
    sp = classify(g, "adam", PRESETS["sp"](g, Optimizer.ADAM))
    assert not sp.stable and sp.r == -1


def test_mf_is_mup_for_one_hidden_layer() -> None:
    """TP4 §5: μP for a 1-hidden-layer perceptron is MFP up to the symmetry (TP4 Eq. 5)."""
    g = load_graph(MLP1)
    mf = classify(g, "sgd", PRESETS["mf"](g, Optimizer.SGD))
    mup = classify(g, "sgd", PRESETS["mup"](g, Optimizer.SGD))
    assert mf.sizes.sd == mup.sizes.sd and mf.sizes.s0 == mup.sizes.s0


# -- CLI --------------------------------------------------------------------------------------

def test_cli_json_fields(run) -> None:
    code, out, err = run("classify", MLP, "--preset", "ntk", "--optimizer", "sgd",
                         "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert {"graph", "optimizer", "parametrization", "r", "stable", "nontrivial",
            "feature_learning", "kernel_regime", "parameters"} <= set(d)
    assert (d["graph"], d["optimizer"], d["parametrization"], d["r"]) == \
        ("mlp", "sgd", "ntk", "1/2")
    assert d["stable"] is True and d["kernel_regime"] is True
    assert d["feature_learning"] is False
    w = {p["name"]: p for p in d["parameters"]}
    assert {"name", "r_l", "updated_maximally", "initialized_maximally"} <= set(w["W1"])
    assert w["W1"]["initialized_maximally"] is None  # not a readout
    assert w["W3"]["initialized_maximally"] is True and w["W3"]["updated_maximally"] is True
    assert w["W2"]["r_l"] == "1/2" and w["W2"]["updated_maximally"] is False


def test_cli_markdown_and_params(run) -> None:
    code, out, err = run("classify", MLP, "--params", SP_LR_1_N, "--optimizer", "sgd")
    assert code == 0, err
    assert "| kernel regime | yes |" in out and "| stable | yes |" in out


@pytest.mark.parametrize("args", [(), ("--preset", "sp", "--params", SP_LR_1_N)])
def test_cli_needs_exactly_one_source(run, args) -> None:
    code, out, err = run("classify", MLP, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "exactly one of --preset" in err
