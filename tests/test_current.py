"""``check`` on a live model's own parametrization (issue 14 point 4): init exponents measured
from the model, multipliers from the recorded constants, LRs from an optimizer factory or a
file of LR scales; the report in the model's own names.

The models are in tests/nanogpt_models.py, imported through the tracer (``load_model``) as a
user's would be: the graph's names are their state_dict names."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

import nanogpt_models as nm  # noqa: E402

from abccalc.calculus.sizes import key  # noqa: E402
from abccalc.errors import AbcError  # noqa: E402
from abccalc.importer.load import load_model  # noqa: E402
from abccalc.verify.current import current  # noqa: E402
from abccalc.verify.learning_rates import read_lr_scales  # noqa: E402
from abccalc.verify.model_report import (  # noqa: E402
    check_model,
    collapse,
    render_model_markdown,
)

HALF = Fraction(1, 2)
HIDDEN = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@pytest.fixture(scope="module")
def sp_gpt():
    """nanoGPT as written: GPT-2 init (std 0.02), default SDPA scale, global LR."""
    return check_model(nm.traced("GPT"), "adam")


@pytest.fixture(scope="module")
def mup_gpt():
    """The same GPT written with microsoft/mup and trained with MuAdam."""
    return check_model(nm.traced("mup_gpt"), "adam", factory=nm.mup_adam,
                       factory_name="tests:mup_adam")


def test_pytorch_default_init_exponents():
    # nn.Linear: U(±1/sqrt(fan_in)) for weight and bias, variance 1/(3 fan_in), so
    # rms ∝ fan_in^-1/2: b = 1/2 when fan_in is the width (fc2, out), 0 when it is the
    # finite d_in (fc1). out.bias has finite shape [d_out] but fan_in = width: b = 1/2.
    cur = current(nm.traced("MLP", "width"), "adam")
    b = {p: r.b for p, r in cur.init.items()}
    assert b == {"fc1.weight": 0, "fc1.bias": 0, "fc2.weight": HALF, "fc2.bias": HALF,
                 "out.weight": HALF, "out.bias": HALF}
    assert all(r.kind == "random" for r in cur.init.values())
    assert abs(cur.init["fc2.weight"].slope + 0.5) < 0.05  # a measured slope, not rounded


def test_embedding_and_layernorm_init():
    # PyTorch defaults on the GPT: nn.Embedding N(0, 1) (wpe): b = 0; LayerNorm weight 1:
    # a constant, Θ(1), b = 0; LayerNorm bias 0: zeros, which satisfy every init rule, so
    # b is μP's a+b less a = 0 for a bias (TP5 App. B). lm_head (tied to wte) keeps
    # nn.Linear's variance 1/(3 n_embd): b = 1/2.
    cur = current(nm.traced("torch_gpt"), "adam")
    init = cur.init
    assert (init["transformer.wpe.weight"].kind, init["transformer.wpe.weight"].b) == \
        ("random", 0)
    assert (init["transformer.ln_f.weight"].kind, init["transformer.ln_f.weight"].b) == \
        ("constant", 0)
    assert (init["transformer.ln_f.bias"].kind, init["transformer.ln_f.bias"].b) == ("zeros", 0)
    assert init["transformer.wte.weight"].b == HALF
    assert cur.aliases == {"transformer.wte.weight": ("lm_head.weight",)}


def test_gpt2_init_is_width_independent(sp_gpt):
    # GPT-2 / nanoGPT: N(0, 0.02²) everywhere (c_proj 0.02/sqrt(2 n_layer)): b = 0 on
    # every tensor that is not zero.
    init = sp_gpt.current.init
    assert {r.b for r in init.values() if r.kind != "zeros"} == {0}
    assert abs(init["transformer.h.0.mlp.c_fc.weight"].rms[0] - 0.02) < 0.001


def test_sp_gpt_flags_sdpa_scale_and_readout(sp_gpt):
    assert not sp_gpt.ok
    res = sp_gpt.result
    # SDPA's default 1/sqrt(head_dim): α = 1/2 where μP needs 1 (TP5 Def. 4.1)
    assert {(k.name, k.exponent, k.mup_exponent) for k in res.constants} == {
        (f"transformer.h.{i}.attn.scores", HALF, 1) for i in range(nm.N_LAYER)}
    text = render_model_markdown(sp_gpt)
    # 5.657 = 32 · 32^-1/2: the μP scale c/head_dim equals the default at head_dim 32
    assert ("- transformer.h.*.attn: scaled_dot_product_attention scale (default "
            "1/sqrt(head_dim)) (nanogpt_models.py:") in text
    assert "pass scale=5.657/head_dim" in text and "(×2)" in text
    # the tied readout has multiplier 1 where μP needs 1/fan_in at lm_head (Table 8)
    wte = next(p for p in res.params if p.name == "transformer.wte.weight")
    assert wte.fix.a["lm_head"] == 1 and wte.current.a["lm_head"] == 0
    assert "transformer.wte.weight (= lm_head.weight)" in text
    assert "multiply lm_head's input by 64/n_embd" in text
    # hidden weights: Adam μP has a+b = 1/2, a+c = 1 (Table 8: var 1/fan_in, LR 1/fan_in)
    hidden = {p.name: p for p in res.params}
    for i in range(nm.N_LAYER):
        for h in HIDDEN:
            p = hidden[f"transformer.h.{i}.{h}"]
            assert (p.fix.b, p.fix.c) == (HALF, 1)
    assert "- transformer.h.*.mlp.c_fc.weight (hidden weight)" in text
    assert "init std 0.02 → 0.02·sqrt(64/n_embd); LR lr → lr·64/n_embd" in text
    assert "plain global-LR training assumed" in text


def test_mup_gpt_passes(mup_gpt):
    assert mup_gpt.ok, render_model_markdown(mup_gpt)
    abc = mup_gpt.current.params.abc
    # MuAdam divides the LR of matrix-like weights by width_mult: c = 1 (hidden); the
    # vector-like ones (embeddings, biases, gains, the tied readout) keep it: c = 0.
    for i in range(nm.N_LAYER):
        for h in HIDDEN:
            assert abc.c[f"transformer.h.{i}.{h}"] == 1
    assert abc.c["transformer.wte.weight"] == 0 and abc.c["transformer.ln_f.bias"] == 0
    lr = mup_gpt.current.lr["transformer.h.0.mlp.c_fc.weight"]
    assert lr == pytest.approx((1e-3, 5e-4, 2.5e-4))
    # MuSharedReadout's x / width_mult is lm_head's multiplier: a = 1 at the readout use
    g = mup_gpt.imported.graph
    uses = {u.node: u for u in g.params["transformer.wte.weight"].uses}
    assert abc.a[key(uses["lm_head"])] == 1 and abc.a[key(uses["transformer.wte"])] == 0
    assert mup_gpt.current.folded == {"lm_head.scale": "lm_head (its weight)"}
    # mup.init.normal_: std 0.02/sqrt(width_mult) on matrix-like weights: b = 1/2
    assert mup_gpt.current.init["transformer.h.1.attn.c_proj.weight"].b == HALF
    assert mup_gpt.current.optimizer_class == "Adam"


def test_lr_scales_file(tmp_path):
    imp = nm.traced("GPT")
    f = tmp_path / "lr.yaml"
    f.write_text('lr:\n  "*.c_attn.weight": 64/n_embd\n  "*mlp*weight": 1/fan_in\n  "*": 1\n')
    c = read_lr_scales(imp, str(f))
    assert c["transformer.h.0.attn.c_attn.weight"] == 1
    assert c["transformer.h.1.mlp.c_proj.weight"] == 1  # 1/fan_in, fan_in = d_ff
    assert c["transformer.wte.weight"] == 0 and c["transformer.h.0.attn.c_proj.weight"] == 0


@pytest.mark.parametrize(("text", "msg"), [
    ('lr:\n  "*.c_attn.weight": 1\n', "no key matches it"),
    ('lr:\n  "*": 1/fan_wat\n', "unknown name 'fan_wat'"),
    ('lr:\n  "*": open(1)\n', "unknown name 'open'"),
    ('lr:\n  "*": a[0]\n', "unexpected character"),
    ('lr:\n  "*": 1/n_embd + 1\n', "not a monomial"),
    ('"*": 1\n', "not an LR file"),
    ("[1, 2]\n", "not an LR file"),
])
def test_lr_scales_bad_input(tmp_path, text, msg):
    f = tmp_path / "lr.yaml"
    f.write_text(text)
    with pytest.raises(AbcError, match=msg):
        read_lr_scales(nm.traced("GPT"), str(f))


def test_collapse():
    assert collapse("transformer.h.11.attn.c_attn.weight") == "transformer.h.*.attn.c_attn.weight"
    assert collapse("init std 0.02 → 0.02·sqrt(64/n_embd)") == \
        "init std 0.02 → 0.02·sqrt(64/n_embd)"


GPT_SPEC = f"{nm.HERE / 'nanogpt_models.py'}"
WIDTH = ("--width", "n_embd=64,128,256")


def test_cli_check_model_exit_status(run):
    """abccalc check MODEL through the tracer: exit 1 on nanoGPT as written (SDPA's default
    scale, the readout), 0 on its microsoft/mup version trained with MuAdam."""
    code, out, err = run("check", f"{GPT_SPEC}:GPT", *WIDTH)
    assert code == 1 and err == "", err
    assert "pass scale=5.657/head_dim" in out
    assert "transformer.wte.weight (= lm_head.weight) (input weight)" in out
    code, out, err = run("check", f"{GPT_SPEC}:mup_gpt", *WIDTH,
                         "--optimizer-factory", f"{GPT_SPEC}:mup_adam")
    assert code == 0 and out.count("OK: this is μP") == 1, out + err
    code, _, err = run("check", f"{GPT_SPEC}:GPT", "--width", "n_embd=64")
    assert code == 2 and "give at least two values of a width knob" in err
    code, _, err = run("check", f"{GPT_SPEC}:GPT", "--width", "n_embd=64,128",
                       "--optimizer-factory", f"{GPT_SPEC}:nope")
    assert code == 2 and "--optimizer-factory" in err and "has no function 'nope'" in err
    code, _, err = run("check", f"{GPT_SPEC}:GPT", "--width", "n_embd=64,128",
                       "--optimizer-factory", "hf:gpt2")
    assert code == 2 and "expected file.py:function" in err


APPLIED = """\
import importlib.util
import sys

sys.path.insert(0, {tests!r})
import nanogpt_models as nm

_spec = importlib.util.spec_from_file_location("generated_mup", {gen!r})
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def gpt(n_embd):
    return nm.with_generated(gen, nm.GPT(n_embd, scale_c=gen.scores_scale(1), init="torch"))


def hf(n_embd):
    model = nm.hf_gpt2(n_embd)
    for block in model.transformer.h:
        block.attn.scaling = gen.scores_scale(block.attn.head_dim)
    return nm.with_generated(gen, model)


def groups(model):
    return gen.param_groups(model, lr=1e-3, eps=1e-8)
"""


def applied(run, tmp_path, model: str, *extra: str) -> str:
    """A factory file whose models have the code codegen writes for MODEL applied
    (init_, apply_multipliers, the readout's multiplier, scale= from scores_scale, and
    param_groups as the optimizer factory)."""
    gen = tmp_path / "mup_generated.py"
    code, _, err = run("codegen", model, *extra, "--optimizer", "adam", "-o", str(gen))
    assert code == 0, err
    (tmp_path / "applied.py").write_text(APPLIED.format(tests=str(nm.HERE), gen=str(gen)))
    return str(tmp_path / "applied.py")


def test_generated_code_applied_passes(run, tmp_path):
    """nanoGPT with the code abccalc generates from its own trace applied passes."""
    f = applied(run, tmp_path, f"{GPT_SPEC}:GPT", *WIDTH)
    code, out, err = run("check", f"{f}:gpt", *WIDTH, "--optimizer-factory", f"{f}:groups")
    assert code == 0 and "OK: this is μP" in out, out + err
    # the generated scale is c/head_dim with c = 32^1/2: SDPA's default at head_dim 32
    mc = check_model(load_model(f"{f}:gpt", {"n_embd": nm.WIDTHS}), "adam",
                     factory=f"{f}:groups")
    assert [r.values[0] for n, r in sorted(mc.imported.constants.items())
            if n.endswith("scores")] == pytest.approx([32 ** -0.5] * nm.N_LAYER)


def test_mup_sgd_passes_and_optimizer_class_is_checked():
    # MuSGD: LR × width_mult on vector-like weights (c = -1: embeddings, biases, gains,
    # the tied readout), × fan_out/fan_in ratio^-1 on matrix-like ones (hidden: c = 0).
    import mup

    imp = nm.traced("mup_gpt")

    def musgd(model):
        return mup.MuSGD(model.parameters(), lr=0.1)

    mc = check_model(imp, "sgd", factory=musgd, factory_name="f.py:musgd")
    assert mc.ok, render_model_markdown(mc)
    c = mc.current.params.abc.c
    assert c["transformer.wte.weight"] == -1 and c["transformer.h.0.mlp.c_fc.weight"] == 0
    with pytest.raises(AbcError, match="returns SGD, checked as adam: pass --optimizer sgd"):
        check_model(imp, "adam", factory=musgd, factory_name="f.py:musgd")


def test_zero_init_readout_satisfies_any_init_rule():
    # mup's readout_zero_init: out.weight = 0 at every width. Zero satisfies every init
    # rule (TP5 App. B), so b is μP's a+b less a: 1 for an output weight with a = 0
    # (Table 3's init var 1/fan_in²), and its init is no violation.
    def build(knobs, device):
        model = nm.MLP(knobs["width"])
        torch.nn.init.zeros_(model.out.weight)
        return model

    r = current(replace(nm.traced("MLP", "width"), build=build), "adam").init["out.weight"]
    assert (r.kind, r.b, r.slope) == ("zeros", 1, None)


def test_json_and_user_code_errors():
    import json

    def broken(model):
        raise RuntimeError("no GPU here")

    imp = nm.traced("MLP", "width")
    with pytest.raises(AbcError, match=r"f.py:broken at \{'width': 64\} raised RuntimeError: "
                       "no GPU here"):
        check_model(imp, "adam", factory=broken, factory_name="f.py:broken")
    mc = check_model(imp, "adam")
    data = json.loads(json.dumps(mc.to_dict()))
    # PyTorch's default MLP with one global Adam LR: hidden and output weights over-update
    assert not data["ok"] and data["model"]["init"]["fc2.weight"]["b"] == "1/2"
    assert data["model"]["lr_source"] is None and len(data["model"]["notes"]) == 1


@settings(max_examples=12, deadline=None)
@given(b2=st.integers(-2, 4), c4=st.integers(-8, 8), sigma=st.floats(0.01, 10.0),
       w0=st.sampled_from([32, 48, 64]))
def test_reads_back_the_exponents_it_is_given(b2, c4, sigma, w0):
    """A hidden weight initialized with std σ·n^-b and trained at LR η·n^-c reads back
    b (to ½) and c (exactly), whatever σ and the base width."""
    from hypothesis import assume

    b, c = Fraction(b2, 2), Fraction(c4, 4)
    ws = (w0, 2 * w0, 4 * w0)

    def build(knobs, device):
        model = nm.MLP(knobs["width"])
        n = knobs["width"] / w0
        torch.nn.init.normal_(model.fc2.weight, 0.0, sigma * n ** -float(b))
        return model

    def opt(model):
        n = model.fc2.weight.shape[0] / w0
        return [{"params": [model.fc2.weight], "lr": 0.1 * n ** -float(c)},
                {"params": [p for name, p in model.named_parameters() if name != "fc2.weight"]}]

    assume(sigma * 4 ** -float(b) > 1e-6)
    imp = replace(nm.traced("MLP", "width"), spec="prop", knobs={"width": ws}, build=build)
    cur = current(imp, "adam", factory=opt, factory_name="prop")
    assert (cur.init["fc2.weight"].b, cur.params.abc.c["fc2.weight"]) == (b, c)
    assert cur.params.abc.c["fc1.weight"] == 0  # a group without lr: the default, global


FOLD_GRAPH = """\
graph: folds
dims: {d_in: 8, w: {base: 32}, d_out: 4}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h1, op: linear, inputs: x, dims: [w], weight: W1, bias: b1}
  - {name: s_out, op: scale, inputs: h1}
  - {name: a1, op: relu, inputs: s_out}
  - {name: s_in, op: scale, inputs: a1}
  - {name: h2, op: linear, inputs: s_in, dims: [w], weight: W2, bias: b2}
  - {name: r, op: add, inputs: [h2, s_out]}
  - {name: s_ln, op: scale, inputs: r}
  - {name: ln, op: layernorm, inputs: s_ln, gain: g}
  - {name: f, op: linear, inputs: ln, dims: [d_out], weight: W3}
  - {name: y, op: output, inputs: f}
"""


def test_scale_nodes_fold_into_what_they_multiply():
    """(W1x + b1)·m: a of both uses at h1; W2(x·m): a of W2 only (not b2); m·r before a
    LayerNorm: not a multiplier of any parameter (the norm divides it out), so it stays
    the scale node's own α for the solver to judge."""
    from abccalc.graph.spec import parse_builder
    from abccalc.importer.imported import Imported, Recorded
    from abccalc.verify.current import read_multipliers

    g = parse_builder(FOLD_GRAPH, "folds.yaml").build()

    def rec(node, e):
        return Recorded(node, (1.0, 0.5), Fraction(e), "x * m", node)

    imp = Imported(g, "folds", {"w": (32, 64)}, lambda k, d: None,
                   {"s_out": rec("s_out", HALF), "s_in": rec("s_in", 1), "s_ln": rec("s_ln", 1)})
    a, alpha, folded = read_multipliers(imp)
    assert (a[("h1", "W1")], a[("h1", "b1")], a[("h2", "W2")], a[("h2", "b2")]) == \
        (HALF, HALF, 1, 0)
    assert (alpha["s_out"], alpha["s_in"], alpha["s_ln"]) == (0, 0, 1)
    assert folded == {"s_out": "h1", "s_in": "h2 (its weight)"}
    for node, msg in (("a1", "neither carries a constant nor uses a parameter"),
                      ("nope", "not a node of the traced graph")):
        bad = Imported(g, "folds", {"w": (32, 64)}, lambda k, d: None, {node: rec(node, 1)})
        with pytest.raises(AbcError, match=msg):
            read_multipliers(bad)


def test_hf_gpt2(run, tmp_path):
    """Hugging Face GPT-2 from a tiny config through ``hf:`` (no download): HF's init
    (N(0, 0.02²), c_proj 0.02/sqrt(2·n_layer)) reads b = 0 everywhere; SDPA's scale and
    the tied readout are flagged; with the code generated from its trace applied
    (``attn.scaling = scores_scale(head_dim)``, the readout multiplier) it passes."""
    import json

    pytest.importorskip("transformers")
    cfg = tmp_path / "gpt2.json"
    cfg.write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, **nm.HF_CONFIG}))
    sp = check_model(load_model(f"hf:{cfg}", {"n_embd": nm.WIDTHS}), "adam")
    assert {r.b for r in sp.current.init.values() if r.kind != "zeros"} == {0}
    assert abs(sp.current.init["transformer.h.0.mlp.c_fc.weight"].rms[0] - 0.02) < 0.001
    text = render_model_markdown(sp)
    assert not sp.ok and "pass scale=5.657/head_dim" in text
    assert "transformer.wte.weight (= lm_head.weight)" in text

    f = applied(run, tmp_path, f"hf:{cfg}", *WIDTH)
    # a factory that returns a transformers model is traced as hf: is (its inputs guessed)
    code, out, err = run("check", f"{f}:hf", *WIDTH, "--optimizer-factory", f"{f}:groups")
    assert code == 0 and "OK: this is μP" in out, out + err


def test_manual_attention_scale_folds_into_the_contraction():
    """``(q @ k.transpose(-2, -1)) * head_dim^-1/2`` written out: the traced constant is
    read as the contraction's α = 1/2, and the fix is the value to multiply by:
    5.657/head_dim (= 32^-1/2 at head_dim 32)."""
    mc = check_model(nm.traced("manual_gpt"), "adam")
    assert {(k.exponent, k.mup_exponent) for k in mc.result.constants} == {(HALF, 1)}
    assert len(mc.result.constants) == nm.N_LAYER
    text = render_model_markdown(mc)
    # head_dim is the tracer's n_embd_div2 (n_embd / N_HEAD)
    assert ("- transformer.h.*.attn: a matmul of two activations, times a constant "
            "(nanogpt_models.py:45); μP needs 1/n_embd_div2: use 5.657/n_embd_div2 (equal to "
            "the current 0.1768 at the base widths)") in text


@pytest.mark.parametrize(("args", "msg"), [
    (("examples/gpt.yaml",), "give --params sp|ntk|mf|mup|FILE for a graph"),
    (("examples/gpt.yaml", "--params", "sp", "--width", "d=1,2"), "apply to a MODEL"),
    (("examples/gpt.yaml", "--params", "sp", "--lr-scales", "lr.yaml"), "leave out --params"),
    (("m.py:f", "--params", "sp", "--optimizer-factory", "f.py:g"), "leave out --params"),
    (("m.py:f", "--set", "n_layer=1"), "a MODEL's widths are --width"),
])
def test_cli_check_graph_and_model_options_do_not_mix(run, args, msg):
    code, out, err = run("check", *args)
    assert (code, out) == (2, "") and msg in err and err.count("\n") == 1


def test_parameters_the_trace_did_not_reach_are_named():
    """A trainable parameter the graph does not hold (an unused head, a parameter inside an
    op the tracer could not see) cannot be judged: it is named in a note, never dropped."""
    def build(knobs, device):
        model = nm.MLP(knobs["width"])
        model.aux = torch.nn.Linear(knobs["width"], 3)  # never called in forward
        return model

    mc = check_model(replace(nm.traced("MLP", "width"), build=build), "adam")
    assert mc.current.untraced == ("aux.weight", "aux.bias")
    assert ("Note: parameters the trace did not reach, not judged: aux.weight, aux.bias."
            in render_model_markdown(mc))
    assert mc.to_dict()["model"]["untraced"] == ["aux.weight", "aux.bias"]
