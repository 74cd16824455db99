"""Generated code never runs what a name says (issue 12, point 4) and never fails silently
(point 8).

Hostile names are put on a graph built with GraphBuilder by renaming its dims, nodes and
parameters afterwards, so these tests exercise codegen's own escaping whatever the spec
boundary accepts: the module must import, build its Model and run it with no marker file
appearing, and pass ruff.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from abccalc.emit.codegen import generate, load_parametrization
from abccalc.emit.codegen_model import MODULE_ATTRIBUTES, module_path
from abccalc.errors import AbcError
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph, Node, Param, Use

torch = pytest.importorskip("torch")


def tiny_attention(name: str = "g", spare: bool = False) -> Graph:
    """Embedding, a norm with a bias and no gain, one attention head whose scale is
    over an infinite dim, and a readout tied to the embedding with its own bias
    (``spare``: plus an unused third infinite dim)."""
    b = GraphBuilder(name)
    b.dim("vocab", size=11).dim("ctx", size=4).dim("ctx_k", size=4)
    b.dim("d", base=8).dim("dh", base=4)
    if spare:
        b.dim("spare", base=2)
    b.node("tok", "input", dims=["ctx"])
    b.node("emb", "embedding", inputs="tok", vocab="vocab", dims=["ctx", "d"], weight="E")
    b.node("ln", "layernorm", inputs="emb", over="d", bias="bl")
    b.node("q", "linear", inputs="ln", dims=["ctx", "dh"], weight="Wq")
    b.node("k", "linear", inputs="ln", dims=["ctx", "dh"], weight="Wk")
    b.node("v", "linear", inputs="ln", dims=["ctx", "dh"], weight="Wv")
    b.node("scores", "contract", inputs=["q", "k"], rename={"ctx": "ctx_k"}, over="dh",
           dims=["ctx", "ctx_k"])
    b.node("probs", "softmax", inputs="scores", over="ctx_k")
    b.node("att", "contract", inputs=["probs", "v"], rename={"ctx": "ctx_k"}, over="ctx_k",
           dims=["ctx", "dh"])
    b.node("o", "linear", inputs="att", dims=["ctx", "d"], weight="Wo", bias="bo")
    b.node("h", "add", inputs=["ln", "o"])
    b.node("logits", "linear", inputs="h", dims=["ctx", "vocab"], weight="E", bias="bz")
    b.node("out", "output", inputs="logits")
    return b.build()


def rename(graph: Graph, new: dict[str, str], graph_name: str | None = None) -> Graph:
    """``graph`` with every dim, node and parameter name ``x`` replaced by ``new[x]``."""
    r = lambda x: new.get(x, x)  # noqa: E731
    rt = lambda xs: tuple(r(x) for x in xs)  # noqa: E731

    def node(n: Node) -> Node:
        return dataclasses.replace(
            n, name=r(n.name), inputs=rt(n.inputs), dims=rt(n.dims), in_dims=rt(n.in_dims),
            over=rt(n.over), kernel=rt(n.kernel), causal=rt(n.causal),
            rename=tuple(rt(pair) for pair in n.rename),
            **{f: r(getattr(n, f)) for f in ("weight", "bias", "gain", "vocab")
               if getattr(n, f) is not None})

    def use(u: Use) -> Use:
        return dataclasses.replace(u, node=r(u.node), param=r(u.param), fan_in=rt(u.fan_in),
                                   fan_out=rt(u.fan_out))

    dims = {r(k): dataclasses.replace(d, name=r(k), of=r(d.of) if d.of else None)
            for k, d in graph.dims.items()}
    params = {r(k): Param(r(k), rt(p.shape), tuple(use(u) for u in p.uses))
              for k, p in graph.params.items()}
    return Graph(graph_name or graph.name, dims, tuple(node(n) for n in graph.nodes), params,
                 dict(graph.values), graph.source)


def payloads(marker: Path) -> list[str]:
    """Names that run ``touch marker`` if pasted into Python unescaped, in every quoting
    context the generated text has (strings of either quote, docstrings, comments,
    f-strings, identifiers, subscripts), plus plain troublemakers."""
    cmd = f"__import__('os').system('touch {marker}')"
    dq = f'__import__("os").system("touch {marker}")'
    return [
        f"a'); {cmd}; ('",
        f'a"); {dq}; ("',
        f'"""\n{cmd}\n"""',
        f"'''\n{cmd}\n'''",
        f"x\n{cmd}\n#",
        f"x\r{cmd}\r#",
        f"{{{cmd}}}",
        f"x']+{cmd}+sizes['y",
        f"x=0):\n    {cmd}\ndef f(",
        "back\\slash\\",
        "forward",
        "__init__",
        "capture",
        "weight",
        "sizes",
        "math",
        "lambda",
        "1st dim-with spaces",
        "é\u2028\x00\ud800",
    ]


def hostile_names(marker: Path) -> dict[str, str]:
    """Every dim, node and parameter of :func:`tiny_attention` gets a hostile name."""
    graph = tiny_attention()
    old = [*graph.dims, *(n.name for n in graph.nodes), *graph.params]
    bad = payloads(marker)
    return {x: f"{bad[i % len(bad)]}{i}" for i, x in enumerate(old)}


def load(text: str, tmp_path: Path, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ruff_clean(text: str, tmp_path: Path) -> str:
    """ruff's complaints about ``text`` with this project's rules ('' when clean)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    path = tmp_path / "ruff_me.py"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--line-length", "100",
                           "--select", "E,F,W,B,I,UP,RUF", str(path)],
                          capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stdout


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_hostile_names_are_inert(tmp_path: Path, optimizer: str) -> None:
    """Graph, dim, node and parameter names full of payloads: the module imports, its
    Model builds at two widths and runs forward, no marker appears, ruff is clean, and
    every name survives verbatim in the module's data (it was a string, not code)."""
    marker = tmp_path / "PWNED"
    new = hostile_names(marker)
    graph = rename(tiny_attention(), new, graph_name=payloads(marker)[2])
    p = load_parametrization(graph, optimizer, "table8")
    text = generate(p, model=True, source=payloads(marker)[4])
    assert not marker.exists()
    gen = load(text, tmp_path, f"hostile_{optimizer}")
    assert not marker.exists()
    assert set(gen.PARAMETERS) == set(graph.params)
    assert set(gen.DIMS) == set(graph.dims)
    d, dh = new["d"], new["dh"]
    for width in (8, 16):
        model = gen.Model({d: width, dh: width // 2})
        gen.init_(model)
        assert gen.param_groups(model, 1e-3, eps=1e-8)
        acts: dict = {}
        out = model(torch.randint(0, 11, (2, 4)), capture=acts)
        assert out.shape == (2, 4, 11) and torch.isfinite(out).all()
        assert set(acts) == {n.name for n in graph.nodes}  # names kept verbatim
        assert torch.equal(model(torch.randint(0, 11, (2, 4))).isfinite(),
                           torch.ones(2, 4, 11, dtype=torch.bool))  # the SDPA path
    assert not marker.exists()
    assert ruff_clean(text, tmp_path) == ""


def test_hostile_names_map_values_are_strings(tmp_path: Path) -> None:
    """``--names`` module paths (the user's own model, no --model) are only repr'd."""
    marker = tmp_path / "PWNED"
    graph = tiny_attention()
    bad = payloads(marker)
    names = {pname: f"{bad[i % 9]}.weight" for i, pname in enumerate(graph.params)}
    text = generate(load_parametrization(graph, "adam", "table8"), names=names)
    gen = load(text, tmp_path, "hostile_names_map")
    assert not marker.exists()
    assert {r.module_param for r in gen.PARAMETERS.values()} == set(names.values())
    assert ruff_clean(text, tmp_path) == ""


def test_hostile_model_names_are_refused() -> None:
    """With --model the names become module attributes: a non-identifier is refused."""
    graph = tiny_attention()
    names = {p: f"{p.lower()}.{'bias' if p.startswith('b') else 'weight'}"
             for p in graph.params}
    names["Wq"] = "q'); import os; ('.weight"
    p = load_parametrization(graph, "adam", "table8")
    with pytest.raises(AbcError, match="is not a plain identifier"):
        generate(p, names=names, model=True)


def test_reserved_node_names_get_their_own_modules(tmp_path: Path) -> None:
    """Nodes named forward, __init__, capture, weight: the Model keeps its methods, and
    each node's parameters sit on a module of its own."""
    graph = rename(tiny_attention(), {"q": "forward", "k": "__init__", "v": "capture",
                                      "o": "weight", "ln": "training"})
    assert module_path("forward") == "_r_forward"
    assert module_path("block.0.weight") == "block.0._r_weight"
    gen = load(generate(load_parametrization(graph, "adam", "table8"), model=True),
               tmp_path, "reserved")
    model = gen.Model({})
    gen.init_(model)
    keys = set(model.state_dict())
    assert {"_r_forward.weight", "_x_5f5f696e69745f5f.weight", "capture.weight",
            "_r_weight.weight", "_r_training.bias"} <= keys
    acts: dict = {}
    out = model(torch.randint(0, 11, (3, 4)), capture=acts)
    assert out.shape == (3, 4, 11) and "forward" in acts


def _torch_own(value: object) -> bool:
    """Defined by torch, not patched onto its classes by a library imported in the same
    session (transformers adds ``nn.Module.smart_apply``)."""
    return (getattr(value, "__module__", None) or "torch").startswith("torch")


def test_module_attributes_cover_installed_torch() -> None:
    """The reserved list holds every public attribute of the module classes the Model
    nests under (a newer torch adding one would otherwise collide with a node name)."""
    classes = (torch.nn.Module, torch.nn.ModuleDict, torch.nn.Linear, torch.nn.Conv1d,
               torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Embedding)
    public = {a for c in classes for a in dir(c) if not a.startswith("_")
              and _torch_own(inspect.getattr_static(c, a))}
    public |= {a for m in (torch.nn.Linear(1, 1), torch.nn.Embedding(1, 1))
               for a in vars(m) if not a.startswith("_")}
    assert public <= MODULE_ATTRIBUTES


# -- point 8: generated code refuses to fail silently ---------------------------------------
def _mlp_parametrization():
    """x[i] → W1 → h[w] → W2 → f[o]: one hidden and one readout weight."""
    b = GraphBuilder("mlp")
    b.dim("i", size=3).dim("w", base=8).dim("o", size=2)
    b.node("x", "input", dims=["i"])
    b.node("h", "linear", inputs="x", dims=["w"], weight="W1")
    b.node("f", "linear", inputs="h", dims=["o"], weight="W2")
    b.node("y", "output", inputs="f")
    return load_parametrization(b.build(), "adam", "table8")


def _mlp_module(tmp_path: Path, name: str) -> ModuleType:
    p = _mlp_parametrization()
    return load(generate(p, names={"W1": "0.weight", "W2": "1.weight"}), tmp_path, name)


def test_uncovered_parameters_raise_unless_strict_false(tmp_path: Path) -> None:
    """An extra Linear (20 parameters: 4x4 weight + 4 bias) no rule covers: init_ and
    param_groups name both; strict=False puts them in a base-LR group with a warning."""
    gen = _mlp_module(tmp_path, "uncovered")
    net = torch.nn.Sequential(torch.nn.Linear(3, 16, bias=False),
                              torch.nn.Linear(16, 2, bias=False), torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"\['2.weight', '2.bias'\]"):
        gen.init_(net)
    with pytest.raises(ValueError, match=r"\['2.weight', '2.bias'\]"):
        gen.param_groups(net, 0.1, eps=1e-8)
    with pytest.warns(UserWarning, match="2.weight"):
        gen.init_(net, strict=False)
    with pytest.warns(UserWarning, match="base lr"):
        groups = gen.param_groups(net, 0.1, eps=1e-8, strict=False)
    extra = groups[-1]
    assert extra["lr"] == 0.1 and sum(q.numel() for q in extra["params"]) == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net[2].requires_grad_(False)  # frozen parameters need no rule
        assert sum(len(g["params"]) for g in gen.param_groups(net, 0.1, eps=1e-8)) == 2


def test_two_parameters_on_one_module_parameter_are_refused() -> None:
    p = _mlp_parametrization()
    with pytest.raises(AbcError, match=r"'W1' and 'W2' both map to module parameter "
                                       r"'0\.weight'"):
        generate(p, names={"W1": "0.weight", "W2": "0.weight"})


def test_apply_multipliers_is_idempotent(tmp_path: Path) -> None:
    """Table 8's readout multiplier 1/m (m = 16/8 = 2) applied once however often it is
    called; the generated Model applies its own and gets no hooks."""
    gen = _mlp_module(tmp_path, "idem")
    net = torch.nn.Sequential(torch.nn.Linear(3, 16, bias=False),
                              torch.nn.Linear(16, 2, bias=False))
    gen.init_(net)
    x = torch.randn(5, 3)
    plain = net(x)
    gen.apply_multipliers(net)
    gen.apply_multipliers(net)
    assert torch.allclose(net(x), plain / 2, atol=1e-6)


def test_model_applies_its_own_multipliers_once(tmp_path: Path) -> None:
    graph = tiny_attention()
    gen = load(generate(load_parametrization(graph, "adam", "table8"), model=True),
               tmp_path, "own_mult")
    model = gen.Model({"d": 16, "dh": 8})
    gen.init_(model)
    ids = torch.randint(0, 11, (2, 4))
    before = model(ids)
    assert gen.apply_multipliers(model) == []
    assert torch.equal(model(ids), before)


def test_widths_scale_every_independent_dim(tmp_path: Path) -> None:
    """Model({'d': 32}) (4x the base 8) takes dh to 4x its base 4 = 16; widths of two
    different multipliers must name every dim."""
    graph = tiny_attention(spare=True)
    gen = load(generate(load_parametrization(graph, "adam", "table8"), model=True),
               tmp_path, "widths")
    assert gen.dim_sizes({"d": 32}) == {**gen.dim_sizes({}), "d": 32, "dh": 16, "spare": 8}
    assert gen.dim_sizes({})["dh"] == 4
    assert gen.dim_sizes({"d": 32, "dh": 16})["spare"] == 8
    assert gen.dim_sizes({"d": 32, "dh": 4, "spare": 2})["dh"] == 4
    with pytest.raises(ValueError, match=r"different multipliers.*also give \['spare'\]"):
        gen.dim_sizes({"d": 32, "dh": 8})
    with pytest.raises(ValueError, match="positive integer"):
        gen.dim_sizes({"d": 0})
    with pytest.raises(KeyError, match="not an independent infinite dim"):
        gen.dim_sizes({"vocab": 3})


# -- a parsing bug the random-graph run met (builder.py) ------------------------------------
def test_a_block_parameter_name_outside_the_block_is_refused() -> None:
    """`layer.0.W` on a node outside block `layer` would silently tie into iteration 0's
    W; docs/spec.md says block parameters cannot be tied from outside."""
    b = GraphBuilder("resmlp")
    b.dim("i", size=3).dim("d", base=8).dim("o", size=1)
    b.node("x", "input", dims=["i"])
    b.node("h", "linear", inputs="x", dims=["d"], weight="layer.0.W")
    blk = b.repeat("layer", 2, input="h", carry="z", output="a")
    blk.node("a", "linear", inputs="z", dims=["d"], weight="W")
    b.node("f", "linear", inputs="layer", dims=["o"], weight="W_out")
    b.node("y", "output", inputs="f")
    with pytest.raises(AbcError, match=r"node 'h': parameter 'layer\.0\.W' takes the name "
                                       r"of a repeat block's parameter \(at 'layer\.0\.a'\)"):
        b.build()
