"""Bad input ends in one line ``abccalc: error: FILE: ...`` naming the node, dim or
parameter and what is wrong, exit status 2, no traceback, and no ``-o`` file written.

Each case is a small YAML file in tmp_path run through ``abccalc table FILE -o out.md``
(in-process, from tmp_path); one case also runs end to end through ``python -m abccalc``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DIMS = """\
dims:
  d_in: 4
  width: {base: 8}
  d_out: 2
"""
X = "  - {name: x, op: input, dims: [d_in]}\n"
H = "  - {name: h, op: linear, inputs: x, dims: [width], weight: W1}\n"
F = "  - {name: f, op: linear, inputs: h, dims: [d_out], weight: W3}\n"
OUT = "  - {name: out, op: output, inputs: f}\n"
GOOD = DIMS + "nodes:\n" + X + H + F + OUT
WITH_N_LAYER = DIMS + "values:\n  n_layer: 2\nnodes:\n" + X + H + """\
  - repeat: n_layer
    name: block
    input: h
    carry: c
    output: r
    nodes:
      - {name: r, op: linear, inputs: c, dims: [width], weight: W}
  - {name: f, op: linear, inputs: block, dims: [d_out], weight: W3}
""" + OUT

# id -> (spec text, extra CLI args, substrings the one-line message must contain)
CASES = {
    "key-the-op-does-not-take": (
        DIMS + "nodes:\n" + X + "  - {name: a, op: relu, inputs: x, weight: W0}\n"
        + H.replace("inputs: x", "inputs: a") + F + OUT,
        [], ["node 'a'", "op 'relu' takes no 'weight'"]),
    "rename-outside-contract": (
        DIMS + "nodes:\n" + X
        + "  - {name: h, op: linear, inputs: x, dims: [width], weight: W1, "
          "rename: {d_in: d_out}}\n" + F + OUT,
        [], ["node 'h'", "op 'linear' takes no 'rename'"]),
    "embedding-drops-input-dims": (
        "dims:\n  ctx: 4\n  vocab: 8\n  width: {base: 8}\nnodes:\n"
        "  - {name: t, op: input, dims: [ctx]}\n"
        "  - {name: e, op: embedding, inputs: t, vocab: vocab, dims: [width], weight: E}\n"
        "  - {name: f, op: linear, inputs: e, dims: [vocab], weight: U}\n"
        "  - {name: out, op: output, inputs: f}\n",
        [], ["node 'e'", "drop its input's dims ['ctx']"]),
    "malformed-yaml": (
        "dims: {d_in: 4\nnodes: [\n", [], ["malformed YAML", "line 2"]),
    "not-a-graph-list": (
        "- 1\n- 2\n", [], ["not an abccalc graph", "'nodes'"]),
    "not-a-graph-no-nodes": (
        DIMS, [], ["not an abccalc graph", "'nodes'"]),
    "empty-file": (
        "", [], ["not an abccalc graph"]),
    "unknown-op": (
        DIMS + "nodes:\n" + X
        + "  - {name: h, op: frobnicate, inputs: x, dims: [width], weight: W1}\n" + F + OUT,
        [], ["node 'h'", "unknown op 'frobnicate'"]),
    "unknown-dim": (
        DIMS + "nodes:\n" + X
        + "  - {name: h, op: linear, inputs: x, dims: [depth], weight: W1}\n" + F + OUT,
        [], ["node 'h'", "unknown dim 'depth'"]),
    "unknown-input": (
        DIMS + "nodes:\n" + X
        + "  - {name: h, op: linear, inputs: y, dims: [width], weight: W1}\n" + F + OUT,
        [], ["node 'h'", "unknown input 'y'"]),
    "cycle": (
        DIMS + "nodes:\n" + X
        + "  - {name: h1, op: linear, inputs: h2, dims: [width], weight: W1}\n"
        + "  - {name: h2, op: linear, inputs: h1, dims: [width], weight: W2}\n"
        + "  - {name: f, op: linear, inputs: h2, dims: [d_out], weight: W3}\n" + OUT,
        [], ["cycle", "h1 -> h2", "'h1'"]),
    "linear-in-dim-not-of-input": (
        DIMS + "nodes:\n" + X
        + "  - {name: h, op: linear, inputs: x, in: width, dims: [width], weight: W1}\n"
        + F + OUT,
        [], ["node 'h'", "in-dim 'width'", "'x'"]),
    "duplicate-node": (
        DIMS + "nodes:\n" + X + H
        + "  - {name: h, op: linear, inputs: x, dims: [width], weight: W2}\n" + F + OUT,
        [], ["node 'h'", "duplicate name"]),
    "duplicate-dim-key": (
        "dims:\n  d_in: 4\n  width: {base: 8}\n  width: 16\n  d_out: 2\n"
        "nodes:\n" + X + H + F + OUT,
        [], ["duplicate", "'width'", "line 4"]),
    "no-infinite-dim": (
        GOOD.replace("{base: 8}", "8"), [], ["no infinite dim", "base"]),
    "no-output-node": (
        DIMS + "nodes:\n" + X + H + F, [], ["no output node", "op: output"]),
    "set-unknown-name": (
        GOOD, ["--set", "depth=3"], ["--set depth=3", "unknown name 'depth'"]),
    "set-non-integer": (
        WITH_N_LAYER, ["--set", "n_layer=abc"], ["n_layer=abc", "not an integer"]),
    "set-zero-dim": (
        GOOD, ["--set", "width=0"], ["width=0", "positive"]),
    "infinite-output": (
        DIMS + "nodes:\n" + X + H + "  - {name: out, op: output, inputs: h}\n",
        [], ["node 'out'", "'width'", "infinite"]),
    "tied-weight-shape-mismatch": (
        DIMS + "nodes:\n" + X + H
        + "  - {name: f, op: linear, inputs: h, dims: [d_out], weight: W1}\n" + OUT,
        [], ["parameter 'W1'", "tied"]),
}

# Inputs that once escaped as tracebacks instead of a one-line error.
EXTRA = {
    "non-utf8-file": (
        b"\xff\xfe\x00dims", [], ["not UTF-8"]),
    "values-not-a-mapping": (
        DIMS + "values: [1, 2]\nnodes:\n" + X + H + F + OUT, [], ["values"]),
    "dim-times-not-a-number": (
        DIMS + "  d_ff: {times: abc, of: width}\nnodes:\n" + X + H + F + OUT, [], ["'d_ff'"]),
    "repeat-nodes-not-a-list": (
        DIMS + "nodes:\n" + X + H
        + "  - {repeat: 2, name: block, input: h, carry: c, output: r, nodes: 5}\n"
        + "  - {name: f, op: linear, inputs: block, dims: [d_out], weight: W3}\n" + OUT,
        [], ["'block'"]),
    "unhashable-mapping-key": (
        DIMS + "nodes:\n" + X + H
        + "  - {name: f, op: linear, inputs: h, dims: [d_out], weight: W3, ? [a] : 1}\n"
        + OUT, [], ["mapping key must be a name"]),
}


@pytest.fixture
def run(run, monkeypatch, tmp_path: Path):
    """The shared in-process runner (conftest.py), from tmp_path."""
    monkeypatch.chdir(tmp_path)
    return run


def check_one_line_error(code: int, out: str, err: str, fname: str,
                         needles: list[str]) -> None:
    assert "Traceback" not in err, err
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"abccalc: error: {fname}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _check_case(run, tmp_path: Path, text: str | bytes, args: list[str],
                needles: list[str]) -> None:
    spec = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        spec.write_bytes(text)
    else:
        spec.write_text(text)
    code, out, err = run("table", "bad.yaml", *args, "-o", "out.md")
    check_one_line_error(code, out, err, "bad.yaml", needles)
    assert not (tmp_path / "out.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_error(run, tmp_path: Path, case: str) -> None:
    text, args, needles = CASES[case]
    _check_case(run, tmp_path, text, args, needles)


@pytest.mark.parametrize("case", list(EXTRA))
def test_bad_input_more_cases(run, tmp_path: Path, case: str) -> None:
    text, args, needles = EXTRA[case]
    _check_case(run, tmp_path, text, args, needles)


def test_the_good_spec_works(run, tmp_path: Path) -> None:
    """The cases above differ from a spec that works, so each fails for its own reason."""
    for name, text in (("good.yaml", GOOD), ("n_layer.yaml", WITH_N_LAYER)):
        (tmp_path / name).write_text(text)
        code, out, err = run("table", name, "--set", "n_layer=3" if "n_layer" in text
                             else "width=16", "--format", "csv")
        assert (code, err) == (0, ""), err
        assert out.startswith("name,role,")
    assert "\nblock.2.W," in out
    assert "block.3." not in out


def test_missing_file(run, tmp_path: Path) -> None:
    code, out, err = run("table", "nope.yaml", "-o", "out.md")
    check_one_line_error(code, out, err, "nope.yaml", ["cannot read"])
    assert not (tmp_path / "out.md").exists()


def test_explain_bad_spec(run, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(CASES["cycle"][0])
    code, out, err = run("explain", "bad.yaml", "W1")
    check_one_line_error(code, out, err, "bad.yaml", ["cycle"])


def test_end_to_end_python_m(tmp_path: Path) -> None:
    """The real interpreter (this checkout's package, not whichever one is installed):
    stderr is one line and nothing else, status 2, no file."""
    (tmp_path / "bad.yaml").write_text(CASES["unknown-dim"][0])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-m", "abccalc", "table", "bad.yaml", "-o",
                           "out.md"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=env)
    check_one_line_error(proc.returncode, proc.stdout, proc.stderr, "bad.yaml",
                         ["node 'h'", "unknown dim 'depth'"])
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "out.md").exists()
