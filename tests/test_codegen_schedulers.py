"""LR schedulers keep the width scaling (issue 15, point 4): each group's LR over the
scheduled base LR stays its derived scale m^e (TP5 Eq. 4), step after step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_codegen import MLP, load_module

from abccalc.emit.codegen import generate, load_parametrization
from abccalc.graph.spec import load_graph
from abccalc.parametrization.rules import ratio_exponents

torch = pytest.importorskip("torch")
sched = pytest.importorskip("torch.optim.lr_scheduler")

LR, STEPS, WIDTH = 1e-2, 12, 1024  # m = 1024 / 256 = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """The MLP of TP5 Eq. 3 (Table 8, Adam) at width 1024, and each parameter's derived
    LR scale m^e, e the LR exponent of ratio_exponents (from the solution, not the
    module): the hidden W2 gets 1/m = 1/4 (Adam LR 1/fan_in), W1, the biases and the
    readout W3 (Table 8: Adam LR 1) get 1."""
    p = load_parametrization(load_graph(MLP), "adam", "table8")
    gen = load_module(generate(p, model=True), Path(tmp_path_factory.mktemp("sched")),
                      "gen_sched")
    model = gen.Model({"width": WIDTH})
    named = dict(model.named_parameters())
    m = WIDTH / 256
    want = {id(named[gen.PARAMETERS[n].module_param]): m ** float(ratio_exponents(p, r)[2])
            for n, r in p.params.items()}
    assert sorted(want.values()) == [0.25, 1, 1, 1, 1]
    return gen, model, want


def _reference(make) -> list[float]:
    """The base LR the scheduler gives one group of LR ``LR`` (scale 1), step by step."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    s = make(opt, LR)
    out = []
    for _ in range(STEPS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


SCHEDULERS = {
    "lambda": lambda opt, lr: sched.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 4)),
    "onecycle": lambda opt, lr: sched.OneCycleLR(opt, max_lr=lr, total_steps=STEPS + 1),
    "cosine": lambda opt, lr: sched.CosineAnnealingLR(opt, T_max=STEPS // 2),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_schedulers_keep_each_groups_width_scale(setup, name: str) -> None:
    """As documented: LambdaLR and CosineAnnealingLR (eta_min 0) as they are, OneCycleLR
    with max_lr=lr_scales(opt, peak); every group's lr = base(t) · m^e at every step."""
    gen, model, want = setup
    opt = torch.optim.AdamW(gen.param_groups(model, LR, eps=1e-8))
    make = SCHEDULERS[name]
    s = make(opt, gen.lr_scales(opt, LR)) if name == "onecycle" else make(opt, LR)
    for base in _reference(make):
        for group in opt.param_groups:
            scales = {want[id(q)] for q in group["params"]}
            assert len(scales) == 1 and group["lr_scale"] == pytest.approx(scales.pop())
            assert group["lr"] == pytest.approx(base * group["lr_scale"], rel=1e-9)
        assert gen.check_lr_scales(opt) == pytest.approx(base, rel=1e-9)
        opt.step()
        s.step()


@pytest.mark.parametrize("make", [
    lambda opt, lr: sched.OneCycleLR(opt, max_lr=lr, total_steps=STEPS + 1),
    lambda opt, lr: sched.CosineAnnealingLR(opt, T_max=STEPS // 2, eta_min=lr / 10),
], ids=["onecycle-scalar-max_lr", "cosine-eta_min"])
def test_absolute_lrs_lose_the_scale_and_are_caught(setup, make) -> None:
    """The trap: one absolute max_lr or floor for every group; check_lr_scales raises."""
    gen, model, _ = setup
    opt = torch.optim.AdamW(gen.param_groups(model, LR, eps=1e-8))
    s = make(opt, LR)
    with pytest.raises(ValueError, match="set absolute LRs"):
        for _ in range(3):
            opt.step()
            s.step()
            gen.check_lr_scales(opt)


def test_cosine_with_a_relative_floor(setup) -> None:
    """The documented replacement for eta_min > 0: LambdaLR with a floor of 10 % of
    each group's own LR, at t = T the floor itself."""
    gen, model, _ = setup
    opt = torch.optim.AdamW(gen.param_groups(model, LR, eps=1e-8))
    floor, t_max = 0.1, 6
    s = sched.LambdaLR(opt, lambda t: floor + (1 - floor) * (1 + math.cos(math.pi * t
                                                                          / t_max)) / 2)
    for _ in range(t_max):
        opt.step()
        s.step()
    assert gen.check_lr_scales(opt) == pytest.approx(LR * floor)
