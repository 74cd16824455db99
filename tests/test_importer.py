"""Importing a user's own model (issue 14): traced on ``meta`` at two widths, its graph must
give every parameter the exponents of the equivalent hand-written spec in ``examples/``
(table8, Adam and SGD), parameter by parameter through a name map, and record the
constants the model applies (SDPA's default 1/√head_dim has width exponent 1/2 where μP
needs 1, TP5 Def. 4.1).

The hand-written specs are themselves checked against TP5's tables in
tests/test_architectures.py; here they are the reference. All models are tiny (2 layers,
widths 32 and 64) and built on ``meta``: nothing is allocated or downloaded.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from functools import cache
from pathlib import Path

import pytest

from abccalc import AbcError, load_graph
from abccalc.calculus.solver import solve
from abccalc.graph.spec import dump, parse_builder
from abccalc.importer.load import load_model
from abccalc.parametrization.gauges import parametrize

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "models"
ARCHS = ROOT / "examples" / "archs"
OPTIMIZERS = ("adam", "sgd")


@cache
def imported(spec: str, knob: str = "", widths: tuple[int, ...] = (32, 64)):
    return load_model(spec, {knob: widths} if knob else None)


@cache
def exps(path: str, opt: str) -> dict[str, tuple]:
    """(sorted a over uses, b, c) of each parameter under table8."""
    g = load_graph(path) if path.endswith(".yaml") else imported(*json.loads(path)).graph
    p = parametrize(solve(g, opt), "table8")
    return {n: (tuple(sorted(r.a_exp.values())), r.b_exp, r.c_exp) for n, r in p.params.items()}


def assert_same(key: str, reference: str, mapping: list[tuple[str, str | list[str]]]) -> None:
    """Every imported parameter matches ``mapping`` (regex -> reference name(s), ``{i}``
    the layer) and has the reference's exponents; every parameter is mapped."""
    for opt in OPTIMIZERS:
        got, want = exps(key, opt), exps(str(ARCHS / reference)
                                         if "/" not in reference else reference, opt)
        for name, value in got.items():
            hit = next(((re.fullmatch(p, name), t) for p, t in mapping
                        if re.fullmatch(p, name)), None)
            if hit is None:
                pytest.fail(f"{name}: not in the name map")
            m, target = hit
            for t in [target] if isinstance(target, str) else target:
                ref = t.format(i=m.groupdict().get("i", ""))
                assert value == want[ref], (opt, name, ref, value, want[ref])


def sdpa_scores(imp) -> list[str]:
    return [n for n, c in imp.constants.items() if "scaled_dot_product" in c.what]


def assert_sdpa_default(imp) -> None:
    """The default scale 1/√head_dim: values 32^-½·(1, 1/√2) at head_dim 8, 16 → exponent
    ½; μP's contract constant is 1/head_dim, exponent 1 (TP5 Def. 4.1)."""
    scores = sdpa_scores(imp)
    assert scores
    alpha = solve(imp.graph, "adam").alpha
    for n in scores:
        assert imp.constants[n].exponent == Fraction(1, 2)
        assert alpha[n] == 1


def spec_key(spec: str, knob: str = "") -> str:
    return json.dumps([spec, knob])


BLOCK = r"(?:transformer\.)?h\.(?P<i>\d+)\."
GPT_MAP = [
    (r"(transformer\.)?wte\.weight", "wte"), (r"(transformer\.)?wpe\.weight", "wpe"),
    (r"(transformer\.)?ln_f\.weight", "ln_f_g"), (r"(transformer\.)?ln_f\.bias", "ln_f_b"),
    (BLOCK + r"ln_1\.weight", "block.{i}.ln1_g"), (BLOCK + r"ln_1\.bias", "block.{i}.ln1_b"),
    (BLOCK + r"ln_2\.weight", "block.{i}.ln2_g"), (BLOCK + r"ln_2\.bias", "block.{i}.ln2_b"),
    (BLOCK + r"(attn\.)?c_attn\.weight", [f"block.{{i}}.W_{x}" for x in "qkv"]),
    (BLOCK + r"(attn\.)?c_attn\.bias", [f"block.{{i}}.b_{x}" for x in "qkv"]),
    (BLOCK + r"(attn\.)?c_proj\.weight", "block.{i}.W_o"),
    (BLOCK + r"(attn\.)?c_proj\.bias", "block.{i}.b_o"),
    (BLOCK + r"(mlp\.)?c_fc\.weight", "block.{i}.W_fc"),
    (BLOCK + r"(mlp\.)?c_fc\.bias", "block.{i}.b_fc"),
    (BLOCK + r"(mlp\.c_proj|mlp_proj)\.weight", "block.{i}.W_proj"),
    (BLOCK + r"(mlp\.c_proj|mlp_proj)\.bias", "block.{i}.b_proj"),
]


def test_nanogpt_matches_gpt_tied():
    """nanoGPT (fused QKV split three ways, SDPA, lm_head tied to wte) is
    examples/archs/gpt_tied.yaml: c_attn's one weight has W_q's, W_k's and W_v's exponents
    (hidden: Adam (0, ½, 1)), wte both uses of the tied table (a = 0 lookup, 1 readout)."""
    spec = f"{MODELS / 'nanogpt.py'}:gpt"
    imp = imported(spec, "d_model")
    assert "wte.weight" in imp.graph.params and "lm_head.weight" not in imp.graph.params
    assert len(imp.graph.params["wte.weight"].uses) == 2  # tied: one parameter, two uses
    assert_same(spec_key(spec, "d_model"), "gpt_tied.yaml", GPT_MAP)
    assert_sdpa_default(imp)
    assert not imp.unseen


def test_hf_gpt2_matches_gpt_tied(tmp_path):
    """transformers' GPT-2 (Conv1D weights [in, out], gelu_new written out as
    0.5·x·(1 + tanh(…)), tied lm_head) from a tiny config, widths hidden_size ×1, ×2."""
    cfg = tmp_path / "gpt2.json"
    cfg.write_text(json.dumps({"model_type": "gpt2", "n_embd": 32, "n_layer": 2,
                               "n_head": 4, "vocab_size": 64, "n_positions": 16}))
    spec = f"hf:{cfg}"
    imp = imported(spec)
    assert imp.knobs == {"hidden_size": (32, 64)}
    assert_same(spec_key(spec), "gpt_tied.yaml", GPT_MAP)
    assert_sdpa_default(imp)
    gelus = [n for n in imp.graph.nodes if n.op == "gelu"]
    assert len(gelus) == 2, "each block's written-out gelu_new is one elementwise node"


def test_hf_llama_matches_llama(tmp_path):
    """transformers' Llama: RMSNorm written as pow/mean/rsqrt/mul, RoPE, SwiGLU, grouped-
    query attention (2 key heads repeated over groups of 2 query heads); head_dim is a
    config field, scaled with hidden_size and intermediate_size. Head counts are finite,
    so the groups change no exponent: those of examples/archs/llama.yaml."""
    cfg = tmp_path / "llama.json"
    cfg.write_text(json.dumps({
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 86,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8, "vocab_size": 64, "max_position_embeddings": 16}))
    spec = f"hf:{cfg}"
    imp = imported(spec)
    layer = r"model\.layers\.(?P<i>\d+)\."
    assert_same(spec_key(spec), "llama.yaml", [
        (r"model\.embed_tokens\.weight", "wte"), (r"model\.norm\.weight", "norm_f_g"),
        (r"lm_head\.weight", "W_unemb"),
        (layer + r"input_layernorm\.weight", "block.{i}.norm1_g"),
        (layer + r"post_attention_layernorm\.weight", "block.{i}.norm2_g"),
        *((layer + rf"self_attn\.{x}_proj\.weight", f"block.{{i}}.W_{x}") for x in "qkvo"),
        *((layer + rf"mlp\.{x}_proj\.weight", f"block.{{i}}.W_{x}")
          for x in ("gate", "up", "down")),
    ])
    assert sum(n.op == "rmsnorm" for n in imp.graph.nodes) == 5  # 2 per layer + final
    scores = imp.graph.node["model.layers.0.self_attn.scores"]
    assert {"n_kv_head", "n_group"} <= set(scores.dims)
    assert {imp.graph.dims[d].size for d in ("n_kv_head", "n_group")} == {2}
    assert_sdpa_default(imp)


def test_hf_bert_matches_gpt_roles(tmp_path):
    """transformers' BERT for masked LM (post-LN, token-type and position tables, decoder
    tied to the word embeddings, a decoder bias): each weight has the exponents of the
    GPT weight of its role, and the decoder bias those of a readout bias (scalar-like,
    examples/archs/mlp_output_bias.yaml's b3)."""
    cfg = tmp_path / "bert.json"
    cfg.write_text(json.dumps({
        "model_type": "bert", "hidden_size": 32, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 64,
        "max_position_embeddings": 16, "type_vocab_size": 2}))
    spec = f"hf:{cfg}"
    imp = imported(spec)
    emb, layer = r"bert\.embeddings\.", r"bert\.encoder\.layer\.(?P<i>\d+)\."
    gpt = str(ROOT / "examples" / "archs" / "gpt_tied.yaml")
    assert_same(spec_key(spec), gpt, [
        (emb + "word_embeddings.weight", "wte"),
        (emb + r"(position|token_type)_embeddings\.weight", "wpe"),
        (emb + r"LayerNorm\.weight", "ln_f_g"), (emb + r"LayerNorm\.bias", "ln_f_b"),
        *((layer + rf"attention\.self\.{n}\.weight", f"block.{{i}}.W_{x}")
          for n, x in (("query", "q"), ("key", "k"), ("value", "v"))),
        *((layer + rf"attention\.self\.{n}\.bias", f"block.{{i}}.b_{x}")
          for n, x in (("query", "q"), ("key", "k"), ("value", "v"))),
        (layer + r"attention\.output\.dense\.weight", "block.{i}.W_o"),
        (layer + r"attention\.output\.dense\.bias", "block.{i}.b_o"),
        (layer + r"(attention\.)?output\.LayerNorm\.weight", "block.{i}.ln1_g"),
        (layer + r"(attention\.)?output\.LayerNorm\.bias", "block.{i}.ln1_b"),
        (layer + r"intermediate\.dense\.weight", "block.{i}.W_fc"),
        (layer + r"intermediate\.dense\.bias", "block.{i}.b_fc"),
        (layer + r"output\.dense\.weight", "block.{i}.W_proj"),
        (layer + r"output\.dense\.bias", "block.{i}.b_proj"),
        (r"cls\.predictions\.transform\.dense\.weight", "block.0.W_o"),
        (r"cls\.predictions\.transform\.dense\.bias", "block.0.b_o"),
        (r"cls\.predictions\.transform\.LayerNorm\.weight", "ln_f_g"),
        (r"cls\.predictions\.transform\.LayerNorm\.bias", "ln_f_b"),
        (r"cls\.predictions\.bias", []),  # checked against b3 below
    ])
    bias = exps(str(ARCHS / "mlp_output_bias.yaml"), "adam")["b3"]
    assert exps(spec_key(spec), "adam")["cls.predictions.bias"] == bias
    assert_sdpa_default(imp)


def test_cnn_matches_cnn():
    """Two padding-1 3×3 convs and a readout of the flattened map: examples/archs/cnn.yaml
    (K1 input, K2 hidden, the readout an output weight)."""
    spec = f"{MODELS / 'vision.py'}:cnn"
    imp = imported(spec, "c")
    assert [n.op for n in imp.graph.nodes if n.weight] == ["conv", "conv", "linear"]
    assert_same(spec_key(spec, "c"), "cnn.yaml", [
        (r"conv1\.weight", "K1"), (r"conv1\.bias", "b1"), (r"conv2\.weight", "K2"),
        (r"conv2\.bias", "b2"), (r"head\.weight", "W_out")])


def test_vit_matches_vit():
    """A ViT: patchify conv (kernel = stride 14 → a linear over [c_in, kh, kw]), CLS token
    concatenated, learned positions, fused QKV unbound, CLS read by select:
    examples/archs/vit.yaml (the CLS token and positions input-like params)."""
    spec = f"{MODELS / 'vision.py'}:vit"
    imp = imported(spec, "d_model")
    blk = r"blocks\.(?P<i>\d+)\."
    assert_same(spec_key(spec, "d_model"), "vit.yaml", [
        (r"cls_token", "cls_token"), (r"pos", "pos_table"), (r"patch\.weight", "W_patch"),
        (r"patch\.bias", "b_patch"), (r"norm\.weight", "ln_f_g"), (r"norm\.bias", "ln_f_b"),
        (r"head\.weight", "W_head"), (r"head\.bias", "b_head"),
        (blk + r"norm1\.weight", "block.{i}.ln1_g"), (blk + r"norm1\.bias", "block.{i}.ln1_b"),
        (blk + r"norm2\.weight", "block.{i}.ln2_g"), (blk + r"norm2\.bias", "block.{i}.ln2_b"),
        (blk + r"attn\.qkv\.weight", [f"block.{{i}}.W_{x}" for x in "qkv"]),
        (blk + r"attn\.qkv\.bias", [f"block.{{i}}.b_{x}" for x in "qkv"]),
        (blk + r"attn\.proj\.weight", "block.{i}.W_o"),
        (blk + r"attn\.proj\.bias", "block.{i}.b_o"),
        (blk + r"fc1\.weight", "block.{i}.W_fc"), (blk + r"fc1\.bias", "block.{i}.b_fc"),
        (blk + r"fc2\.weight", "block.{i}.W_proj"), (blk + r"fc2\.bias", "block.{i}.b_proj"),
    ])
    assert_sdpa_default(imp)


def test_imported_graph_round_trips():
    """The imported graph written as YAML reads back to the same graph."""
    g = imported(f"{MODELS / 'nanogpt.py'}:gpt", "d_model").graph
    again = parse_builder(dump(g), "again.yaml").build()
    assert again == g
    assert dump(again) == dump(g)


def test_dims_named_from_knobs():
    """Infinite dims in the knobs: d_model, 3·d_model (fused QKV), 4·d_model (MLP),
    d_model/4 (head_dim, 4 heads); finite ones by role."""
    g = imported(f"{MODELS / 'nanogpt.py'}:gpt", "d_model").graph
    inf = {d.name: (d.of, d.times) for d in g.dims.values() if d.infinite}
    assert inf["d_model"] == (None, None) and g.dims["d_model"].size == 32
    assert inf["d_model_x3"] == ("d_model", 3) and inf["d_model_x4"] == ("d_model", 4)
    assert inf["d_model_div4"] == ("d_model", Fraction(1, 4))
    assert {d.name: d.size for d in g.dims.values() if not d.infinite} == {
        "ctx": 8, "ctx_k": 8, "vocab": 256, "wpe_vocab": 64, "n_head": 4}


def test_recorded_multipliers():
    """``out(h) / (width/32)``: values 1, ½ at widths 32, 64, so value ∝ n^-1 (exponent 1,
    a μP readout multiplier); the fixed ``relu(·)·0.5`` is part of the elementwise φ."""
    imp = imported(f"{MODELS / 'misc.py'}:mu_readout", "width")
    (c,) = imp.constants.values()
    assert c.values == (1.0, 0.5) and c.exponent == 1
    assert imp.graph.node[c.node].op == "scale" and c.source.startswith("misc.py:")
    assert not imp.unseen


def test_unseen_ops_are_listed():
    """An op outside the calculus is listed with its module and source line, not dropped."""
    imp = imported(f"{MODELS / 'misc.py'}:cumulative", "width")
    (u,) = imp.unseen
    assert u.op == "cumsum" and "outside the calculus" in u.reason and "misc.py:" in u.reason


def test_width_dependent_control_flow_is_refused():
    with pytest.raises(AbcError, match="different ops at different widths"):
        load_model(f"{MODELS / 'misc.py'}:branchy", {"width": (32, 64)})


@pytest.mark.parametrize(("spec", "widths", "message"), [
    ("model.yaml", {}, "expected file.py:factory"),
    ("nope.py:make", {"w": (1, 2)}, "nope.py: no such file"),
    ("tests/models/misc.py:make-it", {}, "is not a Python name"),
    ("tests/models/misc.py:nothing", {"width": (32, 64)}, "has no function 'nothing'"),
    ("tests/models/misc.py:branchy", {}, "give the width knobs with --width"),
    ("tests/models/misc.py:branchy", {"depth": (1, 2)}, "takes no argument 'depth'"),
    ("tests/models/misc.py:branchy", {"width": (32, 32)}, "at least two values"),
    ("hf:no such", {}, "hf: takes a config.json path or a model type"),
])
def test_bad_model_specs(spec, widths, message):
    """A bad MODEL or knob is one clean AbcError naming it, before anything runs."""
    with pytest.raises(AbcError, match=re.escape(message)):
        load_model(spec, widths)


@pytest.mark.parametrize(("flag", "message"), [
    ("--width=w", "expected NAME=B1,B2[,B3]"),
    ("--width=w=1,x", "values must be integers"),
    ("--width=w=1,2,3,4", "give 1 to 3 integers"),
    ("--width=fan_in=1,2", "'fan_in' is reserved in params-file rules"),
])
def test_bad_width_flags(run, flag, message):
    code, _, err = run("import", f"{MODELS / 'misc.py'}:branchy", flag)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_import_writes_yaml_that_every_command_reads(run, tmp_path):
    """``abccalc import -o`` writes YAML that ``table`` reads; ``table MODEL --width`` gives
    the same table as the written file."""
    out = tmp_path / "g.yaml"
    spec = f"{MODELS / 'nanogpt.py'}:gpt"
    code, _, err = run("import", spec, "--width", "d_model=32,64", "-o", str(out))
    assert code == 0, err
    assert "28 parameters" in err and "4 constants recorded" in err
    code, from_file, _ = run("table", str(out))
    assert code == 0
    code, from_model, err = run("table", spec, "--width", "d_model=32,64")
    assert code == 0, err
    assert from_model == from_file
    code, _, err = run("table", str(out), "--width", "d_model=1,2")
    assert code == 2 and "apply to a MODEL" in err


def test_module_names_made_node_names():
    """Node names follow module paths, made names where a segment is reserved
    (docs/spec.md §1.1); parameter names stay the state_dict's, so one that is not a name
    is a clean error naming it."""
    imp = imported(f"{MODELS / 'misc.py'}:reserved", "width")
    assert {n.name for n in imp.graph.nodes} == {
        "type_m", "layers.in_proj", "relu", "values_m", "output"}
    assert set(imp.graph.params) == {"layers.in_proj.weight", "layers.in_proj.bias",
                                     "values.weight", "values.bias"}
    with pytest.raises(AbcError, match=r"'layers\.in-proj\.weight' is not a name"):
        load_model(f"{MODELS / 'misc.py'}:hyphen", {"width": (32, 64)})


def test_written_out_attention():
    """q·kᵀ·(1/√d_head) without SDPA: the contraction gets its own key dim (ctx → ctx_k)
    and the model's factor recorded on it, 32^-½·(1, 1/√2) at d_head 8, 16 → exponent ½;
    μP's is 1 (TP5 Def. 4.1); probs·v carries none (its sum is over the finite keys)."""
    imp = imported(f"{MODELS / 'misc.py'}:manual_attention", "d_model")
    g = imp.graph
    scores, mix = (n for n in g.nodes if n.op == "contract")
    assert scores.rename == (("ctx", "ctx_k"),) and "ctx_k" in scores.dims
    assert imp.constants[scores.name].exponent == Fraction(1, 2)
    assert imp.constants[mix.name].exponent == 0
    assert solve(g, "adam").alpha == {scores.name: 1, mix.name: 0}
    assert not [n for n in g.nodes if n.op == "scale"] and not imp.unseen


def test_torch_multihead_attention():
    """nn.MultiheadAttention calls SDPA from inside its own torch function: still one SDPA
    (scale exponent ½, μP's 1), and its packed in_proj_weight [3·d, d] is a hidden weight
    (Adam (0, ½, 1) in table8, as examples/gpt.yaml's W_q)."""
    imp = imported(f"{MODELS / 'misc.py'}:torch_encoder", "d_model")
    assert_sdpa_default(imp)
    assert not [n for n in imp.graph.nodes if n.op == "scale"] and not imp.unseen
    want = exps(str(ROOT / "examples" / "gpt.yaml"), "adam")["block.0.W_q"]
    got = exps(spec_key(f"{MODELS / 'misc.py'}:torch_encoder", "d_model"), "adam")
    assert got["enc.self_attn.in_proj_weight"] == want


def test_custom_autograd_function_is_listed():
    """A custom autograd.Function's forward is traced, but its backward is not seen: it is
    listed with its class and source line (and its round, outside the calculus, too)."""
    imp = imported(f"{MODELS / 'misc.py'}:quantized", "width")
    ops = {u.op: u.reason for u in imp.unseen}
    assert "backward" in ops["autograd.Function RoundSTE"]
    assert "misc.py:" in ops["autograd.Function RoundSTE"] and "round" in ops
