"""The generated Model reads as the PyTorch a person would write (issue 15, point 2): a
class per repeated block, straight-line forwards, SDPA with the derived scale where the
graph has the attention pattern, fused QKV where the spec fuses it; and what SDPA
computes is what the graph's ops compute."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from abccalc.emit.codegen import default_names, generate, load_parametrization
from abccalc.emit.codegen_model import model_source
from abccalc.graph.spec import load_graph

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_generated_safety import load, tiny_attention  # noqa: E402
from test_new_ops import FUSED, build  # noqa: E402


def gpt_text(**overrides: str) -> str:
    graph = load_graph(GPT, overrides)
    return generate(load_parametrization(graph, "adam", "table8"), model=True)


def test_gpt_is_a_block_class_and_straight_line_forwards() -> None:
    """One Block class in a ModuleList of n_layer; its forward is one statement per node
    (an nn.Linear call for fc; k, q, v, which read ln1, one ``fused_linear`` call; SDPA
    with the scores' scale 1/d_head written as 4/d_head, equal to 1/√16 at the base
    d_head 16); no node table, no loop but the blocks'."""
    text = gpt_text()
    model = text[text.index("class Block"):]
    assert model.count("\nclass ") == 1 and "class Block(torch.nn.Module):" in model
    assert "self.block = torch.nn.ModuleList(Block(s) for _ in range(2))" in model
    assert "        k, q, v = fused_linear(ln1, self.k, self.q, self.v)\n" in model
    assert "        q = q.unflatten(-1, (s['n_head'], s['d_head']))\n" in model
    assert "        fc = self.fc(ln2)\n" in model
    assert "            'scores': 4/s['d_head'],\n" in model
    assert ("                is_causal=True, scale=self.const['scores']).transpose(1, 2)\n"
            in model)
    assert "        logits = self.logits(ln_f) * self.mult[('logits', 'W_unemb')]\n" in model
    assert "            ('logits', 'W_unemb'): 64/s['d_model'],\n" in model  # 1/m
    assert re.findall(r"^\s*for .*:$", model, re.M) == [
        "        for i, layer in enumerate(self.block):"]
    assert "NODES" not in model and "eval(" not in model and "exec(" not in model


def test_model_text_does_not_grow_with_depth() -> None:
    """n_layer 96 gives the n_layer 2 text but for the ModuleList's length."""
    two, many = (model_source(p, default_names(p.graph)) for p in (
        load_parametrization(load_graph(GPT, {"n_layer": n}), "adam", "table8")
        for n in ("2", "96")))
    assert many == two.replace("range(2))", "range(96))") and two != many


def _both_paths(model, *inputs) -> tuple:
    with torch.no_grad():
        acts: dict = {}
        return model(*inputs), model(*inputs, capture=acts), acts


@pytest.mark.parametrize("spec", ["gpt", "vit", "one_head", "fused_qkv"])
def test_sdpa_computes_the_graphs_attention(spec: str, tmp_path: Path) -> None:
    """The SDPA path (no capture) equals the op-by-op path that capture runs (einsum,
    masked softmax, einsum, each with its constant) at twice the base width: causal with
    heads (gpt), the non-causal composite ``attention`` (vit), no head dim (one_head), q,
    k, v sliced from one fused projection (fused_qkv)."""
    if spec == "gpt":
        graph = load_graph(GPT)
    elif spec == "vit":
        graph = load_graph(ROOT / "examples" / "archs" / "vit.yaml")
    elif spec == "one_head":
        graph = tiny_attention()
    else:
        graph = build(FUSED)
    text = generate(load_parametrization(graph, "adam", "table8"), model=True)
    assert text.count("F.scaled_dot_product_attention(") == 1
    gen = load(text, tmp_path, f"gen_sdpa_{spec}")
    torch.manual_seed(0)
    model = gen.Model({d.name: 2 * d.size for d in graph.dims.values()
                       if d.infinite and d.of is None})
    gen.init_(model)
    inputs = []
    for name in gen.INPUTS:
        node = graph.node[name]
        shape = (3, *(model.sizes[d] for d in node.dims))
        vocab = [graph.node[c].vocab for c in graph.consumers[name]
                 if graph.node[c].vocab is not None]
        inputs.append(torch.randint(0, model.sizes[vocab[0]], shape) if vocab
                      else torch.randn(shape))
    fused, explicit, acts = _both_paths(model, *inputs)
    assert torch.allclose(fused, explicit, atol=1e-5, rtol=1e-5)
    probs = [k for k in acts if k.endswith("probs")]
    assert probs and torch.allclose(acts[probs[0]].sum(-1), torch.ones(()))
    if spec == "fused_qkv":
        assert "self.qkv(ln1)" in text and ".narrow(3, 0, s['d_head'])" in text


def test_a_repeat_that_is_not_one_module_is_written_out(tmp_path: Path) -> None:
    """Names putting iteration 1 elsewhere (``late.*``): no Block class, each node written
    out in the Model's forward, which computes what the class version does with the same
    weights (state_dict keys renamed)."""
    p = load_parametrization(load_graph(GPT), "adam", "table8")
    names = {k: v.replace("block.1.", "late.") for k, v in default_names(p.graph).items()}
    inline = load(generate(p, names=names, model=True), tmp_path, "gen_inline")
    blocks = load(generate(p, model=True), tmp_path, "gen_blocks")
    assert not hasattr(inline, "Block") and hasattr(blocks, "Block")
    torch.manual_seed(0)
    a = blocks.Model({"d_model": 128, "d_head": 32})
    blocks.init_(a)
    b = inline.Model({"d_model": 128, "d_head": 32})
    b.load_state_dict({k.replace("block.1.", "late."): v for k, v in a.state_dict().items()})
    tokens = torch.randint(0, 256, (2, 64))
    positions = torch.arange(64).expand(2, 64)
    with torch.no_grad():
        assert torch.allclose(a(positions, tokens), b(positions, tokens), atol=1e-6)
