"""Rules by name pattern (issue 15, points 1 and 6): one rule per family of parameters,
exact and total matching, ``--names`` patterns, fused tensors, depth-independent text."""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codegen import GPT, MLP, ROOT, load_module

from abccalc.emit import goldens
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.emit.patterns import (
    NameIndex,
    fill_pattern,
    match_pattern,
    read_name_map,
    star,
)
from abccalc.errors import AbcError
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.spec import load_graph

torch = pytest.importorskip("torch")


def test_gpt_golden_text() -> None:
    """Regenerate with `python -m abccalc.emit.goldens` (docs/contributing_ops.md)."""
    path = ROOT / "tests" / "golden" / "codegen_gpt_adam.py"
    assert goldens.codegen_gpt_text(2) == path.read_text()


def test_depth_96_equals_depth_2_but_the_base_depth() -> None:
    """The rules are keyed by pattern, so n_layer changes no line but a base-depth
    constant (``BASE_DEPTH``, where the module has one)."""
    two, deep = goldens.codegen_gpt_text(2), goldens.codegen_gpt_text(96)
    changed = [line for line in difflib.unified_diff(two.splitlines(), deep.splitlines(),
                                                     lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert all(line[1:].startswith("BASE_DEPTH") for line in changed), changed
    # 16 parameters per block (W_q/k/v/o, W_fc, W_proj, their 6 biases, 2 norm gains and
    # 2 norm biases) plus 5 outside (wte, wpe, ln_f_g, ln_f_b, W_unemb): 21 rules at any
    # depth, not 16·96 + 5
    assert two.count(": Rule(") == deep.count(": Rule(") == 21


def _two_depths(tmp_path: Path, name: str):
    """The rules of examples/gpt.yaml at n_layer 2, and a Model of n_layer 5 (from the
    module generated at that depth) with d_model 128 = 2x its base 64."""
    p2 = load_parametrization(load_graph(GPT), "adam", "table8")
    rules = load_module(generate(p2), tmp_path, f"{name}_rules")
    p5 = load_parametrization(load_graph(GPT, {"n_layer": 5}), "adam", "table8")
    deep = load_module(generate(p5, model=True), tmp_path, f"{name}_deep")
    torch.manual_seed(0)
    return rules, deep, deep.Model({"d_model": 128, "d_head": 32})


def test_rules_of_two_layers_cover_five(tmp_path: Path) -> None:
    """Every parameter of the deeper model is covered once, with the LR and init of the
    module generated for that depth. Hand values at m = 128/64 = 2 (TP5 Table 8, Adam):
    hidden weights LR η/m, input weights and biases η; the readout LR η, init var 1
    (SP's 1/fan_in times m: 2/128, std 1/8) and multiplier 1/fan_in (SP's 1 times 1/m)."""
    rules, deep, model = _two_depths(tmp_path, "cover")
    assert rules.uncovered(model) == []
    groups = rules.param_groups(model, 0.01, eps=1e-8)
    lrs = {id(q): g["lr"] for g in groups for q in g["params"]}
    assert len(lrs) == sum(1 for _ in model.parameters())
    own = {id(q): g["lr"] for g in deep.param_groups(model, 0.01, eps=1e-8) for q in g["params"]}
    assert lrs == own
    named = dict(model.named_parameters())
    assert lrs[id(named["block.4.q.weight"])] == pytest.approx(0.005)
    assert lrs[id(named["block.4.proj.weight"])] == pytest.approx(0.005)
    assert lrs[id(named["block.4.fc.bias"])] == pytest.approx(0.01)
    assert lrs[id(named["logits.weight"])] == pytest.approx(0.01)
    rules.init_(model)
    assert named["logits.weight"].std().item() == pytest.approx(1 / 8, rel=0.05)
    assert named["block.4.fc.weight"].std().item() == pytest.approx(1 / math.sqrt(128),
                                                                    rel=0.05)
    assert torch.equal(named["block.3.ln2.weight"], torch.ones(128))
    assert rules.multipliers(model)["block.4.W_q"] == 1
    assert rules.multipliers(model)["W_unemb"] == pytest.approx(0.5)
    assert rules.use_multiplier(model, "block.4.q", "block.4.W_q") == 1


def test_double_cover_and_unmatched_rules_raise(tmp_path: Path) -> None:
    """Two rules matching one tensor: ValueError naming it; a rule matching nothing:
    KeyError naming its pattern."""
    rules, _, model = _two_depths(tmp_path, "double")
    rules.PARAMETERS["also"] = rules.PARAMETERS["block.*.W_q"]
    with pytest.raises(ValueError, match=r"block\.0\.q\.weight \(block\.\*\.W_q, also\)"):
        rules.init_(model)
    with pytest.raises(ValueError, match="more than one rule"):
        rules.param_groups(model, 0.1, eps=1e-8, strict=False)
    del rules.PARAMETERS["also"]
    rules.PARAMETERS["ghost"] = rules.PARAMETERS["block.*.W_q"]._replace(
        module_param="block.*.nothing.weight")
    with pytest.raises(KeyError, match=r"block\.\*\.nothing\.weight"):
        rules.param_groups(model, 0.1, eps=1e-8)


def test_line_count_does_not_grow_with_depth() -> None:
    """±5 % between n_layer 2 and 96 (equal in fact, see the diff test above)."""
    lines = [len(goldens.codegen_gpt_text(n).splitlines()) for n in (2, 96)]
    assert abs(lines[1] - lines[0]) <= 0.05 * lines[0]


# -- --names patterns -----------------------------------------------------------------
def _resmlp(n_layer: int = 2):
    """x → W_in → n_layer × (z + relu(W z + b)) → W_out."""
    b = GraphBuilder("resmlp")
    b.dim("i", size=3).dim("d", base=8).dim("o", size=2)
    b.node("x", "input", dims=["i"])
    b.node("h", "linear", inputs="x", dims=["d"], weight="W_in")
    blk = b.repeat("layer", n_layer, input="h", carry="z", output="r")
    blk.node("a", "linear", inputs="z", dims=["d"], weight="W", bias="b")
    blk.node("act", "relu", inputs="a")
    blk.node("r", "add", inputs=["z", "act"])
    b.node("f", "linear", inputs="layer", dims=["o"], weight="W_out")
    b.node("y", "output", inputs="f")
    return b.build()


class UserNet(torch.nn.Module):
    """A hand-written residual MLP with HF-like names: ``net.h.<i>.fc``."""

    def __init__(self, d: int, n_layer: int) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(3, d, bias=False)
        self.net = torch.nn.Module()
        self.net.h = torch.nn.ModuleList(torch.nn.Linear(d, d) for _ in range(n_layer))
        self.out = torch.nn.Linear(d, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inp(x)
        for layer in self.net.h:
            z = z + torch.relu(layer(z))
        return self.out(z)


NAMES = {"W_in": "inp.weight", "layer.*.W": "net.h.*.fc.weight",
         "layer.*.b": "net.h.*.fc.bias", "W_out": "out.weight"}


def test_names_patterns_reach_a_user_model(tmp_path: Path) -> None:
    """Patterns in --names: one rule per family, covering a user model 3x deeper than
    the spec. At d = 32 (m = 4), Adam Table 8: hidden W LR η/4, the bias η, the readout's
    multiplier 1/4 applied by a pre-hook on its input."""
    names = {**NAMES, "layer.*.W": "net.h.*.weight", "layer.*.b": "net.h.*.bias"}
    p = load_parametrization(_resmlp(2), "adam", "table8")
    text = generate(p, names=names)
    assert "'layer.*.W': Rule(\n        module_param='net.h.*.weight'" in text
    gen = load_module(text, tmp_path, "user_names")
    net = UserNet(32, 6)
    gen.init_(net)
    lrs = {id(q): g["lr"] for g in gen.param_groups(net, 0.1, eps=1e-8) for q in g["params"]}
    assert len(lrs) == 2 + 12
    assert lrs[id(net.net.h[5].weight)] == pytest.approx(0.025)
    assert lrs[id(net.net.h[5].bias)] == pytest.approx(0.1)
    x = torch.randn(4, 3)
    plain = net(x)
    gen.apply_multipliers(net)
    assert torch.allclose(net(x), plain / 4, atol=1e-6)
    assert gen.multipliers(net)["layer.5.W"] == 1


def test_name_map_pattern_errors() -> None:
    p = load_parametrization(_resmlp(2), "adam", "table8")
    with pytest.raises(AbcError, match=r"pattern 'blk\.\*\.W' matches no parameter"):
        generate(p, names={**NAMES, "blk.*.W": "x.*.weight"})
    with pytest.raises(AbcError, match=r"'layer\.0\.W' is matched by both"):
        generate(p, names={**NAMES, "layer.0.W": "first.weight"})
    with pytest.raises(AbcError, match="same number of"):
        read_name_map({"layer.*.W": "net.fc.weight"}, "names.yaml")
    with pytest.raises(AbcError, match=r"names\.yaml: 'layer\.\*\.W' maps to.*'forward' is "
                                       "reserved"):
        read_name_map({"layer.*.W": "net.*.forward"}, "names.yaml")


def test_a_pattern_that_would_cover_another_parameter_stays_exact() -> None:
    """Module names `0.weight`, `1.weight`, `2.weight` (an nn.Sequential): the hidden
    `1.weight` alone has its rule, so `*.weight` would also meet the others; each keeps
    its own name."""
    p = load_parametrization(_resmlp(1), "adam", "table8")
    text = generate(p, names={"W_in": "0.weight", "layer.0.W": "1.weight",
                              "layer.0.b": "1.bias", "W_out": "2.weight"})
    assert "'*" not in text and "'layer.0.W': Rule(" in text


@given(st.lists(st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True),
                          st.integers(0, 10**6).map(str)), min_size=1, max_size=6))
def test_starred_name_matches_itself(segs: list[str]) -> None:
    """star(name) matches name, its captures are the digit components, and filling them
    in gives the name back; `*` never crosses a dot."""
    name = ".".join(segs)
    pattern, digits = star(name)
    got = match_pattern(pattern, name)
    assert got == list(digits)
    assert fill_pattern(pattern, got) == name
    assert match_pattern(pattern, name + ".x") is None
    if digits:
        assert match_pattern(pattern, name.replace(digits[0], f"{digits[0]}.9", 1)) is None


SEGMENT = st.sampled_from(["a", "b", "ab", "0", "1", "12"])
NAME = st.lists(SEGMENT, min_size=1, max_size=4).map(".".join)


@given(st.lists(NAME, max_size=12, unique=True),
       st.lists(st.sampled_from(["a", "b", "ab", "0", "*", "a*", "*b", "*1*"]), min_size=1,
                max_size=4).map(".".join))
def test_name_index_finds_what_a_scan_finds(names: list[str], pattern: str) -> None:
    """The index that spares codegen a scan per pattern returns exactly the names a scan
    matches, each once."""
    want = sorted(n for n in names if match_pattern(pattern, n) is not None)
    assert sorted(NameIndex(names).others(pattern, set())) == want


# -- fused tensors ----------------------------------------------------------------------
def _fused_graph(separate: bool):
    """x[i] → h[d] → Q, K, V [d] → q·k over d, a mix → readout: one W_qkv [3d, d] cut by
    slice nodes, or three parameters W_q, W_k, W_v."""
    b = GraphBuilder("fused")
    b.dim("t", size=4).dim("t_k", size=4).dim("d", base=8).dim("qkv", times=3, of="d")
    b.dim("dq", base=8).dim("dk", base=8).dim("dv", base=8).dim("o", size=2).dim("i", size=3)
    b.node("x", "input", dims=["t", "i"])
    b.node("h", "linear", inputs="x", dims=["t", "d"], weight="W_in")
    if separate:
        for part, dim in (("q", "dq"), ("k", "dk"), ("v", "dv")):
            b.node(part, "linear", inputs="h", dims=["t", dim], weight=f"W_{part}")
    else:
        b.node("x_qkv", "linear", inputs="h", dims=["t", "qkv"], weight="W_qkv")
        for i, part in enumerate(("q", "k", "v")):
            b.node(part, "slice", inputs="x_qkv", along="qkv", parts=["dq", "dk", "dv"],
                   index=i)
    b.node("s", "contract", inputs=["q", "k"], over=["dq"], rename={"t": "t_k",
                                                                      "dk": "dq"},
           dims=["t", "t_k"])
    b.node("pr", "softmax", inputs="s", over="t_k")
    b.node("mix", "contract", inputs=["pr", "v"], over=["t_k"], rename={"t": "t_k"},
           dims=["t", "dv"])
    b.node("f", "linear", inputs="mix", dims=["t", "o"], weight="W_out")
    b.node("y", "output", inputs="f")
    return b.build()


class FusedNet(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(3, d, bias=False)
        self.c_attn = torch.nn.Linear(d, 3 * d, bias=False)
        self.out = torch.nn.Linear(d, 2, bias=False)


def test_fused_in_the_graph_is_one_rule(tmp_path: Path) -> None:
    """W_qkv is one parameter (its parts share the hidden role): one rule, LR η/m."""
    p = load_parametrization(_fused_graph(False), "adam", "table8")
    gen = load_module(generate(p, names={"W_qkv": "c_attn.weight", "W_out": "out.weight",
                                            "W_in": "inp.weight"}),
                      tmp_path, "fused_one")
    assert set(gen.PARAMETERS) == {"W_in", "W_qkv", "W_out"}
    assert gen.PARAMETERS["W_qkv"].part is None
    net = FusedNet(32)
    lrs = {id(q): g["lr"] for g in gen.param_groups(net, 0.1, eps=1e-8) for q in g["params"]}
    assert lrs[id(net.c_attn.weight)] == pytest.approx(0.1 / 4)


def test_parts_of_a_fused_tensor_get_a_rule_each(tmp_path: Path) -> None:
    """W_q, W_k, W_v mapped onto thirds of one c_attn.weight: init per part (sigmas zero
    the query rows only; the others std 1/sqrt(fan_in = 32)), one optimizer group entry
    for the tensor (LR η/m, m = 4), and a missing part is uncovered."""
    p = load_parametrization(_fused_graph(True), "adam", "table8")
    names = {"W_q": "c_attn.weight[0/3]", "W_k": "c_attn.weight[1/3]",
             "W_v": "c_attn.weight[2/3]", "W_out": "out.weight", "W_in": "inp.weight"}
    text = generate(p, names=names)
    assert "part=(0, 1, 3)," in text and "Fused tensors." in text
    gen = load_module(text, tmp_path, "fused_parts")
    net = FusedNet(32)
    torch.manual_seed(0)
    gen.init_(net, sigmas={"W_q": 0.0})
    w = net.c_attn.weight
    assert torch.equal(w[:32], torch.zeros(32, 32))
    assert w[32:].std().item() == pytest.approx(1 / math.sqrt(32), rel=0.05)
    groups = gen.param_groups(net, 0.1, eps=1e-8)
    assert sum(len(g["params"]) for g in groups) == 3
    assert next(g["lr"] for g in groups if g["params"][0] is w) == pytest.approx(0.025)
    del gen.PARAMETERS["W_v"]
    with pytest.raises(ValueError, match=r"only some parts of a fused tensor.*c_attn"):
        gen.init_(net)


def test_fused_parts_with_different_lr_rules_are_refused() -> None:
    """MLP W1 (input weight, Adam LR η) and W2 (hidden, η/m) in one tensor: refused."""
    p = load_parametrization(load_graph(MLP), "adam", "table8")
    names = {"W1": "a.weight[0/2]", "W2": "a.weight[1/2]", "b1": "a.bias", "b2": "b.bias",
             "W3": "c.weight"}
    with pytest.raises(AbcError, match="different LR rules"):
        generate(p, names=names)
    with pytest.raises(AbcError, match=r"each part i/n of one split once"):
        generate(p, names={**names, "W2": "a.weight[0/2]"})


def _state_dict_named(n_layer: int):
    """A graph keyed by state_dict names, as the model importer builds it: parameters
    `transformer.h.<i>.fc.weight`, no repeat block."""
    b = GraphBuilder("imported")
    b.dim("i", size=3).dim("d", base=8).dim("o", size=2)
    b.node("x", "input", dims=["i"])
    b.node("inp", "linear", inputs="x", dims=["d"], weight="inp.weight")
    last = "inp"
    for i in range(n_layer):
        b.node(f"transformer.h.{i}.fc", "linear", inputs=last, dims=["d"],
               weight=f"transformer.h.{i}.fc.weight", bias=f"transformer.h.{i}.fc.bias")
        last = f"transformer.h.{i}.fc"
    b.node("out", "linear", inputs=last, dims=["o"], weight="out.weight")
    b.node("y", "output", inputs="out")
    return b.build()


def test_state_dict_names_give_module_path_patterns(tmp_path: Path) -> None:
    """Graph names = module names (the importer's contract): the digit components of the
    module path become the pattern, the same text at 2 and 7 layers, covering a model
    of 4 (Adam Table 8 at d = 16, m = 2: hidden LR η/2)."""
    texts = []
    for n in (2, 7):
        graph = _state_dict_named(n)
        p = load_parametrization(graph, "adam", "table8")
        texts.append(generate(p, names={q: q for q in graph.params}))
    assert texts[0] == texts[1]
    assert ("'transformer.h.*.fc.weight': Rule(\n"
            "        module_param='transformer.h.*.fc.weight'") in texts[0]
    gen = load_module(texts[0], tmp_path, "imported_names")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(3, 16, bias=False)
            self.transformer = torch.nn.Module()
            self.transformer.h = torch.nn.ModuleList(
                torch.nn.ModuleDict({"fc": torch.nn.Linear(16, 16)}) for _ in range(4))
            self.out = torch.nn.Linear(16, 2, bias=False)

    net = Net()
    lrs = {id(q): g["lr"] for g in gen.param_groups(net, 0.1, eps=1e-8) for q in g["params"]}
    assert len(lrs) == 10 and lrs[id(net.transformer.h[3].fc.weight)] == pytest.approx(0.05)


def test_cli_names_file_with_patterns(run, tmp_path: Path) -> None:
    """`abccalc codegen --names` reads patterns; a bad one is one line and exit 2."""
    spec = tmp_path / "resmlp.yaml"
    spec.write_text((ROOT / "docs" / "spec.md").read_text().split(
        "Example, a residual MLP:\n\n```yaml\n")[1].split("```")[0])
    good = tmp_path / "names.yaml"
    good.write_text("W_in: inp.weight\nlayer.*.W: net.h.*.weight\nlayer.*.b: net.h.*.bias\n"
                    "W_out: out.weight\n")
    out = tmp_path / "mup.py"
    code, _, err = run("codegen", str(spec), "--optimizer", "adam", "--names", str(good),
                       "-o", str(out))
    assert code == 0, err
    assert "'layer.*.W': Rule(\n        module_param='net.h.*.weight'" in out.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer.*.W: net.h.weight\n")
    code, _, err = run("codegen", str(spec), "--optimizer", "adam", "--names", str(bad),
                       "-o", str(tmp_path / "bad.py"))
    assert code == 2 and "same number of '*'" in err and len(err.strip().splitlines()) == 1


def test_group_scales_carry_eps_and_weight_decay(tmp_path: Path) -> None:
    """group_scales carries eps and weight decay besides the LR (m = 4 at d = 32, base 8;
    Table 8, Adam). A weight's gradient entry is ∂L/∂h_i·x_j (an outer product, no sum):
    ∂L/∂h is Θ(1/n) under the 1/n readout and x is Θ(1), so eps ∝ 1/n for the hidden W
    (fan_in infinite: 1/m) and the input W (fan_out infinite: 1/m) alike (docs/depth.md
    §4). Weight decay ∝ 1/LR keeps lr·λ: hidden LR 1/m gets λ·m, input LR 1 gets λ. An
    eps the rules scale must be passed."""
    p = load_parametrization(_resmlp(2), "adam", "table8")
    gen = load_module(generate(p, names=NAMES), tmp_path, "hyper")
    net = UserNet(32, 3)
    net.net.h = torch.nn.ModuleList(torch.nn.ModuleDict({"fc": layer}) for layer in net.net.h)
    with pytest.raises(TypeError, match=r"scale \['eps'\].*eps=\.\.\."):
        gen.param_groups(net, 0.1)
    groups = gen.param_groups(net, 0.1, eps=1e-8, weight_decay=0.1)
    hidden = next(g for g in groups if g["params"][0] is net.net.h[0].fc.weight)
    assert hidden["eps"] == pytest.approx(2.5e-9) and hidden["eps_scale"] == 0.25
    assert hidden["lr"] == pytest.approx(0.025)
    assert hidden["weight_decay"] == pytest.approx(0.4) and hidden["weight_decay_scale"] == 4
    other = next(g for g in groups if g["params"][0] is net.inp.weight)
    assert other["eps"] == pytest.approx(2.5e-9) and other["lr"] == pytest.approx(0.1)
    assert other["weight_decay"] == pytest.approx(0.1)
    assert len(torch.optim.AdamW(groups).param_groups) == len(groups)
