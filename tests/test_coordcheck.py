"""Coordinate check on CPU with small widths: μP flat, SP not (TP5 Figure 5)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from abccalc.emit.codegen import load_parametrization
from abccalc.errors import AbcError
from abccalc.graph.spec import load_graph
from abccalc.verify import coordcheck

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
WIDTHS = [64, 128, 256, 512]


@pytest.fixture(scope="module")
def adam_runs() -> dict[str, coordcheck.CoordCheck]:
    g = load_graph(MLP)
    return {name: coordcheck.run(load_parametrization(g, "adam", "table8", name), WIDTHS,
                                 steps=3, name=name, repeats=1) for name in ("mup", "sp")}


def test_mup_is_flat(adam_runs) -> None:
    """Every activation's change is width-independent: |slope| ≤ 0.1 at every step (the
    README's measured MLP slopes are within ±0.03), well inside the verdict's 1/4."""
    cc = adam_runs["mup"]
    assert cc.flat
    for s in cc.series:
        assert all(abs(x) <= 0.1 for x in s.slopes[1:]), (s.name, s.slopes)


def test_sp_hidden_grows_like_n_and_logits_faster(adam_runs) -> None:
    """SP with Adam at a width-independent LR: the hidden update ΔW·x sums n Θ(1) terms,
    so h2 changes like n^1 (predicted sd = 1); the logits grow faster (TP5 Fig. 5)."""
    by = {s.name: s for s in adam_runs["sp"].series}
    assert not adam_runs["sp"].flat
    assert by["h2"].predicted_change == 1
    assert 0.75 < by["h2"].slopes[1] < 1.25
    assert by["f"].slopes[1] > by["h2"].slopes[1] + 0.3
    assert abs(by["h1"].slopes[1]) < 0.1  # input layer: fine in SP


def test_slope_of_a_power_law() -> None:
    assert coordcheck.slope([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0]) == pytest.approx(1.0)
    assert coordcheck.slope([1, 4, 16], [1.0, 0.5, 0.25]) == pytest.approx(-0.5)


def test_cli_json_and_plot(run, tmp_path: Path) -> None:
    png = tmp_path / "cc.png"
    code, out, err = run("coordcheck", MLP, "--widths", "64,128,256", "--steps", "2",
                         "--format", "json", "--plot", str(png))
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["flat"] and data["widths"] == [64, 128, 256]
    assert {a["name"] for a in data["activations"]} == {"h1", "x1", "h2", "x2", "f"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("widths", "why"), [("64,32,128", "must increase"),
                                             ("64,128", "at least 3"),
                                             ("64,x,128", "comma-separated integers")])
def test_bad_widths(run, widths: str, why: str) -> None:
    code, out, err = run("coordcheck", MLP, "--widths", widths)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and why in err


def test_torch_missing_names_the_extra(run, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    code, _, err = run("coordcheck", MLP, "--widths", "64,128,256")
    assert code == 2
    assert err.strip() == "abccalc: error: coordcheck needs PyTorch: pip install 'abccalc[torch]'"
    with pytest.raises(AbcError, match="abccalc\\[torch\\]"):
        coordcheck.import_torch()


def test_codegen_refuses_overwrite_and_unwritable_path(run, tmp_path: Path) -> None:
    target = tmp_path / "mup.py"
    assert run("codegen", MLP, "--optimizer", "adam", "-o", str(target))[0] == 0
    code, _, err = run("codegen", MLP, "--optimizer", "adam", "-o", str(target))
    assert code == 2 and "--force" in err
    code, _, err = run("codegen", MLP, "--optimizer", "adam", "-o",
                       str(tmp_path / "no" / "such" / "dir" / "mup.py"))
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("names", "why"), [
    ({"W1": "a.weight", "b1": "a.bias", "W2": "b.weight", "b2": "b.bias"},
     "misses parameter 'W3'"),
    ({"W1": "a.weight", "b1": "a.bias", "W2": "b.weight", "b2": "b.bias", "W3": "c.weight",
      "W4": "d.weight"}, "'W4', which is not a parameter"),
])
def test_codegen_name_map_errors(run, tmp_path: Path, names: dict, why: str) -> None:
    path = tmp_path / "names.yaml"
    path.write_text(json.dumps(names))
    out_py = tmp_path / "out.py"
    code, _, err = run("codegen", MLP, "--optimizer", "adam", "--names", str(path),
                       "-o", str(out_py))
    assert code == 2 and why in err and not out_py.exists()


def test_codegen_model_name_map_must_fit_the_model(run, tmp_path: Path) -> None:
    """With --model, a name the generated Model cannot have is refused."""
    path = tmp_path / "names.yaml"
    path.write_text(json.dumps({"W1": "a.kernel", "b1": "a.bias", "W2": "b.weight",
                                "b2": "b.bias", "W3": "c.weight"}))
    code, _, err = run("codegen", MLP, "--optimizer", "adam", "--names", str(path),
                       "--model", "-o", str(tmp_path / "out.py"))
    assert code == 2 and "'W1' maps to 'a.kernel'" in err


def test_verify_passes_mup_and_fails_sp_with_the_fix(run) -> None:
    code, out, _ = run("verify", MLP, "--widths", "64,128,256", "--steps", "2",
                       "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["symbolic"]["ok"] and data["empirical"]["flat"]
    code, out, _ = run("verify", MLP, "--params", "sp", "--widths", "64,128,256", "--steps",
                       "2", "--format", "json")
    data = json.loads(out)
    assert code == 1 and not data["ok"]
    fixes = {p["name"]: p["fix"] for p in data["symbolic"]["parameters"]}
    # Adam, the user's gauge a = 0: the μP fix is TP5 Table 3's rows
    assert fixes["W2"]["lr"] == "1/fan_in"
    assert (fixes["W3"]["init_var"], fixes["W3"]["lr"]) == ("1/fan_in^2", "1/fan_in")
    by = {a["name"]: a for a in data["activations"]}
    assert by["h2"]["predicted"] == 1 and by["h2"]["verdict"] == "grows"
