"""The generated module's depth, Adam ε and weight-decay section (docs/depth.md).

Emitted when the graph has a depth axis (an infinite repeat count) or ``codegen --hyper``
asks for it: ``BASE_DEPTH``, ``DEPTH``, ``DEPTH_ALPHA``, the residual branches with their
multiplier L^-α (which the user's forward applies, and the generated Model applies
itself), and ``param_groups_hyper``: per-group LR with its depth factor, Adam ``eps`` and
``weight_decay`` in width and depth, for torch's AdamW convention or independent decay.
"""

from __future__ import annotations

from abccalc.emit.codegen_model import doc_text
from abccalc.errors import AbcError
from abccalc.graph.core import Kind
from abccalc.parametrization.gauges import Parametrization
from abccalc.parametrization.hyper import hyper

HYPER_DOC = """
Depth, Adam eps and weight decay (docs/depth.md): param_groups_hyper(model, lr, eps=...,
weight_decay=...) gives each group its LR with the depth factor, its eps (which follows
the typical entry of the tensor's gradient) and its weight decay. Weight-decay
convention: torch.optim.AdamW, where each step multiplies w by 1 - lr * weight_decay; the
groups' weight_decay is scaled inversely to their LR, so the decay timescale
1 / (lr * weight_decay) steps is the base model's at every width and depth (param_groups
above passes one weight_decay to every group, which with AdamW makes the hidden weights
decay more slowly as the width grows). decay="independent" is for a loop that applies
w *= 1 - weight_decay * schedule(t) itself; decay_bias_and_norm=False exempts biases and
norm gains. Residual branches: x = x + BRANCH_MULTIPLIER * f(x).
"""

SECTION = '''

# -- depth, Adam eps and weight decay (docs/depth.md) ------------------------------------
# Depth L = {value} (BASE_DEPTH at which the model is the base model); every residual
# branch inside the repeated block is multiplied by (L / BASE_DEPTH)^-DEPTH_ALPHA before
# its add: x = x + BRANCH_MULTIPLIER * f(x) (TP6 Eq. 1; CompleteP Table 1, alpha = 1).
# Do not also scale an output projection's init by 1/sqrt(2L) (GPT-2): with the branch
# multiplier that counts depth twice.
BASE_DEPTH = {base}
DEPTH = {depth}
DEPTH_ALPHA = {alpha}


def branch_multiplier(depth: int = DEPTH) -> float:
    """The residual branch multiplier (depth / BASE_DEPTH)^-DEPTH_ALPHA."""
    return (depth / BASE_DEPTH) ** -DEPTH_ALPHA


BRANCH_MULTIPLIER = branch_multiplier()
# residual add node -> index of its stream input (every other input is a branch)
BRANCHES: dict[str, int] = {branches}


class Hyper(NamedTuple):
    """Exponents relative to the base model, m = width ratio, d = depth / BASE_DEPTH:
    LR x d^lr_depth, eps x m^eps_m * d^eps_depth, weight decay x m^wd_m * d^wd_depth
    (torch convention); ``decay_group`` is "bias", "norm" or "weight"."""

    lr_depth: float
    eps_m: float
    eps_depth: float
    wd_m: float
    wd_depth: float
    decay_group: str


HYPER: dict[str, Hyper] = {{
{rows}
}}


def param_groups_hyper(model: torch.nn.Module, lr: float, *, eps: float = 1e-8,
                       weight_decay: float = 0.0, decay: str = "torch",
                       decay_bias_and_norm: bool = True, depth: int = DEPTH,
                       strict: bool = True) -> list[dict]:
    """param_groups with each group's LR depth factor, Adam ``eps`` and ``weight_decay``.

    eps scales like the typical entry of the tensor's gradient (docs/depth.md).
    Weight decay, decay="torch" (torch.optim.AdamW: each step multiplies w by
    1 - lr * weight_decay): the decay is scaled inversely to the LR, so the timescale
    1 / (lr * weight_decay) steps is the base model's at every width and depth.
    decay="independent" (decay not multiplied by lr, e.g. w *= 1 - weight_decay *
    schedule(t), applied by your loop): weight_decay is returned unscaled, and each group
    gets it under "independent_weight_decay" with "weight_decay" 0.
    ``decay_bias_and_norm=False`` gives biases and norm gains no decay."""
    if decay not in ("torch", "independent"):
        raise ValueError(f"decay must be 'torch' or 'independent', got {{decay!r}}")
    d = depth / BASE_DEPTH
    named = _params(model)
    groups: dict[tuple[float, float, float], list[torch.nn.Parameter]] = {{}}
    for pname, base in zip(PARAMETERS, _width_lrs(model, lr, strict), strict=True):
        rule, h = PARAMETERS[pname], HYPER[pname]
        p = named[rule.module_param]
        m = width_ratio(rule, p)
        wd = weight_decay if decay_bias_and_norm or h.decay_group == "weight" else 0.0
        if decay == "torch":
            wd *= m ** h.wd_m * d ** h.wd_depth
        key = (base * d ** h.lr_depth, eps * m ** h.eps_m * d ** h.eps_depth, wd)
        groups.setdefault(key, []).append(p)
    out = []
    for (g_lr, g_eps, g_wd), ps in groups.items():
        group = {{"params": ps, "lr": g_lr, "eps": g_eps, "weight_decay": g_wd}}
        if decay == "independent":
            group.update(weight_decay=0.0, independent_weight_decay=g_wd)
        out.append(group)
    left = uncovered(model)
    if left:
        out.append({{"params": [named[n] for n in left], "lr": lr, "eps": eps,
                    "weight_decay": weight_decay}})
    return out


def _width_lrs(model: torch.nn.Module, lr: float, strict: bool = True) -> list[float]:
    """The width-scaled LR of every rule, in PARAMETERS order."""
    _check_covered(model, strict, "param_groups_hyper")
    named = _params(model)
    return [lr * rule.lr_scale(width_ratio(rule, named[rule.module_param]))
            for rule in PARAMETERS.values()]
'''

def _num(e) -> str:
    return repr(float(e))


def hyper_source(p: Parametrization) -> str:
    """The section's text (module docstring) for ``p``."""
    graph, d = p.graph, p.depth
    rows = []
    for r in p.params.values():
        h = hyper(p, r)
        k = graph.inf(r.use.fan_in) or graph.inf(r.use.fan_out) or 1
        group = {Kind.BIAS: "bias", Kind.GAIN: "norm"}.get(r.kind, "weight")
        rows.append(f"    {r.name!r}: Hyper({_num(-h.c_depth)}, {_num(-h.eps / k)}, "
                    f"{_num(-h.eps_depth)}, {_num(-h.wd / k)}, {_num(-h.wd_depth)}, "
                    f"{group!r}),")
    if d.active:
        (_, value, base, depth), *more = d.blocks
        if any(b[2:] != (base, depth) for b in more):
            raise AbcError(f"{graph.source}: codegen writes one depth axis, but the repeat "
                           f"blocks {', '.join(b[0] for b in d.blocks)} have different "
                           "bases or depths; give them one infinite value")
    else:
        value, base, depth = "1 (no depth axis: every depth factor is 1)", 1, 1
    branches = "{" + "".join(f"\n    {a!r}: {i}," for a, i in sorted(d.stream.items())) + \
        ("\n}" if d.stream else "}")
    return SECTION.format(value=doc_text(value), base=base, depth=depth,
                          alpha=_num(d.alpha), branches=branches, rows="\n".join(rows))
