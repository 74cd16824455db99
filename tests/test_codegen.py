"""Generated PyTorch code: golden text, and its numbers against the symbolic solution."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import sympy

from abccalc.emit import goldens
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.errors import AbcError
from abccalc.graph.spec import load_graph
from abccalc.parametrization.rules import ALPHA, ETA, FAN_IN, SIGMA, M, ratio_rule

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mlp.yaml"
GPT = ROOT / "examples" / "gpt.yaml"


def load_module(text: str, tmp_path: Path, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_golden_text(optimizer: str) -> None:
    path = ROOT / "tests" / "golden" / f"codegen_mlp_{optimizer}.py"
    assert goldens.codegen_text(optimizer) == path.read_text()


def test_generation_is_deterministic() -> None:
    p = load_parametrization(load_graph(GPT), "adam", "table8")
    assert generate(p, model=True) == generate(p, model=True)


def test_imports_only_torch_and_math() -> None:
    text = generate(load_parametrization(load_graph(GPT), "adam", "table8"), model=True)
    imports = {line.split()[1] for line in text.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"math", "torch", "collections.abc", "typing", "warnings"}
    assert "abccalc" not in text.split('"""', 2)[2]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("variant", ["table3", "table8"])
def test_numbers_equal_the_symbolic_solution(tmp_path: Path, optimizer: str,
                                             variant: str) -> None:
    """At two widths, each weight's init std, its group LR and its multiplier equal the
    symbolic rule σ²/fan_in·m^e, α·m^e, η·m^e evaluated there (σ = α = 1, η = lr)."""
    p = load_parametrization(load_graph(MLP), optimizer, variant)
    gen = load_module(generate(p, model=True), tmp_path, f"gen_{optimizer}_{variant}")
    lr = 0.01
    for width in (512, 2048):
        torch.manual_seed(0)
        model = gen.Model({"width": width})
        gen.init_(model)
        lrs = {id(q): g["lr"] for g in gen.param_groups(model, lr, eps=1e-8) for q in g["params"]}
        mults = gen.multipliers(model)
        named = dict(model.named_parameters())
        for name, r in p.params.items():
            tensor = named[gen.PARAMETERS[name].module_param]
            rule = ratio_rule(p, r)
            fan_in = 1 if r.kind.value != "weight" else tensor.shape[1]
            m = width / 256
            at = {SIGMA: 1, ALPHA: 1, ETA: lr, M: m, FAN_IN: fan_in}
            assert lrs[id(tensor)] == pytest.approx(float(rule.lr.subs(at)), rel=1e-12)
            assert mults[name] == pytest.approx(float(rule.multiplier.subs(at)), rel=1e-12)
            if r.kind.value == "weight":
                want = math.sqrt(float(rule.init_var.subs(at)))
                assert tensor.std().item() == pytest.approx(want, rel=0.05)


def test_readout_multiplier_in_the_forward(tmp_path: Path) -> None:
    """Table 8: the readout's 1/m multiplier (TP5 Table 8, 1/fan_in) scales the logits."""
    p = load_parametrization(load_graph(MLP), "adam", "table8")
    gen = load_module(generate(p, model=True), tmp_path, "gen_readout")
    model = gen.Model({"width": 1024})
    gen.init_(model)
    x = torch.randn(3, 32)
    with torch.no_grad():
        hidden = torch.relu(model.h2(torch.relu(model.h1(x))))
        assert torch.allclose(model(x), model.f(hidden) / 4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_base_width_is_sp(tmp_path: Path, optimizer: str) -> None:
    """TP5 Eq. 4: at the base width every factor is 1, so μP equals SP."""
    g = load_graph(GPT)
    mup = load_module(generate(load_parametrization(g, optimizer, "table8"), model=True),
                      tmp_path, f"mup_{optimizer}")
    sp = load_module(generate(load_parametrization(g, optimizer, "table8", "sp"),
                              model=True), tmp_path, f"sp_{optimizer}")
    widths = {"d_model": 64, "d_head": 16}
    a, b = mup.Model(widths), sp.Model(widths)
    torch.manual_seed(1)
    mup.init_(a)
    torch.manual_seed(1)
    sp.init_(b)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    assert mup.multipliers(a) == sp.multipliers(b)
    assert a.const == pytest.approx(b.const)
    ga = [(len(x["params"]), x["lr"]) for x in mup.param_groups(a, 1e-3, eps=1e-8)]
    gb = [(len(x["params"]), x["lr"]) for x in sp.param_groups(b, 1e-3, eps=1e-8)]
    assert ga == gb


def test_attention_scale_follows_width(tmp_path: Path) -> None:
    """1/d attention written so it equals 1/sqrt(d_head) at the base d_head = 16."""
    gen = load_module(generate(load_parametrization(load_graph(GPT), "adam", "table8"),
                               model=True), tmp_path, "gen_attn")
    assert gen.scores_scale(16) == pytest.approx(1 / 4)
    assert gen.scores_scale(64) == pytest.approx(4 / 64)


def test_state_dict_round_trip_and_compile(tmp_path: Path) -> None:
    gen = load_module(generate(load_parametrization(load_graph(GPT), "adam", "table8"),
                               model=True), tmp_path, "gen_sd")
    torch.manual_seed(0)
    model = gen.Model({"d_model": 32, "d_head": 8})
    gen.init_(model)
    tokens = torch.randint(0, 256, (2, 64))
    positions = torch.arange(64).expand(2, 64)
    out = model(tokens=tokens, positions=positions)
    assert gen.INPUTS == ["positions", "tokens"]  # positional order: sorted by name
    assert torch.equal(model(positions, tokens), out)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    fresh = gen.Model({"d_model": 32, "d_head": 8})
    fresh.load_state_dict(torch.load(tmp_path / "sd.pt"))
    assert torch.equal(fresh(positions, tokens), out)
    compiled = torch.compile(fresh, backend="aot_eager")
    assert torch.allclose(compiled(positions, tokens), out, atol=1e-5)


def test_hooks_on_a_user_model_survive_state_dict_and_compile(tmp_path: Path) -> None:
    """apply_multipliers on a plain nn.Sequential: the readout input is scaled by 1/m,
    state_dict keys are unchanged, and a compiled model gives the same output."""
    p = load_parametrization(load_graph(MLP), "adam", "table8")
    names = {"W1": "0.weight", "b1": "0.bias", "W2": "2.weight", "b2": "2.bias",
             "W3": "4.weight"}
    gen = load_module(generate(p, names=names), tmp_path, "gen_user")
    net = torch.nn.Sequential(torch.nn.Linear(32, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 10, bias=False))
    keys = list(net.state_dict())
    gen.init_(net)
    x = torch.randn(4, 32)
    plain = net(x)
    gen.apply_multipliers(net)
    scaled = net(x)
    assert torch.allclose(scaled, plain / 2, atol=1e-6)  # m = 512/256
    assert list(net.state_dict()) == keys
    assert torch.allclose(torch.compile(net, backend="aot_eager")(x), scaled, atol=1e-5)


def test_name_map_errors(tmp_path: Path) -> None:
    p = load_parametrization(load_graph(MLP), "adam", "table3")
    with pytest.raises(AbcError, match="misses parameter 'W3'"):
        generate(p, names={"W1": "a.weight", "b1": "a.bias", "W2": "b.weight",
                           "b2": "b.bias"})
    with pytest.raises(AbcError, match="'W9', which is not a parameter"):
        generate(p, names={"W1": "a.weight", "b1": "a.bias", "W2": "b.weight",
                           "b2": "b.bias", "W3": "c.weight", "W9": "d.weight"})
    assert sympy.Integer(1)  # keep sympy import used for the rule evaluation above


def test_hooks_survive_distributed_data_parallel(tmp_path: Path) -> None:
    """A one-process gloo group on loopback: DDP keeps the forward pre-hook multipliers."""
    import torch.distributed as dist

    p = load_parametrization(load_graph(MLP), "adam", "table8")
    names = {"W1": "0.weight", "b1": "0.bias", "W2": "2.weight", "b2": "2.bias",
             "W3": "4.weight"}
    gen = load_module(generate(p, names=names), tmp_path, "gen_ddp")
    net = torch.nn.Sequential(torch.nn.Linear(32, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 10, bias=False))
    gen.init_(net)
    x = torch.randn(4, 32)
    plain = net(x)
    gen.apply_multipliers(net)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0,
                            world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        assert torch.allclose(ddp(x), plain / 2, atol=1e-6)
    finally:
        dist.destroy_process_group()


def test_generated_module_is_ruff_clean(tmp_path: Path) -> None:
    """The generated text passes ruff with this project's rules (E, F, W, B, I, UP, RUF)."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    for graph in (MLP, GPT, ROOT / "examples" / "archs" / "gpt_tied.yaml"):
        p = load_parametrization(load_graph(graph), "adam", "auto")
        path = tmp_path / f"gen_{Path(graph).stem}.py"
        path.write_text(generate(p, model=True))
        done = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--line-length",
                               "100", "--select", "E,F,W,B,I,UP,RUF", str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


# -- issue 12, point 10: the generated Model works for every valid spec --------------------
def _gen(tmp_path: Path, builder, name: str, optimizer: str = "adam"):
    from abccalc.emit.codegen import generate as gen_text

    p = load_parametrization(builder.build(), optimizer, "table8")
    return load_module(gen_text(p, model=True), tmp_path, name), p


def _chain(order: str = "forward"):
    """x [t, f] -> linear -> identity that reorders [t, n] to [n, t] -> readout."""
    from abccalc.graph.builder import GraphBuilder

    nodes = [("x", "input", {"dims": ["t", "f"]}),
             ("h", "linear", {"inputs": "x", "dims": ["t", "n"], "weight": "W1"}),
             ("p", "identity", {"inputs": "h", "dims": ["n", "t"]}),
             ("r", "linear", {"inputs": "p", "in_dims": ["n"], "dims": ["t", "o"],
                              "weight": "W2"}),
             ("y", "output", {"inputs": "r"})]
    b = GraphBuilder("chain")
    b.dim("t", size=3).dim("f", size=2).dim("n", base=8).dim("o", size=2)
    for name, op, kw in (nodes if order == "forward" else nodes[::-1]):
        b.node(name, op, **kw)
    return b


def test_model_does_not_depend_on_declaration_order(tmp_path: Path) -> None:
    """Nodes declared in reverse: the same text, and a forward that runs (was KeyError)."""
    from abccalc.emit.codegen import generate as gen_text

    texts = [gen_text(load_parametrization(_chain(o).build(), "adam", "table8"), model=True)
             for o in ("forward", "reverse")]
    assert texts[0] == texts[1]
    gen = load_module(texts[1], tmp_path, "gen_reverse")
    assert gen.Model({})(torch.randn(4, 3, 2)).shape == (4, 3, 2)


def test_elementwise_reorder_is_applied(tmp_path: Path) -> None:
    """identity with dims [n, t] of an [t, n] input: the readout must see h itself, so
    y = (x W1ᵀ) W2ᵀ · 1/m (Table 8's readout multiplier, m = 16/8)."""
    gen, _ = _gen(tmp_path, _chain(), "gen_reorder")
    model = gen.Model({"n": 16})
    gen.init_(model)
    x = torch.randn(4, 3, 2)
    with torch.no_grad():
        want = x @ model.h.weight.T @ model.r.weight.T / 2
        assert torch.allclose(model(x), want, atol=1e-6)


def test_dotted_node_declared_before_its_parent(tmp_path: Path) -> None:
    """`h.g` declared before `h`: both keep their modules (h.g under h)."""
    from abccalc.graph.builder import GraphBuilder

    b = GraphBuilder("dotted")
    b.dim("f", size=2).dim("n", base=8).dim("o", size=2)
    b.node("h.g", "linear", inputs="h", dims=["n"], weight="W2")
    b.node("x", "input", dims=["f"])
    b.node("h", "linear", inputs="x", dims=["n"], weight="W1")
    b.node("r", "linear", inputs="h.g", dims=["o"], weight="W3")
    b.node("y", "output", inputs="r")
    gen, _ = _gen(tmp_path, b, "gen_dotted")
    model = gen.Model({})
    gen.init_(model)
    assert sorted(dict(model.named_parameters())) == ["h.g.weight", "h.weight", "r.weight"]
    assert model(torch.randn(5, 2)).shape == (5, 2)


def test_norm_with_bias_and_no_gain_keeps_its_bias(tmp_path: Path) -> None:
    """layernorm(x) + b: the bias exists, is trained, and is added."""
    from abccalc.graph.builder import GraphBuilder

    b = GraphBuilder("normbias")
    b.dim("f", size=2).dim("n", base=8).dim("o", size=2)
    b.node("x", "input", dims=["f"])
    b.node("h", "linear", inputs="x", dims=["n"], weight="W1")
    b.node("ln", "layernorm", inputs="h", bias="bl")
    b.node("r", "linear", inputs="ln", dims=["o"], weight="W2")
    b.node("y", "output", inputs="r")
    gen, _ = _gen(tmp_path, b, "gen_normbias")
    model = gen.Model({})
    gen.init_(model)
    assert "ln.bias" in dict(model.named_parameters())
    groups = gen.param_groups(model, 0.1, eps=1e-8)
    assert any(model.ln.bias is q for g in groups for q in g["params"])
    with torch.no_grad():
        model.ln.bias.fill_(1.0)
        x = torch.randn(5, 2)
        normed = torch.nn.functional.layer_norm(model.h(x), (8,))
        assert torch.allclose(model(x), model.r(normed + 1.0), atol=1e-5)


def test_tied_readout_with_its_own_bias(tmp_path: Path) -> None:
    """An embedding E read again as the readout's weight, plus the readout's own bias
    (was refused: 'map to different modules'): logits = h (α E)ᵀ + b, α the readout's
    Table 8 multiplier at its use."""
    from abccalc.graph.builder import GraphBuilder

    b = GraphBuilder("tied")
    b.dim("v", size=5).dim("t", size=3).dim("n", base=8)
    b.node("ids", "input", dims=["t"])
    b.node("emb", "embedding", inputs="ids", vocab="v", dims=["t", "n"], weight="E")
    b.node("logits", "linear", inputs="emb", dims=["t", "v"], weight="E", bias="bz")
    b.node("y", "output", inputs="logits")
    gen, _ = _gen(tmp_path, b, "gen_tied")
    model = gen.Model({"n": 16})
    gen.init_(model)
    assert sorted(dict(model.named_parameters())) == ["emb.weight", "logits.bias"]
    ids = torch.randint(0, 5, (2, 3))
    with torch.no_grad():
        model.logits.bias.fill_(0.5)
        e = model.emb.weight
        a_emb, a_out = model.mult[("emb", "E")], model.mult[("logits", "E")]
        want = (a_emb * e[ids]) @ (a_out * e).T + 0.5
        assert torch.allclose(model(ids), want, atol=1e-5)
