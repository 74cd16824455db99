"""The solver's μP exponents against the papers and against hand derivations.

Convention throughout (TP5 §J, TP4 §3): a use of a parameter applies the multiplier n^-a,
the parameter is initialized N(0, n^-2b) and trained with LR η·n^-c. Expected values come
from TP5 Tables 3/8/9 and TP4 Table 1 as restated in ``mup_reference.md`` §8, or from hand
derivations written out next to them with the rules of ``scaling_calculus.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from abccalc import GraphBuilder, load_graph, parametrize, solve
from abccalc.calculus.sizes import ABC, key, propagate
from abccalc.errors import AbcError
from abccalc.exponents import NEG_INF, Optimizer
from abccalc.graph.core import Kind, Role
from abccalc.parametrization.rules import constant_expr, fmt, rule

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mlp.yaml"
GPT = ROOT / "examples" / "gpt.yaml"
R = sympy.Rational
HALF = R(1, 2)


def abc(p, name: str) -> tuple:
    """(a, b, c) of parameter ``name`` (a of its first use), checked to be exact."""
    r = p.params[name]
    out = (r.a, r.b, r.c)
    assert all(isinstance(x, sympy.Rational) for x in out), out
    return out


def t(a, b, c) -> tuple:
    return (R(a), R(b), R(c))


# --------------------------------------------------------------------------------------
# 1. The MLP of TP5 Eq. (3): W1 input, W2 hidden, W3 output, b1/b2 biases.
# --------------------------------------------------------------------------------------

# mup_reference.md §8 items 2 and 3; TP4 Table 1 μP equals TP5 Table 9 for SGD.
PAPER = {
    ("sgd", "table3"): {"input": t(0, 0, -1), "hidden": t(0, HALF, 0), "output": t(0, 1, 1)},
    ("sgd", "table8"): {"input": t(0, 0, -1), "hidden": t(0, HALF, 0), "output": t(1, 0, -1)},
    ("sgd", "table9"): {"input": t(-HALF, HALF, 0), "hidden": t(0, HALF, 0),
                        "output": t(HALF, HALF, 0)},
    ("sgd", "tp4"): {"input": t(-HALF, HALF, 0), "hidden": t(0, HALF, 0),
                     "output": t(HALF, HALF, 0)},
    ("adam", "table3"): {"input": t(0, 0, 0), "hidden": t(0, HALF, 1), "output": t(0, 1, 1)},
    ("adam", "table8"): {"input": t(0, 0, 0), "hidden": t(0, HALF, 1), "output": t(1, 0, 0)},
    ("adam", "table9"): {"input": t(-HALF, HALF, HALF), "hidden": t(0, HALF, 1),
                         "output": t(HALF, HALF, HALF)},
}
MLP_ROLE = {"W1": "input", "b1": "input", "b2": "input", "W2": "hidden", "W3": "output"}


@pytest.fixture(scope="module")
def mlp():
    return load_graph(MLP)


@pytest.fixture(scope="module")
def gpt():
    return load_graph(GPT)


@pytest.mark.parametrize(("opt", "variant"), sorted(PAPER))
def test_mlp_paper_tables(mlp, opt: str, variant: str) -> None:
    p = parametrize(solve(mlp, opt), variant)
    assert set(p.params) == set(MLP_ROLE)
    for name, column in MLP_ROLE.items():
        assert p.params[name].role is Role(column), name
        # biases follow the "input weights & all biases" column (TP5 Table 3)
        assert abc(p, name) == PAPER[opt, variant][column], (name, opt, variant)


def test_mlp_tp4_equals_table9_for_sgd(mlp) -> None:
    an = solve(mlp, "sgd")
    tp4, t9 = parametrize(an, "tp4"), parametrize(an, "table9")
    assert {n: abc(tp4, n) for n in tp4.params} == {n: abc(t9, n) for n in t9.params}
    # TP4 Table 1 μP: c = 0 on every layer (one global LR)
    assert all(r.c == 0 for r in tp4.params.values())


# TP5 Tables 3, 8, 9 written in fan_in/fan_out (init variance, multiplier, LR). A bias has
# fan_in 1 (Table 3 caption), so its 1/fan_in variance is the constant 1 in width.
RULES = {
    ("sgd", "table3"): {"input": ("1/fan_in", "1", "fan_out"), "hidden": ("1/fan_in", "1", "1"),
                        "output": ("1/fan_in^2", "1", "1/fan_in")},
    ("adam", "table3"): {"input": ("1/fan_in", "1", "1"),
                         "hidden": ("1/fan_in", "1", "1/fan_in"),
                         "output": ("1/fan_in^2", "1", "1/fan_in")},
    ("sgd", "table8"): {"input": ("1/fan_in", "1", "fan_out"), "hidden": ("1/fan_in", "1", "1"),
                        "output": ("1", "1/fan_in", "fan_in")},
    ("adam", "table8"): {"input": ("1/fan_in", "1", "1"),
                         "hidden": ("1/fan_in", "1", "1/fan_in"),
                         "output": ("1", "1/fan_in", "1")},
    ("sgd", "table9"): {"input": ("1/fan_out", "sqrt(fan_out)", "1"),
                        "hidden": ("1/fan_in", "1", "1"),
                        "output": ("1/fan_in", "1/sqrt(fan_in)", "1")},
    ("adam", "table9"): {"input": ("1/fan_out", "sqrt(fan_out)", "1/sqrt(fan_out)"),
                         "hidden": ("1/fan_in", "1", "1/fan_in"),
                         "output": ("1/fan_in", "1/sqrt(fan_in)", "1/sqrt(fan_in)")},
}


@pytest.mark.parametrize(("opt", "variant"), sorted(RULES))
def test_mlp_rules_as_written_in_tp5(mlp, opt: str, variant: str) -> None:
    p = parametrize(solve(mlp, opt), variant)
    for name in ("W1", "W2", "W3"):
        r = rule(p, p.params[name])
        got = (fmt(r.init_var), fmt(r.multiplier), fmt(r.lr))
        assert got == RULES[opt, variant][MLP_ROLE[name]], (name, opt, variant)


def test_mlp_invariants_and_sgd_gradients(mlp) -> None:
    # scaling_calculus.md worked example, SGD: g(f) = 0; g(x2) = -(a+b)_W3 = -1 (no CLT
    # sum over the finite d_out); g(x1) = -(a+b)_W2 + 1/2 + g(h2) = -1/2 + 1/2 - 1 = -1.
    an = solve(mlp, "sgd")
    g = an.sizes.g
    assert (g["f"], g["x2"], g["h2"], g["x1"], g["h1"]) == (0, -1, -1, -1, -1)
    inv = an.invariants
    # invariants a+b and 2a+c are gauge-free: table3 values with a = 0
    assert (inv["h1", "W1"].init, inv["h1", "W1"].lr) == (0, -1)
    assert (inv["h2", "W2"].init, inv["h2", "W2"].lr) == (HALF, 0)
    assert (inv["f", "W3"].init, inv["f", "W3"].lr) == (1, 1)
    assert (inv["h1", "b1"].init, inv["h1", "b1"].lr) == (0, -1)


# --------------------------------------------------------------------------------------
# 2. GPT (examples/gpt.yaml): d_model, d_head, d_ff infinite; vocab, ctx, n_head finite.
# --------------------------------------------------------------------------------------

HIDDEN = ("W_q", "W_k", "W_v", "W_o", "W_fc", "W_proj")
LN = ("ln1_g", "ln1_b", "ln2_g", "ln2_b")
BIASES = ("b_q", "b_k", "b_v", "b_o", "b_fc", "b_proj")


def test_gpt_attention_constants(gpt) -> None:
    an = solve(gpt, "adam")
    for i in range(2):
        # q·k over infinite d_head: Θ(1) once trained needs n^-1 (LLN), i.e. 1/d_head and
        # not 1/√d_head (TP5 Def. 4.1): α = st(q) + st(k) + 1 = 0 + 0 + 1.
        assert an.alpha[f"block.{i}.scores"] == 1
        # probs·v over the finite ctx_k: no width factor at all.
        assert an.alpha[f"block.{i}.att"] == 0
    assert fmt(constant_expr(gpt, "block.0.scores", an.alpha["block.0.scores"])) == "1/d_head"
    assert set(solve(gpt, "sgd").alpha.values()) == {0, 1}


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_gpt_roles_and_table3(gpt, opt: str) -> None:
    p = parametrize(solve(gpt, opt), "table3")
    paper = PAPER[opt, "table3"]
    for i in range(2):
        for w in HIDDEN:
            r = p.params[f"block.{i}.{w}"]
            assert r.role is Role.HIDDEN, w
            assert abc(p, r.name) == paper["hidden"], w  # b = 1/2; c = 1 Adam, 0 SGD
        # LN gains/biases are "input weights" to the constant 1 (TP5 App. B.1), and so are
        # all biases (Table 3 column "input weights & all biases").
        for name in (*LN, *BIASES):
            r = p.params[f"block.{i}.{name}"]
            assert r.kind in (Kind.GAIN, Kind.BIAS)
            assert r.role is Role.INPUT, name
            assert abc(p, r.name) == paper["input"], name
    for name in ("ln_f_g", "ln_f_b", "wte", "wpe"):
        assert p.params[name].role is Role.INPUT, name
        assert abc(p, name) == paper["input"], name
    assert p.params["W_unemb"].role is Role.OUTPUT
    assert abc(p, "W_unemb") == paper["output"]  # (0, 1, 1) for both
    assert p.params["ln_f_g"].kind is Kind.GAIN and p.params["ln_f_b"].kind is Kind.BIAS


def test_gpt_hidden_fan_in(gpt) -> None:
    an = solve(gpt, "adam")
    fan_in = {w: an.invariants[key(gpt.params[f"block.0.{w}"].uses[0])].use.fan_in
              for w in HIDDEN}
    assert fan_in == {"W_q": ("d_model",), "W_k": ("d_model",), "W_v": ("d_model",),
                      "W_o": ("n_head", "d_head"), "W_fc": ("d_model",),
                      "W_proj": ("d_ff",)}


def test_gpt_n_layer_override(gpt) -> None:
    g5 = load_graph(GPT, {"n_layer": "5"})
    blocks = {n.split(".")[1] for n in g5.params if n.startswith("block.")}
    assert blocks == {"0", "1", "2", "3", "4"}
    assert len(g5.params) == len(gpt.params) + 3 * (len(HIDDEN) + len(LN) + len(BIASES))
    for opt in ("sgd", "adam"):
        p2 = parametrize(solve(gpt, opt), "table3")
        p5 = parametrize(solve(g5, opt), "table3")
        for i in range(5):
            for local in (*HIDDEN, *LN, *BIASES):
                assert abc(p5, f"block.{i}.{local}") == abc(p2, f"block.0.{local}")
                assert p5.params[f"block.{i}.{local}"].role is \
                    p2.params[f"block.0.{local}"].role
        for name in ("wte", "wpe", "ln_f_g", "ln_f_b", "W_unemb"):
            assert abc(p5, name) == abc(p2, name)
        assert solve(g5, opt).alpha == {f"block.{i}.{c}": R(v) for i in range(5)
                                        for c, v in (("scores", 1), ("att", 0))}


# --------------------------------------------------------------------------------------
# 3. A deeper MLP: 5 hidden width×width layers in a repeat block.
# --------------------------------------------------------------------------------------

def deep_mlp(depth: int = 5):
    b = GraphBuilder("deep")
    b.dim("d_in", size=16).dim("width", base=64).dim("d_out", size=4)
    b.node("x", "input", dims=["d_in"])
    b.node("h0", "linear", inputs=["x"], dims=["width"], weight="W_in", bias="b_in")
    b.node("a0", "relu", inputs=["h0"])
    blk = b.repeat("layer", depth, input="a0", carry="x", output="a")
    blk.node("h", "linear", inputs=["x"], dims=["width"], weight="W", bias="b")
    blk.node("a", "tanh", inputs=["h"])
    b.node("f", "linear", inputs=["layer"], dims=["d_out"], weight="W_out")
    b.node("out", "output", inputs=["f"])
    return b.build()


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("variant", ["table3", "table8", "table9"])
def test_deep_mlp_layers_match_two_layer_mlp(mlp, opt: str, variant: str) -> None:
    g = deep_mlp()
    p = parametrize(solve(g, opt), variant)
    ref = parametrize(solve(mlp, opt), variant)
    assert len(p.params) == 2 + 2 * 5 + 1
    for i in range(5):
        assert p.params[f"layer.{i}.W"].role is Role.HIDDEN
        assert abc(p, f"layer.{i}.W") == abc(ref, "W2") == PAPER[opt, variant]["hidden"]
        assert abc(p, f"layer.{i}.b") == abc(ref, "b2") == PAPER[opt, variant]["input"]
    assert abc(p, "W_in") == abc(ref, "W1") == PAPER[opt, variant]["input"]
    assert abc(p, "b_in") == abc(ref, "b1")
    assert abc(p, "W_out") == abc(ref, "W3") == PAPER[opt, variant]["output"]


# --------------------------------------------------------------------------------------
# 4. A finite→finite (PCA-like) first layer: TP5 Appendix B.
# --------------------------------------------------------------------------------------

def pca_mlp():
    b = GraphBuilder("pca")
    b.dim("d_in", size=32).dim("d_pca", size=8).dim("width", base=64).dim("d_out", size=10)
    b.node("x", "input", dims=["d_in"])
    b.node("p", "linear", inputs=["x"], dims=["d_pca"], weight="P")
    b.node("h1", "linear", inputs=["p"], dims=["width"], weight="W1", bias="b1")
    b.node("x1", "relu", inputs=["h1"])
    b.node("h2", "linear", inputs=["x1"], dims=["width"], weight="W2", bias="b2")
    b.node("x2", "relu", inputs=["h2"])
    b.node("f", "linear", inputs=["x2"], dims=["d_out"], weight="W3")
    b.node("out", "output", inputs=["f"])
    return b.build()


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_pca_layer_is_scalar_and_next_is_input(opt: str) -> None:
    # P has no infinite dim: scalar-like (TP5 App. B). Init: s(p0) = -(a+b) + 0 + s(x) = 0
    # gives a+b = 0. Adam: ΔP·x = -(a+c) + 0 + 0 = 0 gives a+c = 0. The layer after it maps
    # finite → infinite, so *it* is the input weight ("What Are Considered Input Weights?").
    p = parametrize(solve(pca_mlp(), opt), "table3")
    assert p.params["P"].role is Role.SCALAR
    assert abc(p, "P")[:2] == t(0, 0, 0)[:2]
    if opt == "adam":
        assert abc(p, "P") == t(0, 0, 0)
    paper = PAPER[opt, "table3"]
    assert p.params["W1"].role is Role.INPUT
    assert abc(p, "W1") == paper["input"]
    assert abc(p, "b1") == paper["input"]
    assert abc(p, "W2") == paper["hidden"]
    assert abc(p, "W3") == paper["output"]


def test_pca_layer_sgd_lr_is_constant_in_width() -> None:
    # TP5 Appendix B (verbatim): scalar-like parameters' "initialization, learning rate (for
    # both SGD and Adam), and multiplier ... hold them constant with width": (0, 0, 0).
    # Hand derivation with the rules, Table 3 gauge (W1 = (0, 0, -1), LR η·n):
    #   at init g(p) = -(a+b)_W1 + ½·inf(width) + g(h1) = 0 + ½ - 1 = -1/2 (W1₀ᵀ·∂L/∂h1, CLT);
    #   once trained ΔW1 = -ηn Σ ∂L/∂h1 ⊗ p has Θ(1) entries correlated with ∂L/∂h1, so
    #   ΔW1ᵀ·∂L/∂h1 = n · Θ(1) · Θ(1/n) = Θ(1) (LLN): g(p) = max(-1/2, 0) = 0.
    #   SGD ΔP entries: -(2a+c) + g(p) + s(x) = -c; ΔP·x = -c + 0 (finite fan_in) = 0 ⇒ c = 0.
    # With c = -1/2 the update ΔP·x grows like √n once W1 has trained.
    p = parametrize(solve(pca_mlp(), "sgd"), "table3")
    assert abc(p, "P") == t(0, 0, 0)


# --------------------------------------------------------------------------------------
# 5. A bottleneck width → r (finite) → width in the middle of an MLP.
# --------------------------------------------------------------------------------------

def bottleneck_mlp():
    b = GraphBuilder("bottleneck")
    b.dim("d_in", size=32).dim("d_r", size=4).dim("width", base=64).dim("d_out", size=10)
    b.node("x", "input", dims=["d_in"])
    b.node("h1", "linear", inputs=["x"], dims=["width"], weight="W1")
    b.node("x1", "relu", inputs=["h1"])
    b.node("z", "linear", inputs=["x1"], dims=["d_r"], weight="Wa")
    b.node("h2", "linear", inputs=["z"], dims=["width"], weight="Wb")
    b.node("x2", "relu", inputs=["h2"])
    b.node("f", "linear", inputs=["x2"], dims=["d_out"], weight="W3")
    b.node("out", "output", inputs=["f"])
    return b.build()


def test_bottleneck_adam() -> None:
    # scaling_calculus.md "Bottlenecks", Table 3 gauge (a = 0), Adam:
    # W1 (d_in → width): input weight: b = 0 (s(h1) = -b + 0 = 0), c = 0 (ΔW1·x = -c).
    # Wa (width → d_r): a readout. Maximal readout init: W₀·Δx1 = -b + 1 + sd(x1) = 0 ⇒ b = 1;
    #   ΔWa·x1 = -c + 1 + 0 = 0 ⇒ c = 1. So z₀ = -b + ½ + 0 = -1/2 (vanishes at init like the
    #   logits, TP4 Cor. 3.10) while Δz = 0: z is Θ(1) once trained.
    # Wb (d_r → width): an input weight of the operative size st(z) = max(-1/2, 0) = 0:
    #   -b + 0 + st(z) = 0 ⇒ b = 0; ΔWb·z = -c + 0 + 0 = 0 ⇒ c = 0.
    #   h2₀ = -0 + 0 + s0(z) = -1/2 (vanishes at init), Δh2 = max(ΔWb·z, Wb₀·Δz) = 0.
    # W3 (width → d_out): the readout of the MLP: (0, 1, 1); f₀ = -1 + ½ + s0(x2) = -1.
    an = solve(bottleneck_mlp(), "adam")
    p = parametrize(an, "table3")
    roles = {n: r.role for n, r in p.params.items()}
    assert roles == {"W1": Role.INPUT, "Wa": Role.OUTPUT, "Wb": Role.INPUT, "W3": Role.OUTPUT}
    assert abc(p, "W1") == t(0, 0, 0)
    assert abc(p, "Wa") == t(0, 1, 1)
    assert abc(p, "Wb") == t(0, 0, 0)
    assert abc(p, "W3") == t(0, 1, 1)
    s = an.sizes
    assert (s.s0["z"], s.sd["z"]) == (-HALF, 0)
    assert (s.s0["h2"], s.sd["h2"]) == (-HALF, 0)
    assert (s.s0["x2"], s.sd["x2"]) == (-HALF, 0)
    assert (s.s0["f"], s.sd["f"]) == (-1, 0)
    assert (s.s0["h1"], s.sd["h1"]) == (0, 0)


def test_bottleneck_sgd() -> None:
    # Each half is a μP model of its own (x → z and z → f, both finite → finite), so the
    # Table 3 SGD row holds for both halves. Hand derivation (a = 0), with trained sizes:
    #   g(f) = 0; g(x2) = -b_W3 + 0 + 0 = -1 (no CLT over finite d_out) = g(h2).
    #   Wb: b = 0; ΔWb entries -c + g(h2) + st(z) = -c - 1; ΔWb·z = -c - 1 = 0 ⇒ c = -1.
    #   g(z): init -b_Wb + ½ + g(h2) = -1/2, but once trained ΔWb (Θ(1) entries, an outer
    #     product with ∂L/∂h2) gives ΔWbᵀ·∂L/∂h2 = n·Θ(1)·Θ(1/n) = Θ(1): g(z) = 0.
    #   Wa: b = 1 (maximal readout init); ΔWa entries -c + g(z) + st(x1) = -c;
    #     ΔWa·x1 = -c + 1 + 0 = 0 ⇒ c = 1 (c = 1/2 would make z grow like √n).
    #   g(x1) = -b_Wa + 0 + g(z) = -1 = g(h1). W1: ΔW1·x = -c + g(h1) + 0 = 0 ⇒ c = -1.
    p = parametrize(solve(bottleneck_mlp(), "sgd"), "table3")
    assert {n: abc(p, n) for n in p.params} == {
        "W1": t(0, 0, -1), "Wa": t(0, 1, 1), "Wb": t(0, 0, -1), "W3": t(0, 1, 1)}


# --------------------------------------------------------------------------------------
# 6. Self-consistency: propagating the solved parametrization reproduces μP's sizes.
# --------------------------------------------------------------------------------------

def _vanishing(g) -> set[str]:
    """Where μP's output is O(1) but vanishes at init (TP4 Cor. 3.10): the logits, the
    output, and the attention scores (q·k/d_head is Θ(n^-1/2) while q, k independent)."""
    if g.name == "mlp":
        return {"f", "out"}
    return {"logits", "out", *(n.name for n in g.nodes if n.name.endswith(".scores"))}


@pytest.mark.parametrize("example", ["mlp", "gpt"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_propagate_is_self_consistent(mlp, gpt, example: str, opt: str) -> None:
    g = {"mlp": mlp, "gpt": gpt}[example]
    an = solve(g, opt)
    optimizer = Optimizer(opt)
    sizes = propagate(g, optimizer, parametrize(an, "table3").abc())
    inputs = {n.name for n in g.nodes if n.op == "input"}
    vanishing = _vanishing(g)
    assert {n for n, s in an.sizes.s0.items() if s != 0} == vanishing
    for n in g.nodes:
        name = n.name
        if name in inputs:
            assert (sizes.s0[name], sizes.sd[name]) == (0, NEG_INF)
            continue
        assert sizes.sd[name] == 0, name  # every change is Θ(1): stable and maximal
        assert sizes.s0[name] <= 0, name
        assert sizes.s0[name] == (-HALF if name in vanishing else 0), name
    # gauge invariance (TP5 Lemma J.1): another gauge, the same sizes
    for variant in ("table8", "table9", "unit"):
        other = propagate(g, optimizer, parametrize(an, variant).abc())
        assert (other.s0, other.sd, other.g) == (sizes.s0, sizes.sd, sizes.g), variant


# --------------------------------------------------------------------------------------
# 7. SP for contrast (scaling_calculus.md): updates blow up with width.
# --------------------------------------------------------------------------------------

def _sp_abc(g, b: dict) -> ABC:
    zero = R(0)
    return ABC({key(u): zero for p in g.params.values() for u in p.uses}, b,
               dict.fromkeys(b, zero), {})


def test_sp_adam_blows_up(mlp) -> None:
    # SP: a = 0, b = (0, ½, ½) for W1, W2, W3 (biases 0), Adam c = 0 (LR constant in width).
    b = {"W1": R(0), "b1": R(0), "W2": HALF, "b2": R(0), "W3": HALF}
    s = propagate(mlp, Optimizer.ADAM, _sp_abc(mlp, b))
    # Init is fine (SP keeps activations Θ(1) at init, and f₀ = -½ + ½ + 0 = 0).
    assert all(s.s0[n] == 0 for n in ("h1", "h2", "f"))
    # h1: ΔW1·x = -(a+c) + 0 + 0 = 0: the input layer is fine.
    assert s.sd["h1"] == 0
    # h2: ΔW2·x1 = -(a+c) + inf(width)·1 + st(x1) = 0 + 1 + 0 = +1: grows like n.
    assert s.sd["h2"] == 1
    # f: the readout update alone is ΔW3·x = -0 + 1 + s(x) = +1 for a Θ(1) x, but here
    # x2 itself grows like n once W2 trained (st(x2) = 1), so ΔW3·x2 = 0 + 1 + 1 = +2.
    assert s.sd["x2"] == 1
    assert s.sd["f"] == 2


def test_sp_adam_readout_alone_grows_like_n() -> None:
    # One hidden layer, so the readout reads a Θ(1) x1 (W1 is an input weight, whose SP
    # Adam update is Θ(1)): Δf = ΔW2·x1 = -(0+0) + 1 + 0 = +1, the readout blow-up of
    # scaling_calculus.md "SP for contrast". Contrast: μP's c = 1 gives Δf = 0.
    b = GraphBuilder("mlp1")
    b.dim("d_in", size=8).dim("width", base=32).dim("d_out", size=2)
    b.node("x", "input", dims=["d_in"])
    b.node("h1", "linear", inputs=["x"], dims=["width"], weight="W1")
    b.node("x1", "relu", inputs=["h1"])
    b.node("f", "linear", inputs=["x1"], dims=["d_out"], weight="W2")
    b.node("out", "output", inputs=["f"])
    g = b.build()
    s = propagate(g, Optimizer.ADAM, _sp_abc(g, {"W1": R(0), "W2": HALF}))
    assert (s.sd["h1"], s.sd["f"]) == (0, 1)
    mup = propagate(g, Optimizer.ADAM, parametrize(solve(g, "adam"), "table3").abc())
    assert (mup.sd["h1"], mup.sd["f"]) == (0, 0)


# --------------------------------------------------------------------------------------
# 8. A tied embedding / unembedding.
# --------------------------------------------------------------------------------------

def tied_graph():
    b = GraphBuilder("tied")
    b.dim("vocab", size=100).dim("ctx", size=8).dim("width", base=64)
    b.node("tokens", "input", dims=["ctx"])
    b.node("emb", "embedding", inputs=["tokens"], vocab="vocab", dims=["ctx", "width"],
           weight="E")
    b.node("h", "linear", inputs=["emb"], dims=["ctx", "width"], weight="W", bias="bW")
    b.node("act", "relu", inputs=["h"])
    b.node("logits", "linear", inputs=["act"], dims=["ctx", "vocab"], weight="E")
    b.node("out", "output", inputs=["logits"])
    return b.build()


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_tied_embedding_needs_table8(opt: str) -> None:
    g = tied_graph()
    assert [u.node for u in g.params["E"].uses] == ["emb", "logits"]
    an = solve(g, opt)
    # Table 3 puts a = 0 on both uses, but the embedding use needs a+b = 0 (input) and the
    # readout use a+b = 1 (output): no single b.
    with pytest.raises(AbcError) as err:
        parametrize(an, "table3")
    assert "'E'" in str(err.value) and "table8" in str(err.value)
    # Table 8: the readout use carries a = 1 (the 1/fan_in multiplier), the embedding use
    # a = 0, with the shared b = 0 and Table 8's c: Adam c = 0 for input (0,0,0) and output
    # (1,0,0); SGD c = -1 for input (0,0,-1) and output (1,0,-1). Both rows agree on c.
    p = parametrize(an, "table8")
    e = p.params["E"]
    assert e.a_by_use == {("emb", "E"): R(0), ("logits", "E"): R(1)}
    assert (e.b, e.c) == ((R(0), R(0)) if opt == "adam" else (R(0), R(-1)))
    assert abc(p, "W") == PAPER[opt, "table8"]["hidden"]


def test_builder_takes_a_bare_name_for_a_list_field() -> None:
    """``dims="d_in"`` is the one-element list, as a bare name is in the YAML spec."""
    b = GraphBuilder("mlp")
    b.dim("d_in", size=3).dim("width", base=8).dim("d_out", size=1)
    b.node("x", "input", dims="d_in").node("h", "linear", inputs="x", dims="width", weight="W1")
    b.node("f", "linear", inputs="h", dims="d_out", weight="W2").node("y", "output", inputs="f")
    assert b.build().params["W1"].shape == ("width", "d_in")
