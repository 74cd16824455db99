"""The torch optimizers a coordinate check steps with, by update class
(docs/optimizers.md), built from the generated module's own groups: SGD, Adam (ε
negligible), its Lion, or torch.optim.Muon on its hidden matrices with Adam on the rest.
torch is passed in (imported only when a model is built)."""

from __future__ import annotations

from typing import Any

from abccalc.calculus.updates import MUON_ADJUST
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.parametrization.gauges import Parametrization

# A torch optimizer other than the table's. On a Muon parametrization, match_rms_adamw
# steps with Moonlight's factor whatever the table's c (the mistake of a width-independent
# LR); "-alone" trains only Muon's matrices (the rest at LR 0), so that a change is their
# ΔW·x alone.
RUN_AS = ("lion", "muon", "muon-match_rms_adamw", "muon-alone", "muon-match_rms_adamw-alone")


def optimizers(torch, gen_module: Any, model: Any, p: Parametrization, lr: float,
               run_as: str | None = None) -> list:
    """The optimizers for ``p``'s LRs (the generated module's groups): its own class, or
    ``run_as`` (:data:`RUN_AS`; Lion needs a module generated with ``lion``)."""
    opt = p.optimizer
    if run_as is not None and run_as not in RUN_AS:
        raise AbcError(f"run_as {run_as!r}: known {', '.join(RUN_AS)}")
    if run_as == "lion":
        if opt is not Optimizer.ADAM:
            raise AbcError("Lion is entrywise: check it on an adam parametrization")
        return [gen_module.Lion(gen_module.param_groups(model, lr))]
    if opt in MUON_ADJUST:
        run_as = run_as or ""
        fn = "match_rms_adamw" if "match_rms" in run_as else gen_module.MUON_ADJUST_LR_FN
        rest = 0.0 if run_as.endswith("-alone") else lr
        # ε negligible, as the derivations assume (TP5 B.3)
        return [torch.optim.Muon(gen_module.muon_param_groups(model, lr), lr=lr,
                                 weight_decay=0.0, adjust_lr_fn=fn),
                torch.optim.Adam(gen_module.adamw_param_groups(model, rest), lr=rest,
                                 eps=1e-12)]
    if run_as is not None:
        raise AbcError(f"run_as {run_as!r} needs a muon parametrization")
    if opt is Optimizer.SGD:
        return [torch.optim.SGD(gen_module.param_groups(model, lr))]
    if opt is Optimizer.ADAM:
        # ε negligible, as the derivations assume (TP5 B.3): Adam's default 1e-8 is not,
        # once μP gradients shrink with width (the groups scale it further down with them)
        return [torch.optim.Adam(gen_module.param_groups(model, lr, eps=1e-12))]
    raise AbcError(f"no torch optimizer for {opt.value} in the coordinate check")
