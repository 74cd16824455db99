"""The new ops (reduce, concat, slice, param, attention) and the ViT / MLP-Mixer examples.

Every expected exponent is derived by hand from the size rules (docs/spec.md §4.1;
/work reference: TP5 Table 3 and Table 8, TP4 §5): the tests build small graphs, solve
them, and compare; the generated Model is built at two widths and run once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from test_generated_safety import load

from abccalc import load_graph, parametrize, solve
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.emit.explain import explain
from abccalc.errors import AbcError
from abccalc.graph.core import Graph, Role
from abccalc.graph.spec import parse_builder
from abccalc.parametrization.presets import sp_abc

ROOT = Path(__file__).resolve().parent.parent
H = Fraction(1, 2)


def build(text: str) -> Graph:
    return parse_builder(text, "<test>").build()


def abc(g: Graph, optimizer: str, variant: str = "table3") -> dict[str, tuple]:
    """(a at the first use, b, c) per parameter."""
    p = parametrize(solve(g, optimizer), variant)
    return {name: (r.a, r.b, r.c) for name, r in p.params.items()}


# -- param: a learned tensor with no input -------------------------------------------------

CLS = """
dims: {patch_in: 6, patch: 3, cls: 1, tok: 4, classes: 2, d: {base: 16}}
nodes:
  - {name: x, op: input, dims: [patch, patch_in]}
  - {name: e, op: linear, inputs: x, dims: [patch, d], weight: W_in}
  - {name: c, op: param, dims: [cls, d], weight: cls_token}
  - {name: t, op: concat, inputs: [c, e], along: tok, dims: [tok, d]}
  - {name: pos, op: param, dims: [tok, d], weight: pos_table}
  - {name: h, op: add, inputs: [t, pos]}
  - {name: r, op: relu, inputs: h}
  - {name: f, op: slice, inputs: r, along: tok, parts: [cls, patch]}
  - {name: y, op: linear, inputs: f, dims: [cls, classes], weight: W_out}
  - {name: out, op: output, inputs: y}
"""


@pytest.mark.parametrize("variant", ["table3", "table8"])
def test_param_is_an_input_like_weight(variant: str) -> None:
    """A CLS token or position table is read from the constant 1 (TP5 B.1): its entries
    are the activation, so Θ(1) needs a + b = 0; Adam's ΔW has Θ(n^-(a+c)) entries, Θ(1)
    when a + c = 0; SGD's ΔW entries are n^-(2a+c)·g with g = −1 (the gradient of a
    hidden activation under μP), Θ(1) when 2a + c = −1. In both gauges a = 0 for an input
    weight (TP5 Tables 3 and 8), so (0, 0, 0) with Adam and (0, 0, −1) with SGD, the
    input weight W_in's exponents."""
    g = build(CLS)
    adam, sgd = abc(g, "adam", variant), abc(g, "sgd", variant)
    for p in ("cls_token", "pos_table"):
        assert adam[p] == (0, 0, 0) == adam["W_in"]
        assert sgd[p] == (0, 0, -1) == sgd["W_in"]
    assert adam["W_out"] == ((0, 1, 1) if variant == "table3" else (1, 0, 0))
    a = solve(g, "adam")
    assert {a.invariants[("c", "cls_token")].role, a.invariants[("pos", "pos_table")].role} \
        == {Role.INPUT}
    assert g.params["cls_token"].shape == ("cls", "d")


def test_param_of_finite_dims_is_scalar_like() -> None:
    """A learned [classes] vector added to the logits has no infinite dim: scalar-like
    (TP5 B.2), (0, 0, 0) under both optimizers, as an output bias."""
    g = build("""
dims: {d_in: 3, classes: 2, d: {base: 8}}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h, op: linear, inputs: x, dims: [d], weight: W_in}
  - {name: y, op: linear, inputs: h, dims: [classes], weight: W_out}
  - {name: p, op: param, dims: [classes], weight: offset}
  - {name: z, op: add, inputs: [y, p]}
  - {name: out, op: output, inputs: z}
""")
    assert solve(g, "adam").invariants[("p", "offset")].role is Role.SCALAR
    assert abc(g, "adam")["offset"] == (0, 0, 0) == abc(g, "sgd")["offset"]


# -- reduce ------------------------------------------------------------------------------

POOL = """
dims: {d_in: 3, tok: 2, d: {base: 16}}
nodes:
  - {name: x, op: input, dims: [tok, d_in]}
  - {name: h1, op: linear, inputs: x, dims: [tok, d], weight: W1}
  - {name: r1, op: relu, inputs: h1}
  - {name: h2, op: linear, inputs: r1, dims: [tok, d], weight: W2}
  - {name: r2, op: relu, inputs: h2}
  - {name: m, op: reduce, inputs: r2, over: d, MODE}
  - {name: out, op: output, inputs: m}
"""


@pytest.mark.parametrize("mode", ["mode: mean", "mode: sum"])
def test_reduce_over_an_infinite_dim(mode: str) -> None:
    """mean_d(r2) is Θ(1) (an average of Θ(1) coordinates) and sends each coordinate
    1/n of the gradient: g(r2) = g(m) − 1 = −1, as a μP readout does. Then W2 (hidden):
    Adam b = ½, c = 1; SGD 2a + c = g + st(x) + inf(fan_in) = −1 + 0 + 1 = 0. W1 (input):
    g(r1) = −(a+b) + ½ + g(h2) = −1, so SGD 2a + c = −1. A sum carries a constant n^-α
    that the solver derives like a contract's: the n correlated terms sum to n (LLN), so
    α = st(r2) + 1 = 1 (SP's plain sum has α = 0); with it the exponents are the mean's."""
    g = build(POOL.replace("MODE", mode))
    assert abc(g, "adam") == {"W1": (0, 0, 0), "W2": (0, H, 1)}
    assert abc(g, "sgd") == {"W1": (0, 0, -1), "W2": (0, H, 0)}
    a = solve(g, "sgd")
    assert a.sizes.g["r2"] == -1 and a.sizes.g["r1"] == -1
    if mode == "mode: sum":
        assert a.alpha == {"m": 1}
        assert a.sizes.s0["m"] == -H  # n^-1 · n^½ (CLT) at init; Θ(1) once trained
        assert sp_abc(g, a.optimizer).alpha == {"m": 0}
        assert "sum over 1 infinite dim" in explain(parametrize(a, "table3"), "m")
    else:
        assert a.alpha == {} and a.sizes.s0["m"] == 0


def test_reduce_over_a_finite_dim_changes_no_exponent() -> None:
    """Mean over the finite tok before a readout: the readout W_out is an output weight,
    Adam (0, 1, 1), SGD (0, 1, 1) in Table 3 (g(y) = 0, x Θ(1), one infinite fan_in)."""
    g = build("""
dims: {d_in: 3, tok: 4, classes: 2, d: {base: 16}}
nodes:
  - {name: x, op: input, dims: [tok, d_in]}
  - {name: h, op: linear, inputs: x, dims: [tok, d], weight: W_in}
  - {name: p, op: reduce, inputs: h, over: tok}
  - {name: y, op: linear, inputs: p, dims: [classes], weight: W_out}
  - {name: out, op: output, inputs: y}
""")
    assert g.node["p"].dims == ("d",) and g.node["p"].mode == "mean"
    assert abc(g, "adam") == {"W_in": (0, 0, 0), "W_out": (0, 1, 1)}
    assert abc(g, "sgd") == {"W_in": (0, 0, -1), "W_out": (0, 1, 1)}


# -- concat and slice ----------------------------------------------------------------------

def test_concat_along_an_infinite_dim() -> None:
    """Two input-weight branches joined into one wider vector (8 + 8 = 16 at base): the
    coordinates are the branches', so sizes are their max; each branch's weight stays an
    input weight and the readout an output weight."""
    g = build("""
dims: {d_in: 3, classes: 2, a: {base: 8}, b: {base: 8}, c: {base: 16}}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: u, op: linear, inputs: x, dims: [a], weight: Wa}
  - {name: v, op: linear, inputs: x, dims: [b], weight: Wb}
  - {name: w, op: concat, inputs: [u, v], along: c, dims: [c]}
  - {name: y, op: linear, inputs: w, dims: [classes], weight: W_out}
  - {name: out, op: output, inputs: y}
""")
    assert abc(g, "adam") == {"Wa": (0, 0, 0), "Wb": (0, 0, 0), "W_out": (0, 1, 1)}
    assert abc(g, "sgd") == {"Wa": (0, 0, -1), "Wb": (0, 0, -1), "W_out": (0, 1, 1)}


def test_concat_and_slice_check_sizes() -> None:
    """The parts along the joined or cut dim must add up to its size (1 + 3 = 4 here)."""
    with pytest.raises(AbcError, match=r"node 't': .*add up to 4, but 'tok' has size 5"):
        build(CLS.replace("tok: 4", "tok: 5"))
    with pytest.raises(AbcError, match=r"node 'f': .*add up to 3, but 'tok' has size 4"):
        build(CLS.replace("parts: [cls, patch]", "parts: [cls, cls, cls]"))
    with pytest.raises(AbcError, match="index 2 is not a part"):
        build(CLS.replace("parts: [cls, patch]", "parts: [cls, patch], index: 2"))
    with pytest.raises(AbcError, match="mode 'max' is not one of mean, sum"):
        build(POOL.replace("MODE", "mode: max"))


GPT = (ROOT / "examples" / "gpt.yaml").read_text(encoding="utf-8")


def gpt_with(replaced: tuple[str, ...], new: list[str], extra_dim: str = "") -> str:
    """examples/gpt.yaml with the block nodes named ``replaced`` swapped for ``new``."""
    out = []
    for line in GPT.splitlines():
        name = line.strip().removeprefix("- {name: ").split(",")[0]
        if line.startswith("      - {name: ") and name in replaced:
            if name == replaced[0]:
                out += [f"      - {{{n}}}" for n in new]
            continue
        out.append(line)
        if extra_dim and line.startswith("  d_ff:"):
            out.append(f"  {extra_dim}")
    return "\n".join(out) + "\n"


THIRDS = "along: d_qkv, parts: [d_head, d_head, d_head]"
FUSED = gpt_with(("q", "k", "v"), [
    "name: qkv, op: linear, inputs: ln1, dims: [ctx, n_head, d_qkv], weight: W_qkv, "
    "bias: b_qkv",
    *(f"name: {x}, op: slice, inputs: qkv, {THIRDS}, index: {i}" for i, x in enumerate("qkv"))],
    "d_qkv: {times: 3, of: d_head}")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("variant", ["table3", "table8"])
def test_fused_qkv_split_by_slice(optimizer: str, variant: str) -> None:
    """A fused QKV projection d_model → n_head × 3·d_head cut by three slices: W_qkv is a
    hidden weight (Adam (0, ½, 1), SGD (0, ½, 0) in Table 3), exactly W_q's exponents in
    examples/gpt.yaml; every other parameter and constant is unchanged."""
    fused = build(FUSED)
    assert "W_qkv" in fused.params["block.0.W_qkv"].name
    ref = abc(load_graph(ROOT / "examples" / "gpt.yaml"), optimizer, variant)
    got = abc(fused, optimizer, variant)
    for i in range(2):
        w, b = f"block.{i}.W_qkv", f"block.{i}.b_qkv"
        assert got.pop(w) == ref.pop(f"block.{i}.W_q") == ref.pop(f"block.{i}.W_k") \
            == ref.pop(f"block.{i}.W_v")
        assert got.pop(b) == ref.pop(f"block.{i}.b_q") == ref.pop(f"block.{i}.b_k") \
            == ref.pop(f"block.{i}.b_v")
    assert got == ref
    if variant == "table3":
        assert abc(fused, optimizer)["block.0.W_qkv"] == ((0, H, 1) if optimizer == "adam"
                                                         else (0, H, 0))
    assert solve(fused, optimizer).alpha == solve(
        load_graph(ROOT / "examples" / "gpt.yaml"), optimizer).alpha


# -- attention -----------------------------------------------------------------------------

COMPOSITE = gpt_with(("q", "k", "v", "scores", "probs", "att", "o"), [
    "name: o, op: attention, inputs: ln1, heads: [n_head, d_head], causal: ctx, weight: W, "
    "bias: b"]).replace("  ctx_k: 64\n", "")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("variant", ["table3", "table8"])
def test_attention_composite_equals_op_by_op(optimizer: str, variant: str) -> None:
    """The composite expands to gpt.yaml's six nodes (W → W_q, W_k, W_v, W_o; b → b_*),
    so every parameter gets the same (a, b, c) and every constant the same exponent:
    the score constant is 1/d_head (α = st(q) + st(k) + 1 = 1, TP5 Def. 4.1) and the
    value contraction's Θ(1) (a sum over the finite keys)."""
    ref_g, got_g = load_graph(ROOT / "examples" / "gpt.yaml"), build(COMPOSITE)
    assert abc(got_g, optimizer, variant) == abc(ref_g, optimizer, variant)
    ref, got = solve(ref_g, optimizer), solve(got_g, optimizer)
    rename = {"scores": "o.scores", "att": "o.mix"}
    assert got.alpha == {k.replace(k.rsplit(".", 1)[1], rename[k.rsplit(".", 1)[1]]): v
                         for k, v in ref.alpha.items()}
    assert got.alpha["block.0.o.scores"] == 1 and got.alpha["block.0.o.mix"] == 0
    probs = got_g.node["block.1.o.probs"]
    assert probs.causal == ("ctx", "ctx_k") and got_g.dims["ctx_k"].size == 64


def test_attention_expansion_is_visible_and_follows_set() -> None:
    """The parts are ordinary nodes (<node>.q … <node>.mix, the output projection keeps
    the node's name): explain and the table's constants name them; the key dim follows
    --set ctx=32."""
    g = parse_builder(COMPOSITE, "<test>").set("ctx", 32).build()
    assert g.dims["ctx_k"].size == 32
    parts = [n.name for n in g.nodes if n.name.startswith("block.0.o")]
    assert parts == [f"block.0.o.{p}" for p in ("q", "k", "v", "scores", "probs", "mix")] \
        + ["block.0.o"]
    p = parametrize(solve(g, "adam"), "table3")
    assert "block.0.o.scores" in explain(p, "block.0.o.scores")
    assert "block.0.o.scores" in p.constants


def test_attention_checks() -> None:
    with pytest.raises(AbcError, match="needs 'heads'"):
        build(COMPOSITE.replace("heads: [n_head, d_head]", "heads: [n_head]"))
    with pytest.raises(AbcError, match="causal names its sequence dim"):
        build(COMPOSITE.replace("causal: ctx", "causal: n_head"))
    with pytest.raises(AbcError, match=r"'ctx_k' .* must be finite with the size of 'ctx'"):
        build(COMPOSITE.replace("  ctx: 64\n", "  ctx: 64\n  ctx_k: 32\n"))


# -- the examples and their generated Models -------------------------------------------

def test_vit_exponents() -> None:
    """examples/archs/vit.yaml: the CLS token and the position table are input-like
    (0, 0, 0), the attention weights hidden (0, ½, 1), the classifier an output weight
    (0, 1, 1), its bias scalar-like; the score constant 1/d_head (Adam, Table 3)."""
    g = load_graph(ROOT / "examples" / "archs" / "vit.yaml")
    got = abc(g, "adam")
    assert got["cls_token"] == got["pos_table"] == (0, 0, 0)
    assert got["block.1.W_q"] == got["block.1.W_o"] == (0, H, 1)
    assert got["W_head"] == (0, 1, 1) and got["b_head"] == (0, 0, 0)
    assert solve(g, "adam").alpha["block.0.attn.scores"] == 1
    assert not g.node["block.0.attn.probs"].causal


def test_mixer_exponents() -> None:
    """examples/archs/mixer.yaml: token-mixing weights map finite dims (patch ↔ tok_hidden)
    and are scalar-like, (0, 0, 0) under Adam and SGD (TP5 B.2: their gradient sums over
    the n channels, LLN once trained); channel-mixing weights are hidden."""
    g = load_graph(ROOT / "examples" / "archs" / "mixer.yaml")
    adam, sgd = abc(g, "adam"), abc(g, "sgd")
    assert adam["block.0.W_tok1"] == sgd["block.0.W_tok1"] == (0, 0, 0)
    assert adam["block.0.W_ch1"] == (0, H, 1) and sgd["block.0.W_ch1"] == (0, H, 0)
    assert adam["W_head"] == (0, 1, 1) == sgd["W_head"]


MODELS = [
    ("examples/archs/vit.yaml", {"patches": (4, 196)}, (1, 10)),
    ("examples/archs/mixer.yaml", {"patches": (16, 48)}, (10,)),
    (POOL.replace("MODE", "mode: sum"), {"x": (2, 3)}, (2,)),
    (CLS, {"x": (3, 6)}, (1, 2)),
    (FUSED, None, (64, 256)),
]


@pytest.mark.parametrize(("spec", "shapes", "out"), MODELS, ids=[
    "vit", "mixer", "reduce_sum", "cls_concat_slice", "fused_qkv"])
def test_generated_model_runs_at_two_widths(spec: str, shapes: dict | None, out: tuple,
                                            tmp_path: Path) -> None:
    """generate(..., model=True) builds at the base width and at twice it; one forward
    gives the output's shape; the Model applies the reduce-sum constant."""
    torch = pytest.importorskip("torch")
    g = load_graph(ROOT / spec) if spec.endswith(".yaml") else build(spec)
    gen = load(generate(load_parametrization(g, "adam", "table8"), model=True), tmp_path,
               f"gen_{g.name}_{abs(hash(spec)) % 10**6}")
    gen_widths = [{}, {d.name: 2 * d.size for d in g.dims.values()
                       if d.infinite and d.of is None}]
    torch.manual_seed(0)
    for widths in gen_widths:
        model = gen.Model(widths)
        gen.init_(model)
        if shapes is None:
            inputs = {"tokens": torch.randint(0, 256, (2, 64)),
                      "positions": torch.arange(64).repeat(2, 1)}
        else:
            inputs = {name: torch.randn(2, *shapes[name]) for name in gen.INPUTS}
        acts: dict = {}
        y = model(**inputs, capture=acts)
        assert tuple(y.shape) == (2, *out)
        assert torch.isfinite(y).all()
        for n in g.nodes:
            assert tuple(acts[n.name].shape[1:]) == tuple(model.sizes[d] for d in n.dims)


def test_generated_model_computes_the_ops(tmp_path: Path) -> None:
    """The Model's concat puts the CLS token first, slice index 0 takes it back, a param
    is the same for every example, and mean pooling is the mean."""
    torch = pytest.importorskip("torch")
    g = build(CLS.replace("{name: f, op: slice", "{name: m, op: reduce, inputs: r, over: d}\n"
                          "  - {name: f, op: slice"))
    gen = load(generate(load_parametrization(g, "adam", "table8"), model=True), tmp_path,
               "gen_ops")
    model = gen.Model({"d": 32})
    gen.init_(model)
    acts: dict = {}
    model(torch.randn(2, 3, 6), capture=acts)
    assert torch.equal(acts["c"][0], acts["c"][1])
    assert torch.equal(acts["t"][:, 0:1], acts["c"]) and torch.equal(acts["t"][:, 1:], acts["e"])
    assert torch.equal(acts["f"], acts["r"][:, 0:1])
    assert torch.allclose(acts["m"], acts["r"].mean(-1))
