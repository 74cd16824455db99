"""A linear weight stored (in, out) (``x @ W``, Hugging Face's ``Conv1D``): ``mode: in_out``.
The exponents do not depend on the layout, but the generated code reads fan_in from the
tensor's shape, so reading the wrong axis gets the base-width constants wrong (HF GPT-2's
c_attn is (n_embd, 3·n_embd): fan_in 3·n_embd would divide its LR by 3 at the base)."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")

import nanogpt_models as nm  # noqa: E402

from abccalc.emit.codegen import generate, load_parametrization  # noqa: E402
from abccalc.errors import AbcError  # noqa: E402
from abccalc.graph.core import Kind  # noqa: E402
from abccalc.graph.ops import OPS  # noqa: E402
from abccalc.graph.spec import dump, parse_builder  # noqa: E402
from abccalc.importer.load import load_model  # noqa: E402

GRAPH = """\
graph: layout
dims: {{d_in: 6, w: {{base: 16}}, d_out: 3}}
nodes:
  - {{name: x, op: input, dims: [d_in]}}
  - {{name: fc1, op: linear, inputs: x, dims: [w], weight: fc1.weight, bias: fc1.bias{mode}}}
  - {{name: a, op: relu, inputs: fc1}}
  - {{name: out, op: linear, inputs: a, dims: [d_out], weight: out.weight}}
  - {{name: y, op: output, inputs: out}}
"""


def _graph(mode: str = ", mode: in_out"):
    return parse_builder(GRAPH.format(mode=mode), "layout.yaml").build()


def _module(text: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mode_round_trips_and_picks_the_fan_in_axis():
    g = _graph()
    assert g.node["fc1"].mode == "in_out" and g.node["out"].mode is None
    assert parse_builder(dump(g), "again.yaml").build().node["fc1"].mode == "in_out"
    assert _graph(", mode: out_in").node["fc1"].mode is None  # the default is not kept
    use = next(u for u in g.params["fc1.weight"].uses if u.kind is Kind.WEIGHT)
    assert OPS["linear"].fan_axes(g.node["fc1"], use) == ((0,), (1,))  # (in, out)
    use = g.params["out.weight"].uses[0]
    assert OPS["linear"].fan_axes(g.node["out"], use) == ((1,), (0,))  # (out, in)
    with pytest.raises(AbcError, match="mode 'sideways' is not a weight layout"):
        _graph(", mode: sideways")


def test_generated_model_stores_in_out_and_computes_x_w(tmp_path):
    p = load_parametrization(_graph(), "adam", "table8")
    gen = _module(generate(p, model=True), tmp_path, "lay")
    torch.manual_seed(0)
    m = gen.Model({"w": 16})
    gen.init_(m)
    w, b = m.get_parameter("fc1.weight"), m.get_parameter("fc1.bias")
    assert tuple(w.shape) == (6, 16)
    # input weight, Adam μP (Table 8): var 1/fan_in with fan_in = d_in = 6, not w = 16
    assert w.std().item() == pytest.approx(6 ** -0.5, rel=0.15)
    x = torch.randn(4, 6)
    h = torch.relu(x @ w + b)
    assert torch.allclose(m(x), h @ m.get_parameter("out.weight").t(), atol=1e-5)


def test_hf_gpt2_conv1d_base_constants(tmp_path):
    """HF GPT-2's Conv1D is traced as ``addmm(b, x, W)`` on W itself: ``in_out``;
    nanoGPT's nn.Linear reaches its addmm through aten.t: the default. At the base width
    the generated init_ (sigma = 0.02·sqrt(64), so that 1/fan_in gives HF's 0.02) and
    param_groups reproduce HF's own c_attn std and the base LR; at twice the width, Adam
    μP hidden weights (Table 8) have std ÷ √2 and LR ÷ 2."""
    pytest.importorskip("transformers")
    cfg = tmp_path / "gpt2.json"
    cfg.write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, **nm.HF_CONFIG}))
    hf = load_model(f"hf:{cfg}", {"n_embd": nm.WIDTHS})
    assert {n.mode for n in hf.graph.nodes if ".h." in n.name and n.op == "linear"} == \
        {"in_out"}
    assert hf.graph.node["lm_head"].mode is None  # nn.Linear, tied to wte
    assert {n.mode for n in nm.traced("GPT").graph.nodes if n.op == "linear"} == {None}
    gen = _module(generate(load_parametrization(hf.graph, "adam", "table8")), tmp_path, "mup_hf")
    got = []
    for n_embd in (64, 128):
        torch.manual_seed(0)
        model = nm.hf_gpt2(n_embd)
        w = model.transformer.h[0].attn.c_attn.weight
        own = w.std().item()
        gen.init_(model, sigma=0.02 * 64 ** 0.5)
        opt = torch.optim.AdamW(gen.param_groups(model, lr=1e-3, eps=1e-8))
        lr = next(g["lr"] for g in opt.param_groups if any(p is w for p in g["params"]))
        got.append((own, w.std().item(), lr))
    (own, std, lr), (_, std2, lr2) = got
    assert own == pytest.approx(0.02, rel=0.05) and std == pytest.approx(own, rel=0.05)
    assert lr == pytest.approx(1e-3)
    assert std2 == pytest.approx(0.02 / 2 ** 0.5, rel=0.05) and lr2 == pytest.approx(5e-4)
