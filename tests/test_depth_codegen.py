"""Generated code on a depth axis (issue 16 point 5; issue 15 point 5): the branch
multipliers in the Model's forward, BASE_DEPTH, and per-group LR, eps and weight decay;
and the depth sweep's quick run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.emit.codegen import generate
from abccalc.exponents import HALF, ONE, Optimizer
from abccalc.graph.spec import load_builder
from abccalc.parametrization.gauges import parametrize

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
SIZES = {"n_head": "2", "ctx": "8", "ctx_k": "8"}


def module(tmp_path: Path, alpha, depth: int = 4, base: bool = True,
           optimizer: Optimizer = Optimizer.ADAM):
    b = load_builder(GPT, {"n_layer": str(depth), **SIZES})
    if base:
        b.set_base("n_layer", "2")
    b.set("d_model", "16")
    b.set("d_head", "8")
    p = parametrize(solve(b.build(), optimizer), "table8", depth_alpha=alpha)
    path = tmp_path / f"gen_{depth}_{str(alpha).replace('/', '_')}_{optimizer.value}.py"
    path.write_text(generate(p, model=True))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_applies_the_branch_multiplier(tmp_path: Path) -> None:
    gen = module(tmp_path, ONE, depth=4)
    # (L / BASE_DEPTH)^-α = (4/2)^-1
    assert (gen.BASE_DEPTH, gen.DEPTH, gen.BRANCH_MULTIPLIER) == (2, 4, 0.5)
    assert gen.branch_multiplier(16) == 0.125
    torch.manual_seed(0)
    model = gen.Model({"d_model": 32, "d_head": 16})
    gen.init_(model)
    tokens = torch.randint(0, 256, (2, 8))
    cap: dict = {}
    model(tokens=tokens, positions=torch.arange(8).expand(2, 8), capture=cap)
    for i in range(4):
        prev = "emb" if i == 0 else f"block.{i - 1}.r2"
        torch.testing.assert_close(cap[f"block.{i}.r1"], cap[prev] + 0.5 * cap[f"block.{i}.o"])
        torch.testing.assert_close(cap[f"block.{i}.r2"],
                                   cap[f"block.{i}.r1"] + 0.5 * cap[f"block.{i}.proj"])


@pytest.mark.parametrize(("alpha", "mult"), [("1", 0.25), ("1/2", 0.5)])
def test_cli_model_at_depth_8_from_base_2(run, tmp_path: Path, alpha: str, mult: float
                                           ) -> None:
    """``--base n_layer=2 --set n_layer=8``: every branch add of the generated Model is
    x + (L/2)^-α·f(x) with the multiplier on the branch (attention output ``o``, MLP
    output ``proj``), never on the stream: (8/2)^-1 = 1/4, (8/2)^-1/2 = 1/2."""
    out = tmp_path / f"gen_cli_{alpha.replace('/', '_')}.py"
    code, _, err = run("codegen", str(GPT), "--optimizer", "adam", "--model", "--base",
                       "n_layer=2", "--set", "n_layer=8", "--depth-alpha", alpha,
                       *(x for k, v in SIZES.items() for x in ("--set", f"{k}={v}")),
                       "-o", str(out))
    assert code == 0, err
    spec = importlib.util.spec_from_file_location(out.stem, out)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.BRANCH_MULTIPLIER == mult
    torch.manual_seed(0)
    model = gen.Model({"d_model": 32, "d_head": 16})
    gen.init_(model)
    cap: dict = {}
    model(tokens=torch.randint(0, 256, (2, 8)), positions=torch.arange(8).expand(2, 8),
          capture=cap)
    for i in range(8):
        x = cap["emb" if i == 0 else f"block.{i - 1}.r2"]
        torch.testing.assert_close(cap[f"block.{i}.r1"], x + mult * cap[f"block.{i}.o"])
        torch.testing.assert_close(cap[f"block.{i}.r2"],
                                   cap[f"block.{i}.r1"] + mult * cap[f"block.{i}.proj"])
    # the multiplier is live: the unscaled sum differs by (1 - mult)·f(x), far above rounding
    assert not torch.allclose(cap["block.7.r2"], cap["block.7.r1"] + cap["block.7.proj"])


def by_name(model, groups: list[dict]) -> dict[str, dict]:
    named = {id(p): n for n, p in model.named_parameters()}
    return {named[id(p)]: g for g in groups for p in g["params"]}


def test_param_groups_per_tensor_lr_eps_and_decay(tmp_path: Path) -> None:
    gen = module(tmp_path, HALF, depth=8)
    model = gen.Model({"d_model": 32, "d_head": 16})  # m_N = 2, m_L = 8/2 = 4
    lr, eps, wd = 1e-3, 1e-7, 0.1
    groups = gen.param_groups(model, lr, eps=eps, weight_decay=wd)
    got = by_name(model, groups)
    w = got["block.3.fc.weight"]
    # hidden, in a branch, α = 1/2: LR η·m_N^-1·m_L^-1/2, ε·m_N^-1·m_L^-1/2,
    # torch decay λ·m_N·m_L^1/2 (λ ∝ 1/LR)
    assert w["lr"] == pytest.approx(lr / 2 / 2)
    assert w["eps"] == pytest.approx(eps / 2 / 2)
    assert w["weight_decay"] == pytest.approx(wd * 2 * 2)
    assert w["lr"] * w["weight_decay"] == pytest.approx(lr * wd)  # the decay timescale
    e = got["tok_emb.weight"]  # embedding, outside: LR η, ε·m_N^-1, λ
    assert (e["lr"], e["eps"], e["weight_decay"]) == pytest.approx((lr, eps / 2, wd))
    with pytest.raises(TypeError, match=r"scale \['eps'\]"):  # eps is scaled: pass it
        gen.param_groups(model, lr)
    off = by_name(model, gen.param_groups(model, lr, eps=eps, weight_decay=wd,
                                          decay_bias_and_norm=False))
    assert off["block.3.fc.bias"]["weight_decay"] == 0.0
    assert off["block.3.ln1.weight"]["weight_decay"] == 0.0
    assert off["block.3.fc.weight"]["weight_decay"] == pytest.approx(wd * 4)
    ind = gen.param_groups(model, lr, eps=eps, weight_decay=wd, decay="independent")
    assert {g["weight_decay"] for g in ind} == {0.0}
    assert {g["independent_weight_decay"] for g in ind} == {wd}
    torch.optim.AdamW(groups).step()  # torch accepts the groups
    with pytest.raises(ValueError, match="decay must be"):
        gen.param_groups(model, lr, eps=eps, decay="l2")


def test_schedulers_keep_the_depth_lr_factor(tmp_path: Path) -> None:
    """α = 1/2 gives hidden weights in a branch an LR depth factor m_L^-1/2 (TP6): a
    scheduler must keep it as it keeps the width scale (lr_scale carries both)."""
    gen = module(tmp_path, HALF, depth=8)
    model = gen.Model({"d_model": 32, "d_head": 16})  # m_N = 2, m_L = 4
    lr = 1e-2
    opt = torch.optim.AdamW(gen.param_groups(model, lr, eps=1e-8))
    fc = by_name(model, opt.param_groups)["block.3.fc.weight"]
    assert fc["lr_scale"] == pytest.approx(1 / 2 / 2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    for _ in range(3):
        opt.step()
        sched.step()
    assert gen.check_lr_scales(opt) == pytest.approx(lr / 8)
    assert fc["lr"] == pytest.approx(lr / 8 / 4)
    opt = torch.optim.AdamW(gen.param_groups(model, lr, eps=1e-8))
    one = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=gen.lr_scales(opt, lr),
                                              total_steps=10)
    for _ in range(5):
        opt.step()
        one.step()
    base = gen.check_lr_scales(opt)
    assert by_name(model, opt.param_groups)["block.3.fc.weight"]["lr"] == \
        pytest.approx(base / 4)
    bad = torch.optim.AdamW(gen.param_groups(model, lr, eps=1e-8))
    torch.optim.lr_scheduler.OneCycleLR(bad, max_lr=lr, total_steps=10)  # absolute LRs
    with pytest.raises(ValueError, match="absolute LRs"):
        gen.check_lr_scales(bad)


def test_no_depth_axis_no_depth_section(tmp_path: Path) -> None:
    gen = module(tmp_path, ONE, depth=2, base=False, optimizer=Optimizer.SGD)
    assert not hasattr(gen, "BASE_DEPTH") and not hasattr(gen, "BRANCHES")
    model = gen.Model({"d_model": 32, "d_head": 16})  # m = 2
    got = by_name(model, gen.param_groups(model, 0.1, weight_decay=0.01))
    # SGD, Table 8 gauge: hidden LR η (c = 0): λ unscaled; embedding LR η·m (c = -1,
    # fan_out infinite): λ/m keeps lr·λ; SGD has no eps
    assert got["block.1.fc.weight"]["weight_decay"] == pytest.approx(0.01)
    e = got["tok_emb.weight"]
    assert e["lr"] * e["weight_decay"] == pytest.approx(0.1 * 0.01)
    assert "eps" not in e


def test_depth_sweep_quick_run_and_merge(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import depth_sweep

    out = tmp_path / "runs"
    depth_sweep.main(["run", "--quick", "--procs", "1", "--steps", "4", "--log2-lrs=-8,-6,-4",
                      "--out", str(out)])
    runs = [json.loads(x) for x in (out / "runs_0.jsonl").read_text().splitlines()]
    assert len(runs) == 3 * 2 * 3  # params × depths × LRs
    by = {(r["param"], r["depth"], r["log2_lr"]): r for r in runs}
    # at the base depth CompleteP and Depth-μP are width-only μP: the same model and loss
    for lr in (-8, -6, -4):
        assert by[("completep", 2, lr)]["val_loss"] == by[("mup", 2, lr)]["val_loss"]
        assert by[("depthmup", 2, lr)]["val_loss"] == by[("mup", 2, lr)]["val_loss"]
    assert by[("completep", 4, -6)]["branch_multiplier"] == 0.5  # (4/2)^-1
    assert by[("depthmup", 4, -6)]["branch_multiplier"] == pytest.approx(2 ** -0.5)
    assert (by[("mup", 4, -6)]["beta2"], by[("mup", 4, -6)]["clip"]) == (0.95, 1.0)
    depth_sweep.main(["run", "--quick", "--procs", "1", "--out", str(out)])  # all done
    assert len((out / "runs_0.jsonl").read_text().splitlines()) == 18
    depth_sweep.main(["merge", str(out / "runs_0.jsonl"), "-o", str(tmp_path / "s.json")])
    s = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert set(s) == {"completep", "depthmup", "mup"}
    assert (tmp_path / "s.png").exists()



def test_depth_sweep_qk_norm_arms(tmp_path: Path) -> None:
    """The QK-LayerNorm arms train benchmarks/gpt_qknorm.yaml: its generated Model has a
    LayerNorm on q and on k (their gains are parameters), and at the base depth CompleteP
    and width-only μP are again the same model."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import depth_sweep

    out = tmp_path / "runs"
    depth_sweep.main(["run", "--quick", "--procs", "1", "--steps", "3", "--log2-lrs=-8,-6,-4",
                      "--params", "completep_qk,mup_qk", "--out", str(out)])
    runs = [json.loads(x) for x in (out / "runs_0.jsonl").read_text().splitlines()]
    by = {(r["param"], r["depth"], r["log2_lr"]): r for r in runs}
    assert len(by) == 2 * 2 * 3
    for lr in (-8, -6, -4):
        assert by[("completep_qk", 2, lr)]["val_loss"] == by[("mup_qk", 2, lr)]["val_loss"]
    modules = sorted((out / "gen").glob("gpt_*_qk_*.py"))
    assert len(modules) == 4  # 2 arms × depths 2, 4
    for module in modules:
        text = module.read_text()
        assert "lnq_g" in text and "lnk_g" in text, module.name


def test_qk_layernorm_spec_exponents() -> None:
    """benchmarks/gpt_qknorm.yaml (the sweep's QK arms): a LayerNorm over d_head on q and k
    has Θ(1) inputs and outputs, so its gain and bias are input-like vectors (table8, Adam:
    a = b = c = 0, as every other norm gain) and q, k stay hidden weights (c = 1); the
    normalized q·k is still a sum of d_head correlated terms, so the score constant keeps
    its exponent 1 (1/d_head, TP5 Def. 4.1)."""
    from abccalc.graph.spec import load_graph

    p = parametrize(solve(load_graph(ROOT / "benchmarks" / "gpt_qknorm.yaml"), Optimizer.ADAM),
                    "table8")
    for name in ("lnq_g", "lnq_b", "lnk_g", "lnk_b"):
        rule = p.params[f"block.1.{name}"]
        assert (rule.role.value, rule.b_exp, rule.c_exp) == ("input", 0, 0), name
        assert set(rule.a_exp.values()) == {0}, name
    assert p.params["block.1.W_q"].c_exp == ONE and p.params["block.1.W_k"].c_exp == ONE
    assert p.constants["block.1.scores"] == ONE

def test_depth_sweep_summary_of_known_curves() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import depth_sweep

    curve = {2: {-8: 1.6, -7: 1.5, -6: 1.7}, 4: {-8: 1.55, -7: 1.45, -6: 1.6},
             8: {-8: 1.5, -7: 1.52, -6: 1.7}}
    runs = [{"param": "completep", "depth": d, "log2_lr": lr, "seed": 0, "val_loss": v}
            for d, c in curve.items() for lr, v in c.items()]
    s = depth_sweep.summarize(runs)["completep"]
    assert s["optimum_moves_steps"] == 1  # -7, -7, -8
    assert s["base_lr_penalty_deepest"] == pytest.approx(1.52 / 1.5 - 1)
    assert s["best_loss_monotone"] is False  # best 1.5, 1.45, then 1.5 again
    assert [b["interior"] for b in s["best"].values()] == [True, True, False]  # -8: edge


@pytest.mark.parametrize("model", [False, True])
def test_depth_module_does_not_grow_with_depth(model: bool) -> None:
    """Issue 15's pattern rules hold on a depth axis: the module at L = 4 and L = 96 differ
    only in DEPTH (rules, group scales and BRANCHES are per pattern) and, with the Model,
    in its ModuleList's count (the Block class applies BRANCH_MULTIPLIER, one global)."""
    def text(depth: int) -> list[str]:
        b = load_builder(GPT, {"n_layer": str(depth), **SIZES})
        b.set_base("n_layer", "2")
        p = parametrize(solve(b.build(), Optimizer.ADAM), "table8")
        return generate(p, model=model).splitlines()

    a, b = text(4), text(96)
    assert len(a) == len(b)
    block = "        self.block = torch.nn.ModuleList(Block(s) for _ in range({}))"
    assert [(x, y) for x, y in zip(a, b, strict=True) if x != y] == [
        ("DEPTH = 4", "DEPTH = 96"), *([(block.format(4), block.format(96))] if model else [])]
    assert "    'block.*.r1': 0," in a
    if model:
        assert "        r1 = x + self.const['r1'] * o" in a
        assert "            'r1': BRANCH_MULTIPLIER," in a


def test_width_scaled_eps_without_an_infinite_fan_is_refused() -> None:
    """With no infinite fan the code's m is 1: a hidden weight's ε ∝ 1/n cannot ride on it,
    so codegen refuses rather than emit an unscaled ε (k = 0 forced here)."""
    from abccalc.emit.codegen_depth import group_scales
    from abccalc.errors import AbcError
    from abccalc.exponents import ZERO

    b = load_builder(GPT, {"n_layer": "2", **SIZES})
    p = parametrize(solve(b.build(), Optimizer.ADAM), "table8")
    r = p.params["block.0.W_fc"]
    assert "'eps': lambda m: 1/m," in "\n".join(group_scales(p, r, -ONE, 1))
    with pytest.raises(AbcError, match=r"'block\.0\.W_fc' has no infinite fan"):
        group_scales(p, r, ZERO, 0)


@pytest.mark.parametrize("optimizer", [Optimizer.MUON, Optimizer.LAMB])
def test_depth_axis_refused_for_optimizers_without_a_depth_rule(optimizer) -> None:
    """Depth exponents are derived for SGD and Adam-like updates only (TP6, CompleteP);
    Muon/LAMB would silently get SGD's (hidden LR × L^(2α−1))."""
    from abccalc.errors import AbcError

    b = load_builder(GPT, {"n_layer": "4", **SIZES})
    b.set_base("n_layer", "2")
    p = parametrize(solve(b.build(), optimizer), "table8")
    with pytest.raises(AbcError, match="depth exponents are derived for SGD and Adam"):
        generate(p)
