"""The bad-input case table (issue 12, points 4–7 and more): one :class:`Case` per
malformed, hostile or oversized input, and a few valid inputs that must succeed.

Inputs are written into a fresh directory (the command's working directory); ``{ex}`` is
the shipped ``examples/`` folder. Every injection payload tries to create ``PWNED`` there.
"""

from __future__ import annotations

from bad_inputs.runner import DIR, MARKER, ROOT, Case

GPT = (ROOT / "examples" / "gpt.yaml").read_text(encoding="utf-8")
MLP = """\
graph: m
dims:
  d_in: 4
  width: {base: 8}
  d_out: 2
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h, op: linear, inputs: x, dims: [width], weight: W1, bias: b1}
  - {name: a, op: relu, inputs: h}
  - {name: g, op: linear, inputs: a, dims: [width], weight: W2}
  - {name: f, op: linear, inputs: g, dims: [d_out], weight: W3}
  - {name: out, op: output, inputs: f}
"""
MLP_N = MLP.replace("nodes:\n", "values: {n: 2}\nnodes:\n").replace(
    "  - {name: f, op: linear, inputs: g,", """\
  - repeat: n
    name: blk
    input: g
    carry: z
    output: r
    nodes:
      - {name: r, op: linear, inputs: z, dims: [width], weight: W}
  - {name: f, op: linear, inputs: blk,""")
NO_PARAMS = """\
dims: {d_in: 4, width: {base: 8}}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: y, op: relu, inputs: x}
  - {name: out, op: output, inputs: y}
"""
SP = "parameters:\n  '*': {init_var: 1/fan_in, multiplier: 1, lr: 1}\n"
# builtins are not auto-symbols in sympy's parser: this opens ./PWNED for writing
PAYLOAD = "open(chr(80)+chr(87)+chr(78)+chr(69)+chr(68),chr(119))"
BIG = "1" * 5001  # past Python's 4300-digit int-to-str limit
TOWER = "2**2**2**2**2**2"
QUICK = ("--widths", "8,16,32", "--steps", "1")
ASCII = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
         "PYTHONIOENCODING": "ascii"}


def _m(old: str, new: str) -> str:
    """The MLP with one substring replaced (each edit must apply)."""
    assert old in MLP, old
    return MLP.replace(old, new)


def _g(old: str, new: str) -> str:
    assert old in GPT, old
    return GPT.replace(old, new)


def _spec(id: str, text: str | bytes, *frags: str, cmd: str = "table", **kw) -> Case:
    """``abccalc CMD f.yaml`` on a bad spec; the message names f.yaml and the fragments."""
    extra = {"codegen": ("--optimizer", "adam", "-o", "out.py"), "coordcheck": QUICK}
    return Case(id, (cmd, "f.yaml", *extra.get(cmd, ())), {"f.yaml": text},
                ("f.yaml", *frags), **kw)


def _params(id: str, text: str, *frags: str, graph: str = "f.yaml", **kw) -> Case:
    """``abccalc check GRAPH --params p.yaml`` on a bad params file."""
    return Case(id, ("check", graph, "--params", "p.yaml"), {"f.yaml": MLP, "p.yaml": text},
                ("p.yaml", *frags), **kw)


def _opt(id: str, *args: str, frags: tuple[str, ...], files=None, **kw) -> Case:
    return Case(id, args, {"f.yaml": MLP} if files is None else files, frags, **kw)


# "billion laughs": 10^9 leaves from 9 aliased lists, in a field whose error shows it
ALIAS_BOMB = "graph:\n  - &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  - &{c} [{', '.join(['*' + p] * 10)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))

FILES = [
    Case("missing-file", ("table", "nope.yaml"), {}, ("nope.yaml",)),
    Case("graph-is-a-directory", ("table", "sub"), {"sub": DIR}, ("sub",)),
    _spec("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "UTF-8"),
    _spec("empty-file", "", "not an abccalc graph"),
    _spec("yaml-is-a-list", "- 1\n- 2\n", "not an abccalc graph"),
    _spec("yaml-is-a-scalar", "42\n", "not an abccalc graph"),
    _spec("yaml-is-null", "~\n", "not an abccalc graph"),
    _spec("nul-byte-in-yaml", MLP + "\x00\n", "YAML"),
    _spec("python-tag-no-exec",
          "!!python/object/apply:os.system ['touch PWNED']\n", "YAML"),
    _spec("deeply-nested-yaml", "dims: " + "[" * 50000 + "]" * 50000 + "\nnodes: []\n",
          "nest|deep"),
    _spec("alias-bomb", ALIAS_BOMB + MLP.split("\n", 1)[1], "alias", subprocess=True),
    Case("bom-prefixed-spec-ok", ("table", "f.yaml"), {"f.yaml": "\ufeff" + MLP}, code=0),
    Case("yaml-merge-key-ok", ("table", "f.yaml"), {"f.yaml": _m(
        "  - {name: h, op: linear", "  - &lin {name: h, op: linear").replace(
        "  - {name: g, op: linear, inputs: a, dims: [width], weight: W2}",
        "  - {<<: *lin, name: g, inputs: a, weight: W2, bias: b2}")}, code=0),
]

FIELDS = [
    _spec("dim-name-is-int", _m("  d_in: 4\n", "  d_in: 4\n  7: 3\n"), "dim"),
    _spec("dim-name-is-bool", _m("  d_in: 4\n", "  d_in: 4\n  true: 3\n"), "dim"),
    _spec("dim-name-is-null", _m("  d_in: 4\n", "  d_in: 4\n  ~: 3\n"), "dim"),
    _spec("node-name-is-int", _m("{name: a, op: relu", "{name: 5, op: relu"), "nodes[2]"),
    _spec("input-name-is-int", _m("inputs: a,", "inputs: [5],"), "node 'g'"),
    _spec("dim-size-float", _m("d_in: 4", "d_in: 4.5"), "d_in"),
    _spec("dim-size-bool", _m("d_in: 4", "d_in: true"), "d_in"),
    _spec("dim-size-negative", _m("d_in: 4", "d_in: -3"), "d_in"),
    _spec("dim-size-zero", _m("d_in: 4", "d_in: 0"), "d_in"),
    _spec("dim-size-string", _m("d_in: 4", "d_in: {size: '4'}"), "d_in"),
    _spec("dim-size-5001-digits", _m("d_in: 4", f"d_in: {BIG}"), "d_in|line 3"),
    _spec("base-zero", _m("{base: 8}", "{base: 0}"), "width"),
    _spec("base-float", _m("{base: 8}", "{base: 8.5}"), "width"),
    _spec("base-5001-digits", _m("{base: 8}", f"{{base: {BIG}}}"), "width|line 4"),
    _spec("times-inf", _m("  d_out: 2\n", "  d_out: 2\n  d_ff: {times: .inf, of: width}\n"),
          "d_ff"),
    _spec("times-nan", _m("  d_out: 2\n", "  d_out: 2\n  d_ff: {times: .nan, of: width}\n"),
          "d_ff"),
    _spec("times-negative", _m("  d_out: 2\n", "  d_out: 2\n  d_ff: {times: -2, of: width}\n"),
          "d_ff"),
    _spec("times-bool", _m("  d_out: 2\n", "  d_out: 2\n  d_ff: {times: true, of: width}\n"),
          "d_ff"),
    _spec("times-1e308", _m("  d_out: 2\n", "  d_out: 2\n  d_ff: {times: 1e308, of: width}\n"),
          "d_ff"),
    _spec("value-negative", MLP_N.replace("{n: 2}", "{n: -1}"), "'n'|'blk'"),
    _spec("value-float", MLP_N.replace("{n: 2}", "{n: 1.5}"), "'n'"),
    _spec("value-5001-digits", MLP_N.replace("{n: 2}", f"{{n: {BIG}}}"), "'n'|line 6"),
    _spec("repeat-yes", MLP_N.replace("repeat: n", "repeat: yes"), "'blk'|repeat"),
    _spec("repeat-count-huge", MLP_N.replace("repeat: n", "repeat: 1000000"), "node|repeat 'blk'",
          subprocess=True),
    _spec("repeat-unknown-value", MLP_N.replace("repeat: n", "repeat: depth"), "depth"),
    _spec("lone-surrogate-name", _m("weight: W2", 'weight: "W2\\ud800"'), "parameter|'weight'"),
    _spec("control-chars-in-name", _m("inputs: a,", 'inputs: "\\e[2J\\e[31mgone",'),
          "node 'g'"),
    _spec("no-parameters-table", NO_PARAMS, "parameter"),
    _spec("no-parameters-codegen", NO_PARAMS, "parameter", cmd="codegen"),
    _spec("no-parameters-coordcheck", NO_PARAMS, "parameter", cmd="coordcheck"),
    _spec("unknown-op", _m("op: relu", "op: frobnicate"), "frobnicate"),
    _spec("cycle", _m("inputs: h}", "inputs: g}"), "cycle"),
    _spec("self-loop", _m("inputs: h}", "inputs: a}"), "node 'a'"),
    _spec("undeclared-dim", _m("dims: [width], weight: W2", "dims: [depth], weight: W2"),
          "depth"),
    _spec("unknown-input", _m("inputs: a,", "inputs: nowhere,"), "nowhere"),
    _spec("duplicate-node", _m("{name: a, op: relu", "{name: h, op: relu"), "'h'"),
    _spec("node-is-a-list", _m("  - {name: a, op: relu, inputs: h}", "  - [a, relu, h]"),
          "nodes[2]"),
    _spec("nodes-empty", "dims: {w: {base: 8}}\nnodes: []\n", "output"),
    _spec("no-infinite-dim", _m("{base: 8}", "8"), "infinite"),
    _spec("weight-is-a-list", _m("weight: W2", "weight: [W2]"), "node 'g'"),
    _spec("softmax-over-infinite", _m("op: relu, inputs: h", "op: softmax, inputs: h"),
          "'a'"),
    _spec("quote-in-node-name", _m("{name: a, op: relu, inputs: h}",
                                   "{name: \"a'b\", op: relu, inputs: h}").replace(
        "inputs: a,", "inputs: \"a'b\","), "node", cmd="codegen"),
    _spec("node-named-with-space", _m("{name: a, op: relu, inputs: h}",
                                      "{name: a b, op: relu, inputs: h}").replace(
        "inputs: a,", "inputs: a b,"), "node", cmd="codegen"),
]

# Issue point 4: names and expressions that reach generated code or an evaluator.
_NODE_PAYLOAD = '"s():\\n    pass\\nopen(\\"PWNED\\",\\"w\\")\\ndef t"'
INJECTION = [
    _spec("inject-graph-name", "graph: \"g\\\"\\\"\\\"\\nopen('PWNED','w')\\n\\\"\\\"\\\"\"\n"
          + MLP.split("\n", 1)[1], "graph", cmd="codegen", run_output="out.py"),
    _spec("inject-node-name", _g("scores", _NODE_PAYLOAD), "node", cmd="codegen",
          run_output="out.py"),
    _spec("inject-param-name", _m("weight: W2", "weight: \"W2'] = 0\\nopen('PWNED','w')#\""),
          "parameter|'weight'", cmd="codegen", run_output="out.py"),
    _spec("inject-dim-name", _g("d_head", '"h=open(\\"PWNED\\",\\"w\\"), *e"'), "dim",
          cmd="codegen", run_output="out.py"),
    _params("inject-params-rule", f"parameters:\n  '*': {{init_var: '{PAYLOAD}', lr: 1}}\n",
            "init_var"),
    Case("inject-params-constant", ("check", "{ex}/gpt.yaml", "--params", "p.yaml"),
         {"p.yaml": SP + f"constants:\n  '*': '{PAYLOAD}'\n"}, ("p.yaml", "constant")),
    _params("inject-params-exponent", f"parameters:\n  '*': {{a: 0, b: '{PAYLOAD}', c: 0}}\n",
            "'b'"),
    Case("inject-names-value",
         ("codegen", "f.yaml", "--optimizer", "adam", "--model", "--names", "n.yaml",
          "-o", "out.py"),
         {"f.yaml": MLP, "n.yaml": "W1: \"h.weight')\\nopen('PWNED','w')#\"\nb1: h.bias\n"
          "W2: g.weight\nW3: f.weight\n"}, ("n.yaml", "W1"), run_output="out.py"),
    Case("inject-graph-path-ok", ("codegen", 'g"""\nopen("PWNED","w")\n""".yaml',
                                  "--optimizer", "adam", "-o", "out.py"),
         {'g"""\nopen("PWNED","w")\n""".yaml': MLP}, code=0, outputs=("out.py",),
         run_output="out.py"),
    Case("control-chars-in-o-path-ok", ("table", "{ex}/mlp.yaml", "-o", "x\x1b[2J.md"), {},
         code=0, outputs=("x\x1b[2J.md",)),
]

# Issue point 5: inputs that must be refused quickly.
LIMITS = [
    Case("set-n_layer-1e6", ("table", "{ex}/gpt.yaml", "--set", "n_layer=1000000"), {},
         ("gpt.yaml", "node"), subprocess=True),
    _params("params-power-tower", f"parameters:\n  '*': {{init_var: '{TOWER}', lr: 1}}\n",
            "init_var", subprocess=True),
    _params("params-power-tower-exponent", f"parameters:\n  '*': {{a: 0, b: 0, c: '{TOWER}'}}\n",
            "'c'", subprocess=True),
    _params("params-5001-digit-rule", f"parameters:\n  '*': {{init_var: 1/{BIG}, lr: 1}}\n",
            "init_var"),
    _params("params-5001-digit-exponent", f"parameters:\n  '*': {{a: 0, b: {BIG}, c: 0}}\n",
            "'b'|line 2"),
    _opt("set-5001-digits", "table", "f.yaml", "--set", f"width={BIG}", frags=("width",)),
    _opt("base-flag-5001-digits", "table", "f.yaml", "--base", f"width={BIG}",
         frags=("--base",)),
    _opt("shift-huge-exponent", "table", "f.yaml", "--shift", "W2=1e100000000",
         frags=("--shift",), subprocess=True),
    _opt("widths-too-large", "coordcheck", "f.yaml", "--widths", "8,16,1000000000",
         "--steps", "1", frags=("--widths|width",), subprocess=True),
    _spec("huge-finite-dim-coordcheck", _m("d_in: 4", "d_in: 1000000000000"),
          "d_in|--widths|memory", cmd="coordcheck", subprocess=True),
]

# Issue point 6: parameter files, flags and CLI options.
PARAMS = [
    _params("params-b-1-over-0", "parameters:\n  '*': {a: 0, b: 1/0, c: 0}\n", "'b'"),
    _params("params-a-nan", "parameters:\n  '*': {a: .nan, b: 0, c: 0}\n", "'a'"),
    _params("params-c-inf", "parameters:\n  '*': {a: 0, b: 0, c: .inf}\n", "'c'"),
    _params("params-lr-zero", "parameters:\n  '*': {init_var: 1, lr: 0}\n", "lr"),
    _params("params-rule-negative", "parameters:\n  '*': {init_var: -1/fan_in, lr: 1}\n",
            "init_var"),
    _params("params-rule-unknown-name", "parameters:\n  '*': {init_var: 1/depth, lr: 1}\n",
            "depth"),
    _params("params-rule-not-monomial", "parameters:\n  '*': {init_var: fan_in+1, lr: 1}\n",
            "monomial"),
    _params("params-rule-nan", "parameters:\n  '*': {init_var: .nan, lr: 1}\n", "init_var"),
    _params("params-rule-list", "parameters:\n  '*': {init_var: [1], lr: 1}\n", "init_var"),
    _params("params-unknown-parameter", "parameters:\n  W9: {a: 0, b: 0, c: 0}\n" + SP[11:],
            "W9"),
    _params("params-unknown-field", "parameters:\n  '*': {init_var: 1, lr: 1, wd: 0}\n",
            "wd"),
    _params("params-is-a-list", "- 1\n", "not a params file"),
    _params("params-empty", "", "not a params file"),
    _params("params-constants-list", SP + "constants: [1]\n", "constants"),
    _params("params-unknown-role", "parameters:\n  '@bogus': {a: 0, b: 0, c: 0}\n", "@bogus"),
    _params("params-missing-parameter", "parameters:\n  W1: {a: 0, b: 0, c: 0}\n", "b1"),
    _params("params-non-string-key", "parameters:\n  1: {a: 0, b: 0, c: 0}\n" + SP[11:],
            "'1'"),
    Case("params-file-missing", ("check", "f.yaml", "--params", "nope.yaml"), {"f.yaml": MLP},
         ("nope.yaml",)),
    Case("params-is-a-directory", ("check", "f.yaml", "--params", "pdir"),
         {"f.yaml": MLP, "pdir": DIR}, ("pdir",)),
    Case("coordcheck-params-b-1-over-0",
         ("coordcheck", "f.yaml", "--params", "p.yaml", *QUICK),
         {"f.yaml": MLP, "p.yaml": "parameters:\n  '*': {a: 0, b: 1/0, c: 0}\n"},
         ("p.yaml", "'b'")),
]

FLAGS = [
    _opt("set-no-equals", "table", "f.yaml", "--set", "width", frags=("--set width",)),
    _opt("set-empty-name", "table", "f.yaml", "--set", "=3", frags=("--set",)),
    _opt("set-not-int", "table", "f.yaml", "--set", "width=abc", frags=("width",)),
    _opt("set-zero", "table", "f.yaml", "--set", "width=0", frags=("width",)),
    _opt("set-float", "table", "f.yaml", "--set", "width=1e3", frags=("width",)),
    _opt("set-unknown", "table", "f.yaml", "--set", "depth=3", frags=("depth",)),
    _opt("set-nul", "table", "f.yaml", "--set", "width=8\x00", frags=("width",)),
    _opt("shift-garbage", "table", "f.yaml", "--shift", "W2=x", frags=("--shift",)),
    _opt("shift-nan", "table", "f.yaml", "--shift", "W2=nan", frags=("--shift",)),
    _opt("shift-inf", "table", "f.yaml", "--shift", "W2=inf", frags=("--shift",)),
    _opt("shift-1-over-0", "table", "f.yaml", "--shift", "W2=1/0", frags=("--shift",)),
    _opt("shift-unknown-param", "table", "f.yaml", "--shift", "W9=1", frags=("W9",)),
    _opt("shift-no-equals", "table", "f.yaml", "--shift", "W2", frags=("--shift",)),
    _opt("base-flag-garbage", "table", "f.yaml", "--base", "width=x", frags=("--base",)),
    _opt("base-flag-zero", "table", "f.yaml", "--base", "width=0", frags=("--base",)),
    _opt("base-flag-finite-dim", "table", "f.yaml", "--base", "d_in=4", frags=("d_in",)),
    _opt("base-flag-unknown-dim", "table", "f.yaml", "--base", "depth=4", frags=("depth",)),
    _opt("explain-unknown-param", "explain", "f.yaml", "W9", frags=("W9",)),
    _opt("classify-no-preset", "classify", "f.yaml", frags=("--preset",)),
    _opt("classify-both", "classify", "f.yaml", "--preset", "sp", "--params", "p.yaml",
         frags=("--preset",), files={"f.yaml": MLP, "p.yaml": SP}),
    _opt("unknown-option", "table", "f.yaml", "--bogus", frags=("--bogus",)),
    _opt("bad-choice-optimizer", "table", "f.yaml", "--optimizer", "nadam",
         frags=("nadam",)),
    _opt("extra-argument", "table", "f.yaml", "g.yaml", frags=("g.yaml",)),
    _opt("explain-missing-param", "explain", "f.yaml", frags=("PARAM",)),
    _opt("bad-choice-format", "table", "f.yaml", "--format", "yaml", frags=("yaml",)),
    _opt("set-n_layer-negative", "table", "f.yaml", "--set", "n=-1", frags=("n=-1",),
         files={"f.yaml": MLP_N}),
    _opt("batch-zero", "coordcheck", "f.yaml", *QUICK, "--batch", "0", frags=("--batch",)),
    _opt("verify-params-missing", "verify", "f.yaml", "--params", "nope.yaml", *QUICK,
         frags=("nope.yaml",)),
    _opt("unknown-command", "tabel", "f.yaml", frags=("tabel",)),
    _opt("codegen-missing-o", "codegen", "f.yaml", "--optimizer", "adam", frags=("-o",)),
    _opt("names-not-a-mapping", "codegen", "f.yaml", "--optimizer", "adam", "--names",
         "n.yaml", "-o", "out.py", frags=("n.yaml",),
         files={"f.yaml": MLP, "n.yaml": "- W1\n"}),
    _opt("names-missing-param", "codegen", "f.yaml", "--optimizer", "adam", "--names",
         "n.yaml", "-o", "out.py", frags=("--names|n.yaml", "b1"),
         files={"f.yaml": MLP, "n.yaml": "W1: h.weight\n"}),
    _opt("names-non-identifier", "codegen", "f.yaml", "--optimizer", "adam", "--model",
         "--names", "n.yaml", "-o", "out.py", frags=("n.yaml|--names", "W1"),
         files={"f.yaml": MLP,
                "n.yaml": "W1: 'h weight'\nb1: h.bias\nW2: g.weight\nW3: f.weight\n"}),
    _opt("names-value-int", "codegen", "f.yaml", "--optimizer", "adam", "--names", "n.yaml",
         "-o", "out.py", frags=("n.yaml",),
         files={"f.yaml": MLP, "n.yaml": "W1: 3\nb1: h.bias\nW2: g.weight\nW3: f.weight\n"}),
    _opt("widths-with-zero", "coordcheck", "f.yaml", "--widths", "0,8,16", "--steps", "1",
         frags=("--widths",)),
    _opt("widths-negative", "coordcheck", "f.yaml", "--widths", "-8,16,32", "--steps", "1",
         frags=("--widths",)),
    _opt("widths-garbage", "coordcheck", "f.yaml", "--widths", "8,x,32", frags=("--widths",)),
    _opt("widths-empty", "coordcheck", "f.yaml", "--widths", "", frags=("--widths",)),
    _opt("seed-2-pow-63", "coordcheck", "f.yaml", *QUICK, "--seed", str(2**63),
         frags=("--seed",)),
    _opt("seed-5001-digits", "coordcheck", "f.yaml", *QUICK, "--seed", BIG,
         frags=("--seed",)),
    _opt("verify-seed-2-pow-63", "verify", "f.yaml", *QUICK, "--seed", str(2**63),
         frags=("--seed",)),
    _opt("lr-zero", "coordcheck", "f.yaml", *QUICK, "--lr", "0", frags=("--lr",)),
    _opt("lr-nan", "coordcheck", "f.yaml", *QUICK, "--lr", "nan", frags=("--lr",)),
    _opt("lr-inf", "coordcheck", "f.yaml", *QUICK, "--lr", "inf", frags=("--lr",)),
    _opt("lr-negative", "coordcheck", "f.yaml", *QUICK, "--lr", "-1", frags=("--lr",)),
    _opt("steps-zero", "coordcheck", "f.yaml", "--widths", "8,16,32", "--steps", "0",
         frags=("--steps",)),
    _opt("plot-bad-extension", "coordcheck", "f.yaml", *QUICK, "--plot", "out.txt",
         frags=("out.txt|--plot",)),
    _opt("plot-missing-dir", "coordcheck", "f.yaml", *QUICK, "--plot", "nodir/out.png",
         frags=("nodir/out.png",)),
    Case("ascii-locale-table-ok", ("table", "{ex}/gpt.yaml"), {}, code=0, subprocess=True,
         env=ASCII),
]

# Issue point 7: the -o file.
OUTPUT = [
    _opt("o-dir-trailing-slash", "table", "f.yaml", "-o", "newdir/", frags=("newdir/",)),
    _opt("o-existing-dir", "table", "f.yaml", "-o", "sub", frags=("sub",),
         files={"f.yaml": MLP, "sub": DIR}),
    _opt("o-existing-dir-force", "table", "f.yaml", "-o", "sub/", "--force", frags=("sub",),
         files={"f.yaml": MLP, "sub": DIR}),
    _opt("o-empty", "table", "f.yaml", "-o", "", frags=("-o",)),
    _opt("o-missing-dir", "codegen", "f.yaml", "--optimizer", "adam", "-o", "nodir/out.py",
         frags=("nodir/out.py",)),
    _opt("o-exists-no-force", "table", "f.yaml", "-o", "out.md", frags=("out.md", "--force"),
         files={"f.yaml": MLP, "out.md": "keep\n"}),
    _opt("o-concurrent-run", "table", "f.yaml", "-o", "out.md", frags=("out.md",),
         race="out.md"),
    _opt("o-codegen-concurrent-run", "codegen", "f.yaml", "--optimizer", "sgd", "-o",
         "out.py", frags=("out.py",), race="out.py"),
    Case("o-honours-umask", ("table", "f.yaml", "-o", "out.md"), {"f.yaml": MLP}, code=0,
         outputs=("out.md",), umask=0o022, mode=0o644),
    Case("o-ascii-locale", ("table", "{ex}/gpt.yaml", "-o", "out.md"), {}, code=0,
         outputs=("out.md",), subprocess=True, env=ASCII),
    Case("o-bad-graph-writes-nothing", ("table", "f.yaml", "-o", "out.md"),
         {"f.yaml": _m("op: relu", "op: nope")}, ("f.yaml", "nope")),
]

# Valid inputs the commands must accept (the baseline the bad inputs are measured from).
VALID = [
    Case("ok-table-gpt-all", ("table", "{ex}/gpt.yaml", "--variant", "all"), {}, code=0),
    Case("ok-codegen-llama-model", ("codegen", "{ex}/archs/llama.yaml", "--optimizer", "adam",
                                    "--model", "-o", "out.py"), {}, code=0,
         outputs=("out.py",)),
    Case("ok-check-mup-table8", ("check", "{ex}/gpt.yaml", "--params",
                                 "{ex}/params/mup_table8.yaml"), {}, code=0),
    Case("ok-classify-gpt-sp-sgd", ("classify", "{ex}/gpt.yaml", "--preset", "sp",
                                    "--optimizer", "sgd"), {}, code=0),
    Case("ok-explain-constant", ("explain", "{ex}/gpt.yaml", "block.0.scores"), {}, code=0),
    Case("ok-set-ctx-follows", ("table", "{ex}/gpt.yaml", "--set", "ctx=128"), {}, code=0),
]

CASES: list[Case] = FILES + FIELDS + INJECTION + LIMITS + PARAMS + FLAGS + OUTPUT + VALID
assert len({c.id for c in CASES}) == len(CASES), "duplicate case id"
assert MARKER == "PWNED"
