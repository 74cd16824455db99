"""Sibling linears in the generated Model (issue 15, point 2): linears that read the same
input over the same ``in`` dims, all with or all without a bias, with no bias multiplier
and one weight multiplier, run as one matmul (``fused_linear``: weights concatenated along
the output dim, the result split), while their modules, parameters and state_dict stay
separate. The fused forward computes what the separate calls (``fuse=False``) compute,
with the same gradients; anything else (mixed biases, bias multipliers, convolutions,
weights stored (in, out), a lone linear) is left as it was."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from abccalc import solve
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.exponents import Optimizer
from abccalc.graph.core import Graph
from abccalc.graph.spec import load_graph, parse_builder
from abccalc.parametrization.gauges import Parametrization, from_abc
from abccalc.parametrization.presets import PRESETS

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_generated_safety import load, ruff_clean  # noqa: E402
from test_new_ops import gpt_with  # noqa: E402

FUSED_QKV = "        k, q, v = fused_linear(ln1, self.k, self.q, self.v)\n"


def build(text: str) -> Graph:
    return parse_builder(text, "<test>").build()


def params(graph: Graph, how: str) -> Parametrization:
    """μP in a variant (``table8``, ``table9``, ``tp4``, ``unit``) or a preset (``ntk``)."""
    if how in ("ntk", "mf"):
        return from_abc(solve(graph, Optimizer.ADAM), PRESETS[how](graph, Optimizer.ADAM),
                        how)
    return load_parametrization(graph, "adam", how)


def both(p: Parametrization, tmp_path: Path, name: str):
    """The generated module with sibling fusion and without, loaded; and the fused text."""
    text = generate(p, model=True)
    fused = load(text, tmp_path, f"{name}_fused")
    plain = load(generate(p, model=True, fuse=False), tmp_path, f"{name}_plain")
    return fused, plain, text


def inputs_of(graph: Graph, model, batch: int = 3) -> list:
    g = torch.Generator().manual_seed(1)
    out = []
    for name in [n.name for n in graph.order if n.op == "input"]:
        shape = (batch, *(model.sizes[d] for d in graph.node[name].dims))
        vocab = [graph.node[c].vocab for c in graph.consumers[name]
                 if graph.node[c].vocab is not None]
        out.append(torch.randint(0, model.sizes[vocab[0]], shape, generator=g) if vocab
                   else torch.randn(shape, generator=g))
    return out


def assert_same_function(graph: Graph, fused, plain) -> None:
    """At twice the base widths (multipliers ≠ 1), with the fused model's weights loaded
    into the plain one (strict: the same state_dict keys and shapes): outputs, every
    captured activation and every gradient agree in fp32."""
    widths = {d.name: 2 * d.size for d in graph.dims.values() if d.infinite and d.of is None}
    torch.manual_seed(0)
    a = fused.Model(widths)
    fused.init_(a)
    with torch.no_grad():  # biases are zero-initialized: make them count
        for name, p in a.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    b = plain.Model(widths)
    b.load_state_dict(a.state_dict(), strict=True)
    assert list(a.state_dict()) == list(b.state_dict())
    xs = inputs_of(graph, a)
    ya, yb = a(*xs), b(*xs)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    ya.square().mean().backward()
    yb.square().mean().backward()
    grads_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        assert p.grad is not None and grads_b[name].grad is not None, name
        torch.testing.assert_close(p.grad, grads_b[name].grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        ca: dict = {}
        cb: dict = {}
        a(*xs, capture=ca)
        b(*xs, capture=cb)
    assert list(ca) == list(cb)
    for key in ca:
        torch.testing.assert_close(ca[key], cb[key], rtol=1e-5, atol=1e-5)


def test_gpt_qkv_is_one_matmul_of_the_same_function(tmp_path: Path) -> None:
    """examples/gpt.yaml: k, q, v (which read ln1) are one fused_linear call; fc, o, proj
    and the readout stay nn.Linear calls; the Model docstring says which nodes are fused
    and that forward hooks on them do not fire; outputs, activations and gradients equal
    the separate calls'."""
    graph = load_graph(GPT)
    fused, plain, text = both(params(graph, "table8"), tmp_path, "sib_gpt")
    assert text.count(FUSED_QKV) == 1 and text.count("fused_linear(") == 2  # def + call
    assert "def fused_linear(" not in generate(params(graph, "table8"), model=True,
                                               fuse=False)
    for line in ("fc = self.fc(ln2)", "o = self.o(att.flatten(-2))", "proj = self.proj(act)",
                 "logits = self.logits(ln_f) * self.mult[('logits', 'W_unemb')]"):
        assert f"        {line}\n" in text
    doc = re.sub(r"\s+", " ", text[text.index("class Model"):])
    assert "one matmul (``fused_linear``): `block.<i>.k`, `block.<i>.q`, `block.<i>.v`." \
        in doc and "forward hooks registered on those modules do not fire" in doc
    assert_same_function(graph, fused, plain)



def test_cli_no_fuse_writes_the_separate_calls(run, tmp_path: Path) -> None:
    """``codegen --model --no-fuse`` writes what ``generate(..., fuse=False)`` writes: no
    fused_linear, and k, q, v each called as its own nn.Linear (so its hooks fire)."""
    args = ("codegen", str(GPT), "--optimizer", "adam", "--model")
    assert run(*args, "-o", str(tmp_path / "fused.py"))[0] == 0
    assert run(*args, "--no-fuse", "-o", str(tmp_path / "plain.py"))[0] == 0
    fused, plain = ((tmp_path / f).read_text() for f in ("fused.py", "plain.py"))
    assert FUSED_QKV in fused and "fused_linear" not in plain
    for name in ("k", "q", "v"):
        assert f"        {name} = self.{name}(ln1)" in plain
    code, out, err = run("codegen", str(GPT), "--optimizer", "adam", "--no-fuse", "-o",
                         str(tmp_path / "none.py"))
    assert (code, out, err.count("\n")) == (2, "", 1) and "add --model" in err
    assert not (tmp_path / "none.py").exists()

def test_fused_gpt_text_is_deterministic_and_ruff_clean(tmp_path: Path) -> None:
    p = params(load_graph(GPT), "table8")
    text = generate(p, model=True)
    assert text == generate(params(load_graph(GPT), "table8"), model=True)
    assert ruff_clean(text, tmp_path) == ""


@pytest.mark.parametrize("how", ["ntk", "unit"])
def test_a_common_weight_multiplier_scales_the_input(how: str, tmp_path: Path) -> None:
    """NTK and the unit gauge put one weight multiplier on q, k and v (none on their
    biases): the fused call scales its input by it, as each separate call did."""
    graph = load_graph(GPT)
    p = params(graph, how)
    fused, plain, text = both(p, tmp_path, f"sib_{how}")
    assert "        k, q, v = fused_linear(ln1 * self.mult[('k', 'W_k')], self.k, self.q, " \
           "self.v)\n" in text
    assert_same_function(graph, fused, plain)


@pytest.mark.parametrize("variant", ["table9", "tp4"])
def test_bias_multipliers_are_not_fused(variant: str) -> None:
    """Table 9 and TP4 give the q, k, v biases a multiplier of their own (the weights
    none): each stays an F.linear of its own, the text is what fuse=False writes."""
    p = params(load_graph(GPT), variant)
    text = generate(p, model=True)
    assert "fused_linear" not in text
    assert "k = F.linear(ln1, self.k.weight, self.k.bias * self.mult[('k', 'b_k')])" in text
    assert text == generate(p, model=True, fuse=False)


def test_mixed_biases_are_not_fused(tmp_path: Path) -> None:
    """k without a bias: q and v (both biased) are one matmul, k its own call; with only
    q and k, one biased and one not, nothing is fused."""
    spec = gpt_with(("k",), ["name: k, op: linear, inputs: ln1, dims: [ctx, n_head, d_head], "
                             "weight: W_k"])
    graph = build(spec)
    fused, plain, text = both(params(graph, "table8"), tmp_path, "sib_mixed")
    assert "        q, v = fused_linear(ln1, self.q, self.v)\n" in text
    assert "        k = self.k(ln1).unflatten(-1, (s['n_head'], s['d_head']))\n" in text
    assert_same_function(graph, fused, plain)
    two = build(MLP2.format(bias_a=", bias: b_a", bias_b=""))
    assert "fused_linear" not in generate(params(two, "table8"), model=True)


MLP2 = """\
graph: two
dims:
  ctx: 4
  d: 8
  h: {{base: 16}}
nodes:
  - {{name: x, op: input, dims: [ctx, d]}}
  - {{name: a, op: linear, inputs: x, dims: [ctx, h], weight: W_a{bias_a}}}
  - {{name: b, op: linear, inputs: x, dims: [h, ctx], weight: W_b{bias_b}}}
  - {{name: ab, op: multiply, inputs: [a, b]}}
  - {{name: y, op: linear, inputs: ab, dims: [ctx, d], weight: W_y}}
  - {{name: out, op: output, inputs: y}}
"""


@pytest.mark.parametrize("bias", [True, False])
def test_top_level_siblings_of_other_dim_orders(bias: bool, tmp_path: Path) -> None:
    """Outside any repeat, in the Model's own forward: a (dims [ctx, h]) and b (dims
    [h, ctx], so its output is transposed after the split), with or without biases."""
    text_b = ", bias: b_" if bias else ""
    graph = build(MLP2.format(bias_a=text_b and text_b + "a", bias_b=text_b and text_b + "b"))
    fused, plain, text = both(params(graph, "table8"), tmp_path, f"sib_top_{bias}")
    assert "        a, b = fused_linear(x, self.a, self.b)\n" in text
    assert "        b = b.transpose(1, 2)\n" in text
    assert_same_function(graph, fused, plain)


def test_convolutions_and_in_out_weights_are_not_fused() -> None:
    """Two convolutions of one input, and two linears stored (in, out) (``x @ W``): each
    stays its own call."""
    conv = build("""\
graph: convs
dims:
  rows: 6
  c_in: 3
  k: 3
  c: {base: 8}
nodes:
  - {name: x, op: input, dims: [rows, c_in]}
  - {name: h1, op: conv, inputs: x, kernel: [k], dims: [rows, c], weight: K1, bias: b1}
  - {name: h2, op: conv, inputs: x, kernel: [k], dims: [rows, c], weight: K2, bias: b2}
  - {name: h, op: add, inputs: [h1, h2]}
  - {name: f, op: linear, inputs: h, in: [rows, c], dims: [c_in], weight: W_out}
  - {name: out, op: output, inputs: f}
""")
    text = generate(params(conv, "table8"), model=True)
    assert "fused_linear" not in text and text.count("conv_last(x, ") == 2
    in_out = build(MLP2.format(bias_a=", mode: in_out", bias_b=", mode: in_out"))
    assert "fused_linear" not in generate(params(in_out, "table8"), model=True)


def test_a_tied_weight_is_not_fused() -> None:
    """b reads a's weight (its first use is a): b owns no nn.Linear, so nothing is fused."""
    tied = build(MLP2.format(bias_a="", bias_b="").replace("weight: W_b", "weight: W_a"))
    text = generate(params(tied, "table8"), model=True)
    assert "fused_linear" not in text


FACTORY = """\
import importlib.util
import sys

_spec = importlib.util.spec_from_file_location({name!r}, {path!r})
gen = importlib.util.module_from_spec(_spec)
sys.modules[{name!r}] = gen
_spec.loader.exec_module(gen)


def model(d_model):
    m = gen.Model({{"d_model": d_model, "d_head": d_model // 4}})
    gen.init_(m)
    return m


def groups(model):
    return gen.param_groups(model, lr=1e-3, eps=1e-8)
"""


def test_check_model_reads_fused_siblings_as_separate_linears(run, tmp_path: Path) -> None:
    """``abccalc check MODEL`` of the generated GPT itself: the tracer sees one matmul of
    torch.cat(W_k, W_q, W_v); the importer reads it as three linears (each weight and bias
    its own, with init, LR and fan_in of their own) whose outputs are concatenated, and
    the model passes as μP, as its fuse=False twin does."""
    from abccalc.importer.load import load_model

    p = params(load_graph(GPT), "table8")
    for fuse in (True, False):
        name = f"sib_check_{fuse}"
        gen = tmp_path / f"{name}.py"
        gen.write_text(generate(p, model=True, fuse=fuse))
        fac = tmp_path / f"fac_{name}.py"
        fac.write_text(FACTORY.format(name=name, path=str(gen)))
        example = tmp_path / "example.pt"
        torch.save({"positions": torch.arange(64).expand(2, 64).clone(),
                    "tokens": torch.zeros(2, 64, dtype=torch.long)}, example)
        code, out, err = run("check", f"{fac}:model", "--width", "d_model=64,128,256",
                             "--optimizer-factory", f"{fac}:groups", "--example", str(example))
        assert code == 0 and "OK: this is μP" in out, out + err
        if fuse:
            graph = load_model(f"{fac}:model", {"d_model": (64, 128)},
                               example=str(example)).graph
            linears = sorted(n.weight for n in graph.order if n.op == "linear"
                             and n.name.startswith("block.0."))
            assert linears == [f"block.0.{x}.weight" for x in ("fc", "k", "o", "proj", "q",
                                                                "v")], linears
            assert not [n for n in graph.order if n.op == "param"]


STACKED = """\
import torch


class Stacked(torch.nn.Module):
    def __init__(self, n, in_out=False, as_tensor=False):
        super().__init__()
        self.inp = torch.nn.Linear(8, n)
        self.a = torch.nn.Parameter(torch.randn(n, n) / n**0.5)
        self.b = torch.nn.Parameter(torch.randn(n, n) / n**0.5)
        self.c = torch.nn.Parameter(torch.ones(n))
        self.d = torch.nn.Parameter(torch.ones(n))
        self.out = torch.nn.Linear(2 * n, 4)
        self.in_out, self.as_tensor = in_out, as_tensor

    def forward(self, x):
        h = self.inp(x)
        if self.as_tensor:  # stacked vectors read as a tensor, not by a matmul
            return self.out(torch.cat([h, h], -1) * torch.cat([self.c, self.d]))
        if self.in_out:
            return self.out(h @ torch.cat([self.a, self.b], 1))
        return self.out(torch.nn.functional.linear(h, torch.cat([self.a, self.b])))


def plain(n):
    return Stacked(n)


def in_out(n):
    return Stacked(n, in_out=True)


def as_tensor(n):
    return Stacked(n, as_tensor=True)
"""


@pytest.mark.parametrize("factory", ["plain", "in_out", "as_tensor"])
def test_import_of_stacked_parameters(factory: str, tmp_path: Path) -> None:
    """torch.cat of parameters read whole by a matmul is one linear per parameter (stored
    (out, in), or (in, out) for ``x @ cat(W1, W2, dim=1)``) joined by a concat; read as a
    tensor it is a concat of ``param`` nodes, as before."""
    from abccalc.importer.load import load_model

    (tmp_path / "stacked.py").write_text(STACKED)
    example = tmp_path / "x.pt"
    torch.save({"x": torch.randn(2, 8)}, example)
    graph = load_model(f"{tmp_path / 'stacked.py'}:{factory}", {"n": (16, 32)},
                       example=str(example)).graph
    ops = {n.name: n for n in graph.order}
    linears = sorted(n.weight for n in ops.values() if n.op == "linear")
    concats = [n for n in ops.values() if n.op == "concat"]
    assert len(concats) == 1 or factory == "as_tensor"
    if factory == "as_tensor":
        assert linears == ["inp.weight", "out.weight"]
        assert sorted(n.weight for n in ops.values() if n.op == "param") == ["c", "d"]
        assert any(n.op == "concat" and [ops[i].weight for i in n.inputs] == ["c", "d"]
                   for n in concats)
        return
    assert linears == ["a", "b", "inp.weight", "out.weight"]
    assert [ops[i].weight for i in concats[0].inputs] == ["a", "b"]
    modes = {n.weight: n.mode for n in ops.values() if n.op == "linear"}
    assert modes["a"] == modes["b"] == ("in_out" if factory == "in_out" else None)


UNSTACKABLE = """\
import torch

F = torch.nn.functional


class M(torch.nn.Module):
    def __init__(self, n, mode):
        super().__init__()
        self.inp = torch.nn.Linear(8, n)
        self.a = torch.nn.Parameter(torch.randn(n, n) / n**0.5)
        self.b = torch.nn.Parameter(torch.randn(2 * n, n) / n**0.5)
        self.ba = torch.nn.Parameter(torch.zeros(n))
        self.bb = torch.nn.Parameter(torch.zeros(2 * n))
        self.out = torch.nn.Linear(3 * n, 4)
        self.mode = mode

    def forward(self, x):
        h = self.inp(x)
        if self.mode == "views":  # a cat of transposed views, not of parameters
            y = h @ torch.cat([self.a.t(), self.b.t()], 1)
        elif self.mode == "in_out_read_transposed":  # (in, out) stacked, read transposed
            y = F.linear(h, torch.cat([self.a, self.b.t()], 1).t())
        elif self.mode == "biases_swapped":  # bias parts n + 2n against weight parts 2n + n
            y = F.linear(h, torch.cat([self.a, self.b]), torch.cat([self.bb, self.ba]))
        else:
            y = F.linear(h, torch.cat([self.a, self.b]), torch.cat([self.ba, self.bb]))
        return self.out(y)


def make(mode):
    return lambda n: M(n, mode)


views, in_out_read_transposed = make("views"), make("in_out_read_transposed")
biases_swapped, biases = make("biases_swapped"), make("biases")
"""


@pytest.mark.parametrize("factory", ["views", "in_out_read_transposed", "biases_swapped",
                                     "biases"])
def test_stacks_that_are_not_linears_stay_a_concat(factory: str, tmp_path: Path) -> None:
    """Only a cat of parameters themselves, stacked on the axis their layout reads as the
    out dim, with biases stacked in the same parts, is one linear per weight: a cat of
    views, (in, out) weights read transposed, or biases in another order stay a concat of
    ``param`` nodes (the generic path; they used to be misread or fail to import)."""
    from abccalc.importer.load import load_model

    (tmp_path / "unstackable.py").write_text(UNSTACKABLE)
    example = tmp_path / "x.pt"
    torch.save({"x": torch.randn(2, 8)}, example)
    graph = load_model(f"{tmp_path / 'unstackable.py'}:{factory}", {"n": (16, 32)},
                       example=str(example)).graph
    linears = {n.weight: n.bias for n in graph.order if n.op == "linear"}
    if factory == "biases":
        assert linears == {"inp.weight": "inp.bias", "a": "ba", "b": "bb",
                           "out.weight": "out.bias"}
    else:
        assert "a" not in linears and "b" not in linears
        assert {"a", "b"} <= {n.weight for n in graph.order if n.op == "param"}
