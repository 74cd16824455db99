"""The optimizer section of a generated module: torch.optim.Muon on the hidden matrices
with torch.optim.AdamW on the rest, and a plain-torch Lion (docs/optimizers.md).

It uses the generated module's PARAMETERS, _scan, _resolve, width_ratio and
param_groups (:mod:`abccalc.emit.codegen_runtime`). Names reach the text only through
``repr``.
"""

from __future__ import annotations

import ast
import re

from abccalc.calculus.updates import ADJUSTS, MUON_ADJUST, muon_managed
from abccalc.emit.patterns import match_pattern
from abccalc.parametrization.gauges import Parametrization

_KEY = re.compile(r"    ('.*'|\".*\"): Rule\(")

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
# condition (arXiv 2310.17813), not Adam's, so the lr scale of the rules below is
# Muon's (param_groups alone would give them to one optimizer: use optimizers()).
MUON_ADJUST = {adjust!r}  # s = {formula}
MUON_ADJUST_LR_FN = {torch_fn!r}  # torch.optim.Muon's adjust_lr_fn
MUON_PARAMS: tuple[str, ...] = (  # keys of PARAMETERS: the hidden matrices
{params}
)


def _muon_tensors(model: torch.nn.Module) -> list[tuple[Rule, torch.nn.Parameter]]:
    """(rule, tensor) of every matrix Muon updates. torch.optim.Muon takes whole 2-D
    tensors: a part of a fused tensor or a weight with more axes raises ValueError."""
    found, _ = _scan(model)
    out = []
    for key in MUON_PARAMS:
        rule = PARAMETERS[key]
        for name, p in found[key]:
            if rule.part is not None or p.ndim != 2:
                raise ValueError(f"{{name!r}}: torch.optim.Muon updates whole 2-D matrices; "
                                 "store it as its own (fan_out, fan_in) parameter")
            out.append((rule, p))
    return out


def _muon_lr_factor(p: torch.Tensor, rule: Rule) -> float:
    """s(fan_out, fan_in) of MUON_ADJUST over the factor torch.optim.Muon applies from
    the tensor's axes (A, B): 1 for a Linear weight (fan_out, fan_in) unless torch has
    no such convention (spectral)."""
    fan_in = math.prod(p.shape[i] for i in rule.fan_in_axes)
    fan_out = p.numel() // fan_in
    a, b = p.shape[0], p.shape[1]
    ours = {factor}
    theirs = {torch_factor}
    return ours / theirs


def muon_param_groups(model: torch.nn.Module, lr: float, *, weight_decay: float = 0.0,
                      strict: bool = True) -> list[dict]:
    """One group per hidden matrix, for torch.optim.Muon(adjust_lr_fn=MUON_ADJUST_LR_FN):
    LR lr * lr_scale, relative to the shape factor; the scale is kept as "lr_scale" (see
    LR schedulers above). Muon decays by group lr * weight_decay per step, so weight_decay
    is divided by the same scale: the decay timescale 1/(lr * weight_decay) is the base
    model's at every width. Uncovered parameters raise as in param_groups."""
    _resolve(model, strict, "muon_param_groups")
    out = []
    for rule, p in _muon_tensors(model):
        scale = rule.group_scales.get("lr", lambda m: 1.0)(width_ratio(rule, p))
        scale *= _muon_lr_factor(p, rule)
        out.append({{"params": [p], "lr": lr * scale, "lr_scale": scale,
                    "weight_decay": weight_decay / scale,
                    "weight_decay_scale": 1.0 / scale}})
    return out


def adamw_param_groups(model: torch.nn.Module, lr: float, *, weight_decay: float = 0.0,
                       strict: bool = True, **hyper: float) -> list[dict]:
    """param_groups without the matrices Muon updates (embeddings, readout, biases,
    gains), for torch.optim.AdamW (or Lion: the same exponents)."""
    muon = {{id(p) for _, p in _muon_tensors(model)}}
    groups = param_groups(model, lr, weight_decay=weight_decay, strict=strict, **hyper)
    out = [{{**g, "params": [p for p in g["params"] if id(p) not in muon]}} for g in groups]
    return [g for g in out if g["params"]]


def optimizers(model: torch.nn.Module, lr: float, adamw_lr: float | None = None, *,
               weight_decay: float = 0.0, momentum: float = 0.95
               ) -> list[torch.optim.Optimizer]:
    """[torch.optim.Muon on the hidden matrices at base LR ``lr``, torch.optim.AdamW on
    the rest at base LR ``adamw_lr`` (default ``lr``)]. Both decay by group lr *
    weight_decay per step (torch's convention), with weight_decay scaled inversely to each
    group's LR scale, so every tensor keeps the base model's decay timescale."""
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


def rule_keys(rule_lines: list[str]) -> list[str]:
    """The keys of the PARAMETERS entries in ``rule_lines`` (codegen's ``rules``)."""
    return [ast.literal_eval(m.group(1)) for line in rule_lines
            if (m := _KEY.fullmatch(line))]


def optimizer_source(p: Parametrization, lion: bool = False,
                     rule_lines: list[str] = ()) -> str:
    """The section appended to a generated module: Muon's groups and helpers for a Muon
    setup (its matrices: the PARAMETERS keys in ``rule_lines`` whose graph parameters
    Muon updates), the Lion class with ``lion``; empty otherwise."""
    out = ""
    if p.optimizer in MUON_ADJUST:
        adj = ADJUSTS[MUON_ADJUST[p.optimizer]]
        torch_fn = adj.torch_fn or "original"
        graph = p.graph
        keys = []
        for key in rule_keys(list(rule_lines)):
            covered = [n for n in graph.params if match_pattern(key, n) is not None]
            if covered and all(muon_managed(graph, n) for n in covered):
                keys.append(key)
        params = "\n".join(f"    {k!r}," for k in keys)
        out += MUON.format(adjust=adj.name, formula=FORMULA[adj.name], torch_fn=torch_fn,
                           params=params, factor=FACTOR[adj.name],
                           torch_factor=TORCH_FACTOR[torch_fn])
    if lion:
        out += LION.format()
    return out
