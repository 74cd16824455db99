"""The ``abccalc`` command line: version, the four table formats, ``--set``, ``-o``/``--force``
and ``explain``, checked against TP5 Table 3 where the output is a paper table.

Most tests call ``cli.main()`` in-process (fast); a few run ``python -m abccalc`` end to end.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
GPT = str(ROOT / "examples" / "gpt.yaml")
PARAM_KEYS = {"name", "role", "kind", "shape", "a", "b", "c", "init_var", "multiplier", "lr",
              # issue 16: depth exponents, Adam ε and weight decay (docs/depth.md)
              "a_depth", "b_depth", "c_depth", "eps", "eps_depth", "wd", "wd_depth"}


T3 = ("--variant", "table3")  # TP5 Table 3 cells; the default variant is table8

def _python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abccalc", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


# -- version ---------------------------------------------------------------------------------

def test_version_in_process(run) -> None:
    code, out, err = run("--version")
    assert code == 0
    assert importlib.metadata.version("abccalc") in out
    assert out.startswith("abccalc")
    assert err == ""


def test_python_m_version() -> None:
    proc = _python_m("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"abccalc, version {importlib.metadata.version('abccalc')}"
    assert proc.stderr == ""


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "abccalc"
    if not script.exists():
        pytest.skip("no abccalc console script next to this interpreter")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert importlib.metadata.version("abccalc") in proc.stdout


def test_python_m_table_end_to_end() -> None:
    proc = _python_m("table", "examples/mlp.yaml", "--optimizer", "sgd", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [p["name"] for p in data["parameters"]] == ["W1", "b1", "W2", "b2", "W3"]
    assert proc.stderr == ""


# -- table: json -----------------------------------------------------------------------------

def _json(run, *args: str) -> dict:
    code, out, err = run("table", *args, "--format", "json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def test_mlp_sgd_json_schema_and_tp5_table3(run) -> None:
    data = _json(run, MLP, *T3, "--optimizer", "sgd")
    assert set(data) == {"graph", "optimizer", "variant", "parameters", "constants"}
    assert (data["graph"], data["optimizer"], data["variant"]) == ("mlp", "sgd", "table3")
    params = data["parameters"]
    assert [p["name"] for p in params] == ["W1", "b1", "W2", "b2", "W3"]
    for p in params:
        assert set(p) == PARAM_KEYS, p["name"]  # no 'uses': nothing is tied in the MLP
    by = {p["name"]: p for p in params}
    # TP5 Table 3, SGD: output weights b = 1, c = 1, init var 1/fan_in^2, LR 1/fan_in
    w3 = by["W3"]
    assert (w3["role"], w3["kind"], w3["shape"]) == ("output", "weight", ["d_out", "width"])
    assert (w3["a"], w3["b"], w3["c"]) == ("0", "1", "1")
    assert (w3["init_var"], w3["multiplier"], w3["lr"]) == ("1/fan_in^2", "1", "1/fan_in")
    # input weights & all biases: init var 1/fan_in, SGD LR fan_out
    for name in ("W1", "b1", "b2"):
        assert by[name]["role"] == "input", name
        assert (by[name]["init_var"], by[name]["lr"]) == ("1/fan_in", "fan_out"), name
    assert by["W1"]["shape"] == ["width", "d_in"]
    assert (by["b1"]["kind"], by["b1"]["shape"]) == ("bias", ["width"])
    # hidden weights: init var 1/fan_in, SGD LR 1
    assert by["W2"]["role"] == "hidden"
    assert (by["W2"]["init_var"], by["W2"]["lr"]) == ("1/fan_in", "1")
    assert data["constants"] == []


def test_mlp_adam_json(run) -> None:
    by = {p["name"]: p for p in _json(run, MLP, *T3, "--optimizer", "adam")["parameters"]}
    # TP5 Table 3, Adam LR: input 1, output 1/fan_in, hidden 1/fan_in
    assert [by[n]["lr"] for n in ("W1", "b1", "W3", "W2")] == ["1", "1", "1/fan_in", "1/fan_in"]


def test_default_optimizer_is_adam(run) -> None:
    data = _json(run, MLP)
    assert (data["optimizer"], data["variant"]) == ("adam", "table8")  # issue 12, point 9


def test_gpt_json_attention_scores_constant(run) -> None:
    data = _json(run, GPT)
    assert set(data) == {"graph", "optimizer", "variant", "parameters", "constants"}
    scores = [c for c in data["constants"] if c["name"].endswith("scores")]
    assert scores, data["constants"]
    for c in scores:
        assert set(c) == {"name", "exponent", "multiplier", "depth_exponent"}
        assert c["depth_exponent"] == "0"  # no depth axis: a width constant only
        # TP5 Def. 4.1: attention logits scale as 1/d_head, not 1/sqrt(d_head)
        assert (c["exponent"], c["multiplier"]) == ("1", "1/d_head"), c


def test_set_n_layer(run) -> None:
    names = [p["name"] for p in _json(run, GPT, "--set", "n_layer=3")["parameters"]]
    for i in range(3):
        assert f"block.{i}.W_q" in names
        assert any(n.startswith(f"block.{i}.") for n in names)
    assert not any(n.startswith("block.3.") for n in names)
    assert names[-1] == "W_unemb"


def test_set_dim_size_keeps_table(run) -> None:
    base = _json(run, MLP, "--optimizer", "sgd")
    wider = _json(run, MLP, "--optimizer", "sgd", "--set", "width=1024", "--set", "d_in=7")
    assert wider == base  # the rules are width exponents: the base sizes do not change them


# -- table: markdown, csv, latex -------------------------------------------------------------

def test_markdown_adam_tp5_table3(run) -> None:
    code, out, err = run("table", MLP, *T3, "--optimizer", "adam", "--format", "markdown")
    assert code == 0, err
    lines = out.splitlines()
    assert "|  | Input weights & all biases | Output weights | Hidden weights |" in lines
    assert "| Init. Var. | 1/fan_in | 1/fan_in^2 | 1/fan_in |" in lines
    assert "| Adam LR | 1 | 1/fan_in | 1/fan_in |" in lines


def test_markdown_is_default_format(run) -> None:
    code, out, _ = run("table", MLP, "--optimizer", "adam")
    assert code == 0
    assert out == run("table", MLP, "--optimizer", "adam", "--format", "markdown")[1]


def test_markdown_sgd_tp5_table3(run) -> None:
    code, out, err = run("table", MLP, *T3, "--optimizer", "sgd", "--format", "markdown")
    assert code == 0, err
    assert "| SGD LR | fan_out | 1/fan_in | 1 |" in out.splitlines()


def test_csv(run) -> None:
    code, out, err = run("table", MLP, *T3, "--optimizer", "sgd", "--format", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["name", "role", "kind", "shape", "a", "b", "c", "init_var",
                       "multiplier", "lr"]
    assert len(rows) == 6
    assert [r[0] for r in rows[1:]] == ["W1", "b1", "W2", "b2", "W3"]
    assert rows[5] == ["W3", "output", "weight", "d_out width", "0", "1", "1", "1/fan_in^2",
                       "1", "1/fan_in"]


def test_latex(run) -> None:
    code, out, err = run("table", MLP, "--format", "latex")
    assert code == 0, err
    assert r"\begin{tabular}" in out
    assert r"\end{tabular}" in out
    assert r"Input weights \& all biases" in out


# -- -o / --force ----------------------------------------------------------------------------

def test_output_file_and_force(run, tmp_path: Path) -> None:
    out_file = tmp_path / "out.md"
    expected = run("table", MLP, "--optimizer", "sgd")[1]

    code, out, err = run("table", MLP, "--optimizer", "sgd", "-o", str(out_file))
    assert (code, out, err) == (0, "", "")
    assert out_file.read_text() == expected

    out_file.write_text("sentinel\n")
    code, out, err = run("table", MLP, "--optimizer", "sgd", "-o", str(out_file))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("abccalc: error: ")
    assert "--force" in err
    assert str(out_file) in err
    assert out_file.read_text() == "sentinel\n"

    code, out, err = run("table", MLP, "--optimizer", "sgd", "-o", str(out_file), "--force")
    assert (code, out, err) == (0, "", "")
    assert out_file.read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.md"]  # no temp files left


def test_output_dash_is_stdout(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("table", MLP, "--format", "csv", "-o", "-")
    assert code == 0
    assert out.startswith("name,role,")
    assert list(tmp_path.iterdir()) == []


def test_output_into_missing_directory(run, tmp_path: Path) -> None:
    target = tmp_path / "nodir" / "out.md"
    code, out, err = run("table", MLP, "-o", str(target))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert str(target) in err
    assert not target.exists()


# -- explain ---------------------------------------------------------------------------------

def test_explain_readout(run) -> None:
    code, out, err = run("explain", MLP, "W3", *T3, "--optimizer", "sgd")
    assert code == 0, err
    assert out.startswith("W3: output weight")
    assert "maximal readout init" in out
    assert "b = 1" in out
    assert "maximal update" in out


def test_explain_unknown_parameter(run) -> None:
    code, out, err = run("explain", MLP, "W9")
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("abccalc: error: ")
    assert "'W9'" in err
    assert "mlp.yaml" in err


# -- usage errors ----------------------------------------------------------------------------

def test_bad_option_choice_is_usage_error(run) -> None:
    code, out, err = run("table", MLP, "--optimizer", "nadam")
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert "nadam" in err


def test_set_without_equals(run) -> None:
    code, _, err = run("table", MLP, "--set", "width")
    assert code == 2
    assert err.strip() == "abccalc: error: --set width: expected NAME=VALUE"
