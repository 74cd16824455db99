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


def module(tmp_path: Path, alpha, depth: int = 4, hyper: bool = False, base: bool = True):
    b = load_builder(GPT, {"n_layer": str(depth), **SIZES})
    if base:
        b.set_base("n_layer", "2")
    b.set("d_model", "16")
    b.set("d_head", "8")
    p = parametrize(solve(b.build(), Optimizer.ADAM), "table8", depth_alpha=alpha)
    path = tmp_path / f"gen_{depth}_{str(alpha).replace('/', '_')}.py"
    path.write_text(generate(p, model=True, hyper=hyper))
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


def test_param_groups_hyper_per_tensor(tmp_path: Path) -> None:
    gen = module(tmp_path, HALF, depth=8)
    model = gen.Model({"d_model": 32, "d_head": 16})  # m_N = 2, m_L = 8/2 = 4
    lr, eps, wd = 1e-3, 1e-8, 0.1
    groups = gen.param_groups_hyper(model, lr, eps=eps, weight_decay=wd)
    named = {id(p): n for n, p in model.named_parameters()}
    got = {named[id(p)]: g for g in groups for p in g["params"]}
    w = got["block.3.fc.weight"]
    # hidden, in a branch, α = 1/2: LR η·m_N^-1·m_L^-1/2, ε·m_N^-1·m_L^-1/2,
    # torch decay λ·m_N·m_L^1/2 (λ ∝ 1/LR)
    assert w["lr"] == pytest.approx(lr / 2 / 2)
    assert w["eps"] == pytest.approx(eps / 2 / 2)
    assert w["weight_decay"] == pytest.approx(wd * 2 * 2)
    e = got["tok_emb.weight"]  # embedding, outside: LR η, ε·m_N^-1, λ
    assert (e["lr"], e["eps"], e["weight_decay"]) == pytest.approx((lr, eps / 2, wd))
    off = gen.param_groups_hyper(model, lr, weight_decay=wd, decay_bias_and_norm=False)
    got = {named[id(p)]: g for g in off for p in g["params"]}
    assert got["block.3.fc.bias"]["weight_decay"] == 0.0
    assert got["block.3.ln1.weight"]["weight_decay"] == 0.0
    assert got["block.3.fc.weight"]["weight_decay"] == pytest.approx(wd * 4)
    ind = gen.param_groups_hyper(model, lr, weight_decay=wd, decay="independent")
    assert {g["weight_decay"] for g in ind} == {0.0}
    assert {g["independent_weight_decay"] for g in ind} == {wd}
    torch.optim.AdamW(groups).step()  # torch accepts the groups
    with pytest.raises(ValueError, match="decay must be"):
        gen.param_groups_hyper(model, lr, decay="l2")


def test_hyper_without_depth_has_unit_depth_factors(tmp_path: Path) -> None:
    gen = module(tmp_path, ONE, depth=2, hyper=True, base=False)
    assert (gen.BASE_DEPTH, gen.DEPTH, gen.BRANCHES) == (1, 1, {})
    assert {h.lr_depth for h in gen.HYPER.values()} == {0.0}


def test_depth_sweep_quick_run_and_merge(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import depth_sweep

    out = tmp_path / "runs"
    depth_sweep.main(["run", "--quick", "--procs", "1", "--steps", "4", "--log2-lrs=-8,-6,-4",
                      "--out", str(out)])
    runs = [json.loads(x) for x in (out / "runs_0.jsonl").read_text().splitlines()]
    assert len(runs) == 2 * 2 * 3  # params × depths × LRs
    by = {(r["param"], r["depth"], r["log2_lr"]): r for r in runs}
    # at the base depth CompleteP is width-only μP: the same model, the same loss
    for lr in (-8, -6, -4):
        assert by[("completep", 2, lr)]["val_loss"] == by[("mup", 2, lr)]["val_loss"]
    assert by[("completep", 4, -6)]["branch_multiplier"] == 0.5
    depth_sweep.main(["run", "--quick", "--procs", "1", "--out", str(out)])  # all done
    assert len((out / "runs_0.jsonl").read_text().splitlines()) == 12
    depth_sweep.main(["merge", str(out / "runs_0.jsonl"), "-o", str(tmp_path / "s.json")])
    s = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert set(s) == {"completep", "mup"}
    assert (tmp_path / "s.png").exists()


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
