"""The input boundary (issue 12, points 4, 5, 6 and 9): no input executes code, hostile
inputs are refused quickly, every bad input is one clean line with exit status 2, and the
CLI speaks one vocabulary.

A marker payload must never create its file: each test runs in its own tmp_path (cwd).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.errors import AbcError
from abccalc.graph.builder import MAX_NODES, GraphBuilder
from abccalc.graph.names import clean, name_error
from abccalc.graph.spec import load_graph, parse_builder
from abccalc.parametrization.gauges import parametrize

ROOT = Path(__file__).resolve().parent.parent
GPT = str(ROOT / "examples" / "gpt.yaml")

# Python that creates ./MARKER through sympify, spelled so that its old blacklist ("__",
# quotes) did not catch it: it did create the file before the whitelisted grammar.
OPEN = "open(srepr(MARKER)[8:14], srepr(w)[8])"
# ... and a quote-breaking payload for names pasted into generated Python.
QUOTE = "x'); __import__('os').system('touch MARKER'); ('"

MLP = """\
graph: mlp
dims:
  d_in: 4
  width: {base: 8}
  d_out: 2
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h, op: linear, inputs: x, dims: [width], weight: W1, bias: b1}
  - {name: a, op: relu, inputs: h}
  - {name: f, op: linear, inputs: a, dims: [d_out], weight: W2}
  - {name: out, op: output, inputs: f}
"""
ATTN = """\
graph: attn
dims: {ctx: 4, d_in: 3, width: {base: 8}, ctx_k: 4, d_out: 2}
nodes:
  - {name: x, op: input, dims: [ctx, d_in]}
  - {name: q, op: linear, inputs: x, in: d_in, dims: [ctx, width], weight: Wq}
  - {name: k, op: linear, inputs: x, in: d_in, dims: [ctx, width], weight: Wk}
  - {name: scores, op: contract, inputs: [q, k], rename: {ctx: ctx_k}, over: width,
     dims: [ctx, ctx_k]}
  - {name: f, op: linear, inputs: scores, in: ctx_k, dims: [ctx, d_out], weight: Wo}
  - {name: out, op: output, inputs: f}
"""
PARAMS = 'parameters:\n  "*": {init_var: 1/fan_in, multiplier: 1, lr: 1}\n'


def yq(text: str) -> str:
    """``text`` as a YAML double-quoted scalar."""
    return json.dumps(text)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert (code, out) == (2, ""), (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abccalc: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- point 4: no code execution -------------------------------------------------------------

SPEC_VECTORS = {
    "graph-name": MLP.replace("graph: mlp", f"graph: {yq(QUOTE)}"),
    "node-name": MLP.replace("name: a,", f"name: {yq(QUOTE)},").replace("inputs: a,",
                                                                         f"inputs: {yq(QUOTE)},"),
    "param-name": MLP.replace("weight: W2", f"weight: {yq(QUOTE)}"),
    "dim-name": MLP.replace("d_out", yq(QUOTE)),
    "node-name-open": MLP.replace("name: a,", f"name: {yq(OPEN)},"),
}


@pytest.mark.parametrize("vector", list(SPEC_VECTORS))
@pytest.mark.parametrize("command", ["table", "codegen"])
def test_spec_injection_refused(run, cwd: Path, vector: str, command: str) -> None:
    (cwd / "g.yaml").write_text(SPEC_VECTORS[vector])
    args = ["--optimizer", "adam", "-o", "gen.py"] if command == "codegen" else []
    code, out, err = run(command, "g.yaml", *args)
    one_line_error(code, out, err, "g.yaml: ", "is not a name")
    assert sorted(p.name for p in cwd.iterdir()) == ["g.yaml"]  # no MARKER, no gen.py


@pytest.mark.parametrize("where", ["rule", "constant"])
@pytest.mark.parametrize("payload", [OPEN, "__import__('os').system('touch MARKER')",
                                     "Symbol('x').__class__"])
def test_params_expression_injection_refused(run, cwd: Path, where: str,
                                              payload: str) -> None:
    """Rules and constants are read by the whitelisted grammar: nothing runs."""
    text = (PARAMS.replace("lr: 1}", f"lr: {yq(payload)}}}") if where == "rule" else
            PARAMS + f"constants:\n  '*': {yq(payload)}\n")
    (cwd / "p.yaml").write_text(text)
    spec = GPT if where == "constant" else "g.yaml"
    (cwd / "g.yaml").write_text(MLP)
    code, out, err = run("check", spec, "--params", "p.yaml")
    one_line_error(code, out, err, "p.yaml: ", "not an expression")
    assert sorted(p.name for p in cwd.iterdir()) == ["g.yaml", "p.yaml"]


def test_names_map_values_must_be_module_paths(run, cwd: Path) -> None:
    (cwd / "g.yaml").write_text(MLP)
    (cwd / "names.yaml").write_text(json.dumps(
        {"W1": "a.weight", "b1": "a.bias", "W2": f"b.{QUOTE}"}))
    code, out, err = run("codegen", "g.yaml", "--optimizer", "adam", "--names", "names.yaml",
                         "-o", "gen.py")
    one_line_error(code, out, err, "names.yaml: 'W2' maps to: ", "is not a name")
    (cwd / "names.yaml").write_text(json.dumps(
        {"W1": "a.weight", "b1": "a.bias", "W2": "forward.weight"}))
    code, out, err = run("codegen", "g.yaml", "--optimizer", "adam", "--names", "names.yaml",
                         "-o", "gen.py")
    one_line_error(code, out, err, "'forward' is reserved")
    assert sorted(p.name for p in cwd.iterdir()) == ["g.yaml", "names.yaml"]


def _import(path: Path):
    spec = importlib.util.spec_from_file_location("gen_boundary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_path_payloads_write_a_module_that_runs_nothing(run, cwd: Path) -> None:
    """The spec path and the -o path are only file names: codegen writes the module, it
    imports and builds its Model, and no marker appears."""
    pytest.importorskip("torch")
    spec = cwd / 'm""";open("MARKER","w");"""\\.yaml'
    spec.write_text(MLP)
    target = cwd / "x'); open('MARKER', 'w'); ('.py"
    code, _, err = run("codegen", str(spec), "--optimizer", "adam", "--model", "-o",
                       str(target))
    assert code == 0, err
    module = _import(target)
    module.Model({"width": 16})
    assert not (cwd / "MARKER").exists()


def test_a_node_called_forward_is_refused_with_the_rule() -> None:
    b = GraphBuilder("g")
    with pytest.raises(AbcError, match="'forward' is reserved"):
        b.node("forward", "relu", inputs=["x"])


@pytest.mark.parametrize(("name", "ok"), [
    ("block.0.attn", True), ("W_q", True), ("_private", True), ("h.g", True),
    ("0x", False), ("a-b", False), ("a..b", False), ("a.", False), ("", False),
    ("class", False), ("a.__dict__", False), ("μ", False), ("a b", False), ("x\n", False),
    ("x" * 201, False),
])
def test_identifier_rule(name: str, ok: bool) -> None:
    assert (name_error(name) is None) == ok, name_error(name)


def test_clean_escapes_control_characters_and_surrogates() -> None:
    assert clean("a\x1b[31mb\nc\ud800 μ→½") == "a\\x1b[31mb\\nc\\ud800 μ→½"


def test_errors_echo_no_control_characters(run, cwd: Path) -> None:
    code, out, err = run("table", "no\x1b[2Jsuch\n.yaml")
    one_line_error(code, out, err, "no\\x1b[2Jsuch\\n.yaml: cannot read")


# -- point 5: resource limits ---------------------------------------------------------------

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n"
    for i in range(8))


@pytest.mark.parametrize(("text", "needle"), [
    (BOMB, "more than 100,000 items once aliases are expanded"),
    ("x: " + "[" * 1000 + "]" * 1000, "nested deeper than 64 levels"),
    ("".join(f"k{i}: &a{i} 1\n" for i in range(1001)) + "".join(
        f"r{i}: *a{i}\n" for i in range(1001)), "more than 1000 aliases"),
    ("a: &a [*a]\n", "an alias refers to a node that contains it"),
    (MLP.replace("d_in: 4", "d_in: " + "9" * 5001), "an integer of 5001 digits"),
])
def test_yaml_limits(run, cwd: Path, text: str, needle: str) -> None:
    (cwd / "g.yaml").write_text(text)
    code, out, err = run("table", "g.yaml")
    one_line_error(code, out, err, "g.yaml: ", needle)


def test_node_cap_counts_repeats_before_expanding(run) -> None:
    code, out, err = run("table", GPT, "--set", "n_layer=1000000")
    one_line_error(code, out, err, "14,000,008 nodes once repeats are expanded",
                   f"the limit is {MAX_NODES:,}")


@pytest.mark.parametrize(("value", "needle"), [
    ("9" * 5001, "not an integer of at most 15 digits"), ("1e3", "not an integer"),
    ("2199023255553", "larger than 2^40"), ("-1", "must be positive")])
def test_set_values_checked(run, value: str, needle: str) -> None:
    code, out, err = run("table", GPT, "--set", f"n_layer={value}")
    one_line_error(code, out, err, needle)


def test_params_power_tower_refused(run, cwd: Path) -> None:
    (cwd / "g.yaml").write_text(MLP)
    (cwd / "p.yaml").write_text(PARAMS.replace("lr: 1}", "lr: 2**2**2**2**2**2}"))
    code, out, err = run("check", "g.yaml", "--params", "p.yaml")
    one_line_error(code, out, err, "exponent 65536 is larger than 64")


# -- point 6: every other bad input is a clean error -----------------------------------------

FIELD_CASES = {
    "int-dim-name": (MLP.replace("d_out: 2", "7: 2"), "dim name: 7 is not a name (a int"),
    "int-node-name": (MLP.replace("name: a,", "name: 5,"), "a node needs a string 'name'"),
    "times-inf": (MLP.replace("d_out: 2", "d_out: 2\n  d_ff: {times: .inf, of: width}"),
                  "dim 'd_ff': times inf is not a positive finite number"),
    "times-nan": (MLP.replace("d_out: 2", "d_out: 2\n  d_ff: {times: .nan, of: width}"),
                  "dim 'd_ff': times nan is not a positive finite number"),
    "lone-surrogate": (MLP.replace("name: a,", 'name: "a\\ud800",').replace(
        "inputs: a,", 'inputs: "a\\ud800",'), "node name: 'a\\ud800' is not a name"),
    "no-parameters": ("dims: {d: 4, w: {base: 8}}\nnodes:\n  - {name: x, op: input, dims: [d]}"
                      "\n  - {name: y, op: output, inputs: x}\n", "no parameters"),
    "repeat-yes": (MLP.replace("  - {name: out, op: output, inputs: f}\n", """\
  - repeat: yes
    name: blk
    input: a
    carry: c
    output: r
    nodes:
      - {name: r, op: relu, inputs: c}
  - {name: out, op: output, inputs: f}
"""), "repeat 'blk': count True is not an integer"),
    "scale-value-inf": (MLP.replace("{name: a, op: relu, inputs: h}",
                                    "{name: a, op: scale, inputs: h, value: .inf}"),
                        "node 'a': 'value' inf is not a finite number"),
    "keyword-name": (MLP.replace("weight: W2", "weight: lambda"), "is a Python keyword"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_bad_fields(run, cwd: Path, case: str) -> None:
    text, needle = FIELD_CASES[case]
    (cwd / "g.yaml").write_text(text)
    code, out, err = run("table", "g.yaml")
    one_line_error(code, out, err, "g.yaml: ", needle)


@pytest.mark.parametrize(("value", "needle"), [
    ("1/0", "divides by zero"), ("'9999999999999999999999999999999999999999999'",
                                 "expected a number"), ("1.0e+300", "larger than 64"),
    (".nan", "expected a number")])
def test_params_exponents_checked(run, cwd: Path, value: str, needle: str) -> None:
    (cwd / "g.yaml").write_text(MLP)
    (cwd / "p.yaml").write_text(f'parameters:\n  "*": {{a: 0, b: {value}, c: 0}}\n')
    code, out, err = run("check", "g.yaml", "--params", "p.yaml")
    one_line_error(code, out, err, "p.yaml: parameter ", needle)


def test_yaml_merge_keys_work(run, cwd: Path) -> None:
    """``<<:`` merges as YAML 1.1 says; explicit keys override merged ones."""
    (cwd / "g.yaml").write_text(MLP.replace(
        "  - {name: h, op: linear, inputs: x, dims: [width], weight: W1, bias: b1}",
        "  - &lin {name: h, op: linear, inputs: x, dims: [width], weight: W1, bias: b1}"
    ).replace("  - {name: f, op: linear, inputs: a, dims: [d_out], weight: W2}",
              "  - {<<: *lin, name: f, inputs: a, dims: [d_out], weight: W2, bias: b2}"))
    code, out, err = run("table", "g.yaml", "--format", "csv")
    assert (code, err) == (0, "")
    assert [r.split(",")[0] for r in out.splitlines()[1:]] == ["W1", "b1", "W2", "b2"]
    (cwd / "g.yaml").write_text(MLP.replace("weight: W2}", "weight: W2, weight: W3}"))
    one_line_error(*run("table", "g.yaml"), "duplicate key 'weight'")


def test_ascii_locale_prints_escapes_not_tracebacks(tmp_path: Path) -> None:
    env = {**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": "ascii",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "abccalc", "table", GPT], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          encoding="ascii")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("## \\u03bcP for `gpt`")


def test_graph_named_after_an_unnamed_file(run, cwd: Path) -> None:
    (cwd / "my-model.v2.yaml").write_text(MLP.replace("graph: mlp\n", ""))
    code, out, err = run("table", "my-model.v2.yaml", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["graph"] == "my_model_v2"


# -- the Python API ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp():
    return parse_builder(MLP, "mlp.yaml").build()


@pytest.mark.parametrize("name", ["ADAM", "AdamW", "rmsprop", "Adagrad", "Lion", "signSGD"])
def test_solve_adam_like_names(mlp, name: str) -> None:
    assert solve(mlp, name).optimizer.value == "adam"


def test_solve_unknown_optimizer(mlp) -> None:
    with pytest.raises(AbcError, match=r"unknown optimizer 'nadam' \(known: sgd, adam"):
        solve(mlp, "nadam")


@pytest.mark.parametrize(("shifts", "exc", "needle"), [
    ("x", TypeError, "shifts must be a dict"),
    ({"W2": "x"}, AbcError, "shift of 'W2': θ 'x' is not an exact rational"),
    ({"W2": math.nan}, AbcError, "shift of 'W2': θ nan is not a finite rational"),
    ({"W2": [1]}, TypeError, r"shifts\['W2'\] must be a rational number"),
])
def test_parametrize_shifts_checked(mlp, shifts, exc, needle: str) -> None:
    with pytest.raises(exc, match=needle):
        parametrize(solve(mlp, "adam"), "table3", shifts)


def test_parametrize_shift_as_float_is_exact(mlp) -> None:
    """θ = 1 on the readout of Table 3 gives Table 8's row (TP5 Lemma J.1)."""
    an = solve(mlp, "adam")
    shifted = parametrize(an, "table3", {"W2": 1.0}).params["W2"]
    t8 = parametrize(an, "table8").params["W2"]
    assert (shifted.b, shifted.c) == (t8.b, t8.c)


@pytest.mark.parametrize(("call", "needle"), [
    (lambda b: b.dim(3, size=4), "dim name: 3 is not a name"),
    (lambda b: b.dim("d", size="4"), "size '4' is not a positive integer"),
    (lambda b: b.dim("d", size=2**41), "is not a positive integer ≤ 2^40"),
    (lambda b: b.value("n", "3"), "value 'n': '3' is not an integer"),
    (lambda b: b.node("h", "linear", inputs=5), "'inputs': expected a name or a list"),
    (lambda b: b.node("h", "linear", inputs=["x"], weight=7), "'weight': 7 is not a name"),
    (lambda b: b.node("h", 3), "op 3 is not a name"),
    (lambda b: b.repeat("blk", 2.5, input="x", carry="c", output="r"),
     "count 2.5 is not an integer"),
    (lambda b: b.set("w", True), "not an integer"),
])
def test_builder_wrong_types_name_the_argument(call, needle: str) -> None:
    with pytest.raises(AbcError, match=needle.replace("(", r"\(").replace("^", r"\^")):
        call(GraphBuilder("g", "api"))


def test_builder_graph_name_checked() -> None:
    with pytest.raises(AbcError, match="graph name: 'a b' is not a name"):
        GraphBuilder("a b")


# -- point 9: one vocabulary ----------------------------------------------------------------

@pytest.mark.parametrize("preset", ["sp", "ntk", "mf", "mup"])
def test_check_and_classify_take_preset_params(run, preset: str) -> None:
    code, out, err = run("check", GPT, "--params", preset, "--format", "json")
    assert code == (0 if preset == "mup" else 1), err
    assert json.loads(out)["ok"] == (preset == "mup")
    code, out, err = run("classify", GPT, "--params", preset, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["parametrization"] == preset


def test_classify_preset_still_works_with_a_note(run) -> None:
    new = run("classify", GPT, "--params", "sp")
    code, out, err = run("classify", GPT, "--preset", "sp")
    assert (code, out) == (0, new[1])
    assert err == "abccalc: warning: --preset is deprecated; use --params sp\n"


def test_one_default_variant(run) -> None:
    """table, explain and codegen use table8 by default, as coordcheck and verify do."""
    code, out, _ = run("table", GPT, "--format", "json")
    assert json.loads(out)["variant"] == "table8"
    code, out, _ = run("explain", GPT, "W_unemb")
    assert code == 0 and "variant table8" in out.splitlines()[0]


def test_key_positions_follow_the_query_dim(run) -> None:
    code, _, err = run("table", GPT, "--set", "ctx=128", "--format", "json")
    assert (code, err) == (0, "")
    g = load_graph(GPT, {"ctx": "128"})
    assert (g.dims["ctx"].size, g.dims["ctx_k"].size) == (128, 128)
    g = parse_builder(ATTN, "a.yaml").set("ctx", 16).build()
    assert (g.dims["ctx"].size, g.dims["ctx_k"].size) == (16, 16)
    g = parse_builder(ATTN, "a.yaml").set("ctx_k", 8).set("ctx", 16).build()
    assert (g.dims["ctx"].size, g.dims["ctx_k"].size) == (16, 8)  # set explicitly: kept
    g = parse_builder(ATTN.replace("ctx_k: 4", "ctx_k: 5"), "a.yaml").set("ctx", 16).build()
    assert g.dims["ctx_k"].size == 5  # a different size to start with: independent


def test_output_escapes_control_characters(run, cwd: Path) -> None:
    """A params file's path is echoed in check's report, with its ESC escaped."""
    (cwd / "g.yaml").write_text(MLP)
    (cwd / "p\x1b[2J.yaml").write_text(PARAMS)
    code, out, err = run("check", "g.yaml", "--params", "p\x1b[2J.yaml")
    assert code == 1, err
    assert "\x1b" not in out and out.startswith("# check: mlp with p\\x1b[2J.yaml (adam)")


def test_a_bug_is_one_line_and_exit_70(run, monkeypatch) -> None:
    import cli

    def boom(*_args, **_kw):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "solve", boom)
    code, out, err = run("table", GPT)
    assert (code, out) == (70, "")
    assert err == ("abccalc: internal error: RuntimeError: boom\\nsecond line (please report "
                   "this with the command line and input)\n")
