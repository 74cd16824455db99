"""The optimizer section of a generated module: torch.optim.Muon on the hidden matrices
with torch.optim.AdamW on the rest, and a plain-torch Lion (docs/optimizers.md).

It uses the generated module's PARAMETERS, _params, _check_covered and width_ratio.
Names reach the text only through ``repr``.
"""

from __future__ import annotations

from abccalc.calculus.updates import ADJUSTS, MUON_ADJUST, muon_managed
from abccalc.parametrization.gauges import Parametrization

# s(fan_out, fan_in) per convention, as Python, and torch.optim.Muon's own factor of the
# tensor's first two axes (A, B) for each adjust_lr_fn
FORMULA = {"keller": "max(1, fan_out/fan_in)**0.5", "spectral": "(fan_out/fan_in)**0.5",
           "match_rms_adamw": "0.2 * max(fan_out, fan_in)**0.5"}
FACTOR = {"keller": "math.sqrt(max(1.0, fan_out / fan_in))",
          "spectral": "math.sqrt(fan_out / fan_in)",
          "match_rms_adamw": "0.2 * math.sqrt(max(fan_out, fan_in))"}
TORCH_FACTOR = {"original": "math.sqrt(max(1.0, a / b))",
                "match_rms_adamw": "0.2 * math.sqrt(max(a, b))"}

MUON_USE = """\
    opts = optimizers(model, lr=..., adamw_lr=...)  # torch.optim.Muon + torch.optim.AdamW
    zero_grad(opts); loss.backward(); step(opts)"""
LION_USE = "    opt = Lion(param_groups(model, lr=...))  # Lion: defined below, plain torch"

MUON = '''

# -- Muon on the hidden matrices, AdamW on the rest (abccalc docs/optimizers.md) --------
# A Muon update is s(fan_out, fan_in) * U V^T: its LR exponent follows the spectral
# condition (arXiv 2310.17813), not Adam's, so the hidden matrices' lr_scale above is
# Muon's (param_groups alone would give them to one optimizer: use optimizers()).
MUON_ADJUST = {adjust!r}  # s = {formula}
MUON_ADJUST_LR_FN = {torch_fn!r}  # torch.optim.Muon's adjust_lr_fn
MUON_PARAMS: tuple[str, ...] = (
{params}
)


def _muon_lr_factor(p: torch.Tensor, rule: Rule) -> float:
    """s(fan_out, fan_in) of MUON_ADJUST over the factor torch.optim.Muon applies from
    the tensor's first two axes (A, B): 1 for a Linear weight (fan_out, fan_in) unless
    torch has no such convention (spectral)."""
    fan_in = math.prod(p.shape[i] for i in rule.fan_in_axes)
    fan_out = p.numel() // fan_in
    a, b = p.shape[0], p.shape[1]
    ours = {factor}
    theirs = {torch_factor}
    return ours / theirs


def muon_param_groups(model: torch.nn.Module, lr: float, *, weight_decay: float = 0.0,
                      strict: bool = True) -> list[dict]:
    """One group per hidden matrix, for torch.optim.Muon(adjust_lr_fn=MUON_ADJUST_LR_FN):
    LR lr * lr_scale(m), relative to the shape factor. torch.optim.Muon takes 2-D
    tensors only: a weight with more axes raises ValueError."""
    _check_covered(model, strict, "muon_param_groups")
    named = _params(model)
    out = []
    for name in MUON_PARAMS:
        rule = PARAMETERS[name]
        p = named[rule.module_param]
        if p.ndim != 2:
            raise ValueError(f"{{rule.module_param!r}} has {{p.ndim}} axes: torch.optim.Muon "
                             "updates 2-D matrices; store it as (fan_out, fan_in)")
        lr_p = lr * rule.lr_scale(width_ratio(rule, p)) * _muon_lr_factor(p, rule)
        out.append({{"params": [p], "lr": lr_p, "weight_decay": weight_decay}})
    return out


def adamw_param_groups(model: torch.nn.Module, lr: float, *, weight_decay: float = 0.0,
                       strict: bool = True) -> list[dict]:
    """Every parameter Muon does not update (embeddings, readout, biases, gains), for
    torch.optim.AdamW (or Lion: the same exponents), LR lr * lr_scale(m). A trainable
    parameter no rule covers raises ValueError; ``strict=False`` puts it here at the
    base ``lr``, with a warning."""
    named = _params(model)
    muon = {{id(named[PARAMETERS[name].module_param]) for name in MUON_PARAMS}}
    return [g for g in ({{**g, "params": [p for p in g["params"] if id(p) not in muon]}}
                        for g in param_groups(model, lr, weight_decay=weight_decay,
                                              strict=strict))
            if g["params"]]


def optimizers(model: torch.nn.Module, lr: float, adamw_lr: float | None = None, *,
               weight_decay: float = 0.0, momentum: float = 0.95
               ) -> list[torch.optim.Optimizer]:
    """[torch.optim.Muon on the hidden matrices at base LR ``lr``, torch.optim.AdamW on
    the rest at base LR ``adamw_lr`` (default ``lr``)]. Muon decays by lr·weight_decay
    with the unadjusted lr, as AdamW does: width independent (TP5 B.3)."""
    muon = torch.optim.Muon(muon_param_groups(model, lr, weight_decay=weight_decay),
                            lr=lr, momentum=momentum, weight_decay=weight_decay,
                            adjust_lr_fn=MUON_ADJUST_LR_FN)
    adamw_lr = lr if adamw_lr is None else adamw_lr
    adamw = torch.optim.AdamW(adamw_param_groups(model, adamw_lr,
                                                 weight_decay=weight_decay),
                              lr=adamw_lr, weight_decay=weight_decay)
    return [muon, adamw]


def step(opts: list[torch.optim.Optimizer]) -> None:
    """Step every optimizer of :func:`optimizers` (after one backward)."""
    for opt in opts:
        opt.step()


def zero_grad(opts: list[torch.optim.Optimizer]) -> None:
    for opt in opts:
        opt.zero_grad(set_to_none=True)
'''

LION = '''

# -- Lion (Chen et al. 2023, arXiv 2302.06675), plain torch ------------------------------
# Its update is a sign, entries +-1: the entrywise class, so Adam's exponents (lr_scale
# above) apply unchanged (abccalc docs/optimizers.md).
class Lion(torch.optim.Optimizer):
    """With c = beta1*m + (1 - beta1)*g: w <- w*(1 - lr*weight_decay) - lr*sign(c), then
    m <- beta2*m + (1 - beta2)*g. Use an LR 3-10x below AdamW's."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0) -> None:
        if lr < 0 or not all(0.0 <= b < 1.0 for b in betas) or weight_decay < 0:
            raise ValueError(f"Lion: bad lr {{lr}}, betas {{betas}} or weight_decay "
                             f"{{weight_decay}}")
        super().__init__(params, {{"lr": lr, "betas": betas, "weight_decay": weight_decay}})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m * beta1 + p.grad * (1.0 - beta1)), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1.0 - beta2)
        return loss
'''


def use_text(p: Parametrization, lion: bool = False) -> str | None:
    """The header's usage lines for a Muon module or a Lion one; None: the plain one."""
    if p.optimizer in MUON_ADJUST:
        return MUON_USE
    return LION_USE if lion else None


def optimizer_source(p: Parametrization, lion: bool = False) -> str:
    """The section appended to a generated module: Muon's groups and helpers for a Muon
    setup, the Lion class with ``lion``; empty otherwise."""
    out = ""
    if p.optimizer in MUON_ADJUST:
        adj = ADJUSTS[MUON_ADJUST[p.optimizer]]
        torch_fn = adj.torch_fn or "original"
        params = "\n".join(f"    {n!r}," for n in p.params if muon_managed(p.graph, n))
        out += MUON.format(adjust=adj.name, formula=FORMULA[adj.name], torch_fn=torch_fn,
                           params=params, factor=FACTOR[adj.name],
                           torch_factor=TORCH_FACTOR[torch_fn])
    if lion:
        out += LION.format()
    return out
