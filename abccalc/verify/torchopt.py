"""The torch optimizers a coordinate check steps with, by update class
(docs/optimizers.md): SGD, Adam (ε negligible), Lion, and torch.optim.Muon on the hidden
matrices with AdamW's Adam on the rest. torch is passed in (imported only when a model is
built)."""

from __future__ import annotations

import math
from typing import Any

from abccalc.calculus.updates import ADJUSTS, MUON_ADJUST, muon_managed
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.parametrization.gauges import Parametrization

# a torch optimizer other than the table's; "-alone": only Muon's matrices train (the
# rest at LR 0), so that an activation's change is their ΔW·x alone
RUN_AS = ("lion", "muon", "muon-match_rms_adamw", "muon-alone", "muon-match_rms_adamw-alone")


def lion_class(torch) -> type:
    """Lion (Chen et al. 2023, arXiv 2302.06675) in plain torch: with c = β₁m + (1−β₁)g,
    w ← w − lr·(sign(c) + λw), then m ← β₂m + (1−β₂)g. Its update is a sign, entries ±1:
    the entrywise class, Adam's exponents."""

    class Lion(torch.optim.Optimizer):
        def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99),
                     weight_decay: float = 0.0) -> None:
            super().__init__(params, {"lr": lr, "betas": betas,
                                      "weight_decay": weight_decay})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(torch.sign(m * b1 + p.grad * (1 - b1)), alpha=-group["lr"])
                    m.mul_(b2).add_(p.grad, alpha=1 - b2)

    return Lion


def _lrs(gen_module: Any, model: Any, lr: float) -> dict[str, tuple[Any, float]]:
    """Graph parameter → (tensor, its LR lr·lr_scale(m)) from the generated rules."""
    named = dict(model.named_parameters())
    left = gen_module.uncovered(model)
    if left:
        raise AbcError(f"no rule for the parameters {', '.join(left)}")
    return {name: (named[r.module_param],
                   lr * r.lr_scale(gen_module.width_ratio(r, named[r.module_param])))
            for name, r in gen_module.PARAMETERS.items()}


def optimizers(torch, gen_module: Any, model: Any, p: Parametrization, lr: float,
               run_as: str | None = None) -> list:
    """The optimizers for ``p``'s LRs: its own class, or ``run_as`` (Lion on an Adam
    parametrization; on a Muon one, Muon with its own or the match_rms_adamw factor
    whatever its c, optionally alone)."""
    opt = p.optimizer
    if run_as is not None and run_as not in RUN_AS:
        raise AbcError(f"run_as {run_as!r}: known {', '.join(RUN_AS)}")
    lrs = _lrs(gen_module, model, lr)
    groups = [{"params": [t], "lr": g} for _, (t, g) in sorted(lrs.items())]
    if run_as == "lion":
        if opt is not Optimizer.ADAM:
            raise AbcError("Lion is entrywise: check it on an adam parametrization")
        return [lion_class(torch)(groups)]
    if opt in MUON_ADJUST:
        adjust = "match_rms_adamw" if run_as and "match_rms" in run_as else MUON_ADJUST[opt]
        rest_scale = 0.0 if run_as and run_as.endswith("-alone") else 1.0
        muon, rest = [], []
        for name, (t, g) in sorted(lrs.items()):
            if muon_managed(p.graph, name) and t.ndim == 2:
                if adjust == "spectral":  # torch's "original" is max(1, A/B)^½
                    g *= math.sqrt(min(1.0, t.shape[0] / t.shape[1]))
                muon.append({"params": [t], "lr": g})
            else:
                rest.append({"params": [t], "lr": g * rest_scale})
        fn = ADJUSTS[adjust].torch_fn or "original"
        out = [torch.optim.Muon(muon, weight_decay=0.0, adjust_lr_fn=fn)] if muon else []
        return out + ([torch.optim.Adam(rest, eps=1e-12)] if rest else [])
    if run_as is not None:
        raise AbcError(f"run_as {run_as!r} needs a muon parametrization")
    if opt is Optimizer.SGD:
        return [torch.optim.SGD(groups)]
    if opt is Optimizer.ADAM:
        # ε negligible, as the derivations assume (TP5 B.3): Adam's default 1e-8 is not,
        # once μP gradients shrink with width
        return [torch.optim.Adam(groups, eps=1e-12)]
    raise AbcError(f"no torch optimizer for {opt.value} in the coordinate check")
