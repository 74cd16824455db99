"""Ops and dims of real models (issue #4, point 5): each graph under examples/archs/ is
checked against exponents derived by hand or read off the papers (TP5 = Tensor Programs
V, arXiv 2203.03466; TP4 = Tensor Programs IV, arXiv 2011.14522).

Conventions: a use's effective weight is n^-a·w, w ~ N(0, n^-2b), LR η·n^-c; sizes s(v) and
gradient sizes g(v) are exponents of n (TP5 Def. J.1). Hand derivations are in each test's
docstring; the rules used are those of abccalc/exponents.py (TP4 §3/§5, TP5 App. J).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from sympy import Rational

from abccalc import AbcError, GraphBuilder, load_graph
from abccalc.calculus.sizes import propagate
from abccalc.calculus.solver import solve
from abccalc.graph.core import Graph, Kind, Role
from abccalc.graph.spec import dump, parse_builder, to_dict
from abccalc.parametrization.gauges import parametrize, parametrize_auto

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ARCHS = EXAMPLES / "archs"

HALF = Rational(1, 2)
Z, ONE = Rational(0), Rational(1)

# TP5 Table 3 (a, b, c) per role, a = 0. Init var n^-2b: input 1/fan_in (b = 0), hidden
# 1/fan_in (b = 1/2), output 1/fan_in² (b = 1). LR n^-c: see the table's SGD/Adam rows.
TABLE3 = {
    "adam": {Role.INPUT: (Z, Z, Z), Role.HIDDEN: (Z, HALF, ONE), Role.OUTPUT: (Z, ONE, ONE)},
    "sgd": {Role.INPUT: (Z, Z, -ONE), Role.HIDDEN: (Z, HALF, Z), Role.OUTPUT: (Z, ONE, ONE)},
}
OPTIMIZERS = ("adam", "sgd")


@cache
def graph(path: str) -> Graph:
    return load_graph(path)


@cache
def analysis(path: str, opt: str):
    return solve(graph(path), opt)


def abc(path: str, opt: str, variant: str = "table3") -> dict[str, tuple]:
    p = parametrize(analysis(path, opt), variant)
    return {name: (r.a, r.b, r.c) for name, r in p.params.items()}


def arch(name: str) -> str:
    return str(ARCHS / f"{name}.yaml")


GPT = str(EXAMPLES / "gpt.yaml")
MLP = str(EXAMPLES / "mlp.yaml")


def test_every_arch_example_loads_and_has_a_header() -> None:
    files = sorted(ARCHS.glob("*.yaml"))
    assert {f.stem for f in files} >= {"attention_heads", "llama", "gpt_tied", "cnn",
                                       "mlp_output_bias", "two_widths"}
    for f in files:
        assert f.read_text().startswith("# "), f"{f.name} needs a header comment"
        g = load_graph(f)
        assert parse_builder(dump(g), str(f)).build() == g  # spec round trip
        for opt in OPTIMIZERS:
            # every example solves in Table 8's gauge, and propagating that solution back
            # through the graph gives no growing activation and a Θ(1) change of the output
            p = parametrize(solve(g, opt), "table8")
            sizes = propagate(g, p.optimizer, p.abc())
            grown = [n for n in sizes.s0 if sizes.st(n) > 0]
            assert not grown, (f.name, opt, grown)
            assert all(sizes.sd[o.name] == Z for o in g.outputs), (f.name, opt)


# -- attention: both regimes of TP5 Appendix J.2.1 ------------------------------------------

@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_attention_d_head_infinite_gives_1_over_d(opt: str) -> None:
    """Regime (i), examples/gpt.yaml: d_head → ∞, n_head fixed. q and k are correlated
    once trained, so qᵀk = Θ(d_head) by LLN and the score needs n^-1: 1/d_head (TP5
    Def. 4.1 and footnote 8). The value contraction sums over the finite ctx_k: n^0."""
    a = analysis(GPT, opt)
    for i in range(graph(GPT).values["n_layer"]):
        assert a.alpha[f"block.{i}.scores"] == ONE
        assert a.alpha[f"block.{i}.att"] == Z
    wo = a.invariants[("block.0.o", "block.0.W_o")]
    assert wo.role is Role.HIDDEN and wo.use.fan_in == ("n_head", "d_head")


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_attention_n_head_infinite_needs_no_scale(opt: str) -> None:
    """Regime (ii), examples/archs/attention_heads.yaml: n_head → ∞, d_head fixed. The
    score sums over the finite d_head, so its constant is Θ(1) (exponent 0; TP5 J.2.1:
    "our parametrization described above already works"). W_o has fan_in n_head·d_head
    with one infinite dim, so it is hidden: Adam (0, 1/2, 1), SGD (0, 1/2, 0)."""
    path = arch("attention_heads")
    a = analysis(path, opt)
    g = graph(path)
    for i in range(g.values["n_layer"]):
        assert a.alpha[f"block.{i}.scores"] == Z
        assert a.alpha[f"block.{i}.att"] == Z
    wo = a.invariants[("block.0.o", "block.0.W_o")]
    assert wo.role is Role.HIDDEN
    assert wo.use.fan_in == ("n_head", "d_head") and g.inf(wo.use.fan_in) == 1
    assert wo.use.fan_out == ("d_model",)
    for w in ("W_q", "W_k", "W_v"):  # d_model → n_head × d_head: hidden too
        inv = a.invariants[(f"block.0.{w[-1]}", f"block.0.{w}")]
        assert inv.role is Role.HIDDEN and inv.use.fan_out == ("n_head", "d_head")
    p = abc(path, opt)
    assert p["block.0.W_o"] == TABLE3[opt][Role.HIDDEN]
    assert p["block.0.W_q"] == TABLE3[opt][Role.HIDDEN]
    assert p["block.0.b_q"] == TABLE3[opt][Role.INPUT]  # [n_head, d_head]: vector-like


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_attention_regimes_give_the_same_parameter_table(opt: str) -> None:
    """Only the score constant differs between the regimes; every parameter's (a, b, c)
    is the same, in Table 3's and Table 8's gauge."""
    for variant in ("table3", "table8"):
        assert abc(arch("attention_heads"), opt, variant) == abc(GPT, opt, variant)


def test_attention_sgd_gradient_of_probs_by_regime() -> None:
    """Hand-derived backward (SGD, Table 3). g(logits) = 0; the readout has b = 1, so the
    residual stream has g = −1 and g(att) = −(a+b)_{W_o} + ½ + g(o) = −½ + ½ − 1 = −1.
    ∂L/∂probs[t] = Σ_d ∂L/∂att[d]·v[t, d] sums over d_head, correlated (LLN):
    regime (i) d_head infinite: g(probs) = g(att) + s(v) + 1 = 0 (a finite softmax whose
    output is read by Θ(n) coordinates); regime (ii) d_head finite: g(probs) = −1.
    Either way g(q) = −α + g(scores) + s(k) = −1, as for any hidden activation."""
    gi = analysis(GPT, "sgd").sizes.g
    gii = analysis(arch("attention_heads"), "sgd").sizes.g
    assert gi["block.0.att"] == gii["block.0.att"] == -ONE
    assert gi["block.0.probs"] == Z
    assert gii["block.0.probs"] == -ONE
    assert gi["block.0.q"] == gii["block.0.q"] == -ONE


# -- gated MLP (SwiGLU) and RMSNorm: examples/archs/llama.yaml -------------------------------

LLAMA = arch("llama")


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_swiglu_product_is_theta_1_and_its_weights_are_hidden(opt: str) -> None:
    """glu = silu(W_gate x) ⊙ (W_up x): both branches Θ(1) at init and in training, so
    s(glu) = s(u) + s(v) = 0 + 0 = 0 and its change is max(sd(u) + st(v), st(u) + sd(v)) = 0.
    W_gate, W_up (d_model → d_ff) and W_down (d_ff → d_model) are hidden weights:
    Adam (0, 1/2, 1), SGD (0, 1/2, 0) in Table 3 (TP5 Table 3, "Hidden weights")."""
    a = analysis(LLAMA, opt)
    s = a.sizes
    for v in ("gate", "up", "act", "glu", "down"):
        assert s.s0[f"block.0.{v}"] == Z, v
        assert s.sd[f"block.0.{v}"] == Z, v
    p = abc(LLAMA, opt)
    for w in ("W_gate", "W_up", "W_down"):
        inv = a.invariants[(f"block.0.{w[2:]}", f"block.0.{w}")]
        assert inv.role is Role.HIDDEN, w
        assert p[f"block.0.{w}"] == TABLE3[opt][Role.HIDDEN], w
    assert a.invariants[("block.0.down", "block.0.W_down")].use.fan_in == ("d_ff",)


def test_swiglu_sgd_backward_rule() -> None:
    """SGD backward through the gate, by hand: g(down) = −1 (residual stream);
    g(glu) = −(a+b)_{W_down} + ½·inf(d_model) + g(down) = −½ + ½ − 1 = −1;
    g(act) = g(glu) + s(up) = −1 + 0, g(up) = g(glu) + s(act) = −1 + 0; g(gate) = g(act).
    Maximal update of W_gate: 2a + c = inf(d_model) + g(gate) + 2·s(x) = 1 − 1 + 0 = 0,
    so c = 0 at a = 0, the hidden-weight SGD LR Θ(1) of TP5 Table 3."""
    a = analysis(LLAMA, "sgd")
    g = a.sizes.g
    assert g["block.0.down"] == g["block.0.glu"] == -ONE
    assert g["block.0.act"] == g["block.0.glu"] + a.sizes.st("block.0.up") == -ONE
    assert g["block.0.up"] == g["block.0.glu"] + a.sizes.st("block.0.act") == -ONE
    assert g["block.0.gate"] == -ONE
    for w in ("W_gate", "W_up", "W_down"):
        assert a.invariants[(f"block.0.{w[2:]}", f"block.0.{w}")].lr == Z


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_rmsnorm_gain_is_an_input_weight(opt: str) -> None:
    """An RMSNorm gain multiplies the Θ(1) normalized x̂ coordinatewise: an "input weight"
    from the constant 1 (TP5 B.1), like a LayerNorm gain: Adam (0, 0, 0). SGD: the gain's
    output feeds hidden weights, g = −1, so 2a + c = 0 + g + 2·s(x̂) = −1: (0, 0, −1), the
    LR ∝ fan_out of Table 3's "input weights & all biases"."""
    a = analysis(LLAMA, opt)
    p = abc(LLAMA, opt)
    gains = ["block.0.norm1_g", "block.0.norm2_g", "block.1.norm1_g", "norm_f_g"]
    for name in gains:
        param = graph(LLAMA).params[name]
        assert param.kind is Kind.GAIN and param.shape == ("d_model",)
        assert a.invariants[(param.uses[0].node, name)].role is Role.INPUT
        assert p[name] == TABLE3[opt][Role.INPUT] == ((Z, Z, Z) if opt == "adam"
                                                       else (Z, Z, -ONE))
    # the same as a LayerNorm gain in examples/gpt.yaml
    assert p["block.0.norm1_g"] == abc(GPT, opt)["block.0.ln1_g"]


# -- tied input/output embeddings: examples/archs/gpt_tied.yaml ------------------------------

TIED = arch("gpt_tied")


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_tied_embeddings_conflict_under_table3(opt: str) -> None:
    """The lookup needs a+b = 0 (input weight, Θ(1) from the constant 1) and the readout
    a+b = 1 (maximal readout init, TP4 Prop. 5.5); one b and a = 0 on both uses cannot do
    both, so Table 3 has no solution (TP5 Table 8 caption: only Table 8 allows tying)."""
    with pytest.raises(AbcError, match=r"parameter 'wte'.*table3.*--variant table8"):
        parametrize(analysis(TIED, opt), "table3")


@pytest.mark.parametrize(("opt", "c"), [("adam", Z), ("sgd", -ONE)])
def test_tied_embeddings_solve_under_table8(opt: str, c: Rational) -> None:
    """Table 8 (TP5 p. 23): the readout use carries the 1/fan_in multiplier (a = 1), the
    lookup a = 0, shared b = 0 (init var 1 for both: Table 8's "1" for output weights and
    1/fan_in = 1 for an embedding). LR: Adam c = 0 (Table 8: input 1, output 1); SGD
    c = −1, i.e. LR ∝ n, which is Table 8's input "fan_out" and output "fan_in" at once.
    By hand, SGD: lookup 2·0 + c = g(tok_emb) = −1; readout 2·1 + c = inf(d_model) +
    g(logits) = 1, so c = −1 from either use."""
    p = parametrize(analysis(TIED, opt), "table8")
    wte = p.params["wte"]
    assert wte.a_by_use == {("tok_emb", "wte"): Z, ("logits", "wte"): ONE}
    assert (wte.b, wte.c) == (Z, c)
    assert [u.node for u in wte.uses] == ["tok_emb", "logits"]
    assert graph(TIED).params["wte"].shape == ("vocab", "d_model")
    # every other parameter is as in the untied GPT under Table 8
    untied = abc(GPT, opt, "table8")
    tied = {n: (r.a, r.b, r.c) for n, r in p.params.items()}
    assert {n: v for n, v in tied.items() if n != "wte"} == \
        {n: v for n, v in untied.items() if n not in ("wte", "W_unemb")}
    assert untied["W_unemb"] == (ONE, Z, c)  # the untied readout in Table 8's gauge


def test_tied_embeddings_auto_variant_picks_table8() -> None:
    p, skipped = parametrize_auto(analysis(TIED, "adam"))
    assert p.variant == "table8" and "table3" in skipped and "wte" in skipped["table3"]


# -- convolution: examples/archs/cnn.yaml ----------------------------------------------------

CNN = arch("cnn")


@pytest.mark.parametrize("variant", ["table3", "table8", "table9"])
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_cnn_has_the_mlp_exponents(opt: str, variant: str) -> None:
    """TP5 J.2.1: a conv weight [out, in, kh, kw] is a Θ(1)-sized collection of out × in
    dense weights, so K1 (c_in → c), K2 (c → c) and the readout are the MLP's W1, W2, W3
    (TP5 Eq. 3) and b1, b2 its biases, in every gauge."""
    cnn, mlp = abc(CNN, opt, variant), abc(MLP, opt, variant)
    assert cnn == {"K1": mlp["W1"], "b1": mlp["b1"], "K2": mlp["W2"], "b2": mlp["b2"],
                   "W_out": mlp["W3"]}


def test_cnn_fan_in_includes_the_kernel() -> None:
    g = graph(CNN)
    a = analysis(CNN, "adam")
    k1 = a.invariants[("h1", "K1")]
    k2 = a.invariants[("h2", "K2")]
    assert (k1.role, k1.use.fan_in, k1.use.fan_out) == (Role.INPUT, ("c_in", "kh", "kw"), ("c",))
    assert (k2.role, k2.use.fan_in, k2.use.fan_out) == (Role.HIDDEN, ("c", "kh", "kw"), ("c",))
    assert g.params["K2"].shape == ("c", "c", "kh", "kw")  # PyTorch's [out, in, kh, kw]
    assert g.size(k2.use.fan_in) == 32 * 3 * 3  # fan_in = in·kh·kw as in PyTorch
    assert g.node["h2"].kernel == ("kh", "kw") and g.node["h2"].dims == ("rows", "cols", "c")
    assert to_dict(g)["nodes"][1]["kernel"] == ["kh", "kw"]
    assert a.invariants[("h1", "b1")].use.fan_in == ()
    # s(h) = 0 at init through both convs: −(a+b) + ½·inf(c, kh, kw) + s(x) = −½ + ½ + 0
    assert a.sizes.s0["h1"] == a.sizes.s0["h2"] == Z


def _cnn1d(kernel: list[str], k: dict | None = None) -> GraphBuilder:
    b = GraphBuilder("cnn1d")
    b.dim("pixels", size=64).dim("c_in", size=3).dim("c", base=32).dim("classes", size=10)
    for name, spec in (k or {"k": 5}).items():
        if isinstance(spec, dict):
            b.dim(name, **spec)
        else:
            b.dim(name, size=spec)
    b.node("x", "input", dims=["pixels", "c_in"])
    b.node("h1", "conv", inputs=["x"], kernel=kernel, dims=["pixels", "c"], weight="K1")
    b.node("a1", "relu", inputs=["h1"])
    b.node("h2", "conv", inputs=["a1"], kernel=kernel, dims=["pixels", "c"], weight="K2",
           bias="b2")
    b.node("a2", "relu", inputs=["h2"])
    b.node("f", "linear", inputs=["a2"], dims=["pixels", "classes"], weight="W_out")
    b.node("y", "output", inputs=["f"])
    return b


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_conv1d_with_per_pixel_readout(opt: str) -> None:
    """input [pixels, c_in] → conv → relu → conv → relu → readout c → classes per pixel:
    the MLP's roles and exponents; the kernel dim is part of each conv's fan_in."""
    a = solve(_cnn1d(["k"]).build(), opt)
    p = {n: (r.a, r.b, r.c) for n, r in parametrize(a).params.items()}
    assert p == {"K1": TABLE3[opt][Role.INPUT], "K2": TABLE3[opt][Role.HIDDEN],
                 "b2": TABLE3[opt][Role.INPUT], "W_out": TABLE3[opt][Role.OUTPUT]}
    assert a.invariants[("h1", "K1")].use.fan_in == ("c_in", "k")
    assert a.invariants[("h2", "K2")].use.fan_in == ("c", "k")
    assert a.invariants[("f", "W_out")].use.fan_in == ("c",)


@pytest.mark.parametrize(("kernel", "dims", "message"), [
    (["k"], {"k": {"base": 4}}, "kernel dim 'k' is infinite"),
    ([], None, "a conv needs its finite 'kernel' dims"),
    (["pixels"], None, "kernel dim 'pixels' is a dim of its input"),
    (["k", "k"], None, r"kernel dims \['k', 'k'\] repeat a dim"),
    (["k", "k2"], {"k": 3, "k2": 3}, "slides over 2 spatial dim"),
    (["kk"], None, "unknown dim 'kk'"),
])
def test_conv_bad_kernel(kernel: list[str], dims: dict | None, message: str) -> None:
    with pytest.raises(AbcError, match=message):
        _cnn1d(kernel, dims).build()


def test_conv_kernel_in_output_dims_is_rejected() -> None:
    b = GraphBuilder("c")
    b.dim("p", size=8).dim("k", size=3).dim("c", base=8).dim("o", size=2)
    b.node("x", "input", dims=["p"])
    b.node("h", "conv", inputs=["x"], in_dims=["p"], kernel=["k"], dims=["k", "c"],
           weight="K")
    b.node("y", "output", inputs=["h"])
    with pytest.raises(AbcError, match="kernel dim 'k' is a dim of its output"):
        b.build()


def test_conv_kernel_key_in_yaml() -> None:
    text = (ARCHS / "cnn.yaml").read_text().replace("kernel: [kh, kw]", "kernel: 3", 1)
    with pytest.raises(AbcError, match="'kernel' must be a name or a list of names"):
        parse_builder(text, "cnn.yaml")


# -- output bias (scalar-like): examples/archs/mlp_output_bias.yaml -------------------------

BIAS = arch("mlp_output_bias")


@pytest.mark.parametrize("variant", ["table3", "table8", "table9", "unit"])
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_output_bias_is_scalar_like(opt: str, variant: str) -> None:
    """b3 ∈ R^{d_out}, fan_in 1: no infinite dim, so scalar-like: "hold them constant with
    width" (TP5 B.2); TP4 App. C.1: a = b = 0 for b^{L+1}. Adam: ΔW·1 = n^-(a+c) = Θ(1)
    ⇒ c = 0. SGD: Δb3 = −η n^-c ∂L/∂f = n^(−c + g(f)) with g(f) = 0 ⇒ c = 0. Every gauge
    leaves it alone. The other parameters are those of examples/mlp.yaml."""
    a = analysis(BIAS, opt)
    inv = a.invariants[("f", "b3")]
    assert inv.role is Role.SCALAR and inv.use.fan_in == () and inv.use.fan_out == ("d_out",)
    assert (inv.init, inv.lr) == (Z, Z)
    p = abc(BIAS, opt, variant)
    assert p.pop("b3") == (Z, Z, Z)
    assert p == abc(MLP, opt, variant)


# -- several independent infinite dims: examples/archs/two_widths.yaml ----------------------

TWO = arch("two_widths")


def _tied_ratio() -> Graph:
    text = (ARCHS / "two_widths.yaml").read_text()
    assert "d_ff: {base: 256}" in text
    return parse_builder(text.replace("d_ff: {base: 256}", "d_ff: {times: 4, of: d_model}"),
                         "tied_ratio.yaml").build()


@pytest.mark.parametrize("variant", ["table3", "table8", "table9", "unit"])
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_independent_widths_match_the_tied_ratio(opt: str, variant: str) -> None:
    g = graph(TWO)
    assert g.dims["d_ff"].of is None and g.dims["d_ff"].infinite
    tied = _tied_ratio()
    assert tied.dims["d_ff"].of == "d_model"
    separate = abc(TWO, opt, variant)
    ratio = {n: (r.a, r.b, r.c) for n, r in parametrize(solve(tied, opt), variant).params.items()}
    assert separate == ratio


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_independent_widths_fan_dims(opt: str) -> None:
    """Each hidden weight's fans name its own dim: W_fc d_model → d_ff, W_proj d_ff →
    d_model, so W_proj's rules scale with d_ff and W_fc's with d_model (TP5 J.2.1)."""
    a = analysis(TWO, opt)
    for i in range(2):
        fc = a.invariants[(f"block.{i}.fc", f"block.{i}.W_fc")]
        proj = a.invariants[(f"block.{i}.proj", f"block.{i}.W_proj")]
        assert (fc.use.fan_in, fc.use.fan_out) == (("d_model",), ("d_ff",))
        assert (proj.use.fan_in, proj.use.fan_out) == (("d_ff",), ("d_model",))
        assert fc.role is proj.role is Role.HIDDEN
        assert a.invariants[(f"block.{i}.fc", f"block.{i}.b_fc")].use.fan_out == ("d_ff",)
    p = abc(TWO, opt)
    assert p["block.0.W_fc"] == p["block.0.W_proj"] == TABLE3[opt][Role.HIDDEN]
    assert p["W_in"] == TABLE3[opt][Role.INPUT] and p["W_out"] == TABLE3[opt][Role.OUTPUT]
