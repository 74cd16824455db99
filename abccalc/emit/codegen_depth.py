"""The generated module's optimizer-group scales and depth constants (docs/depth.md).

Every rule's ``group_scales`` gives, as functions of the width ratio m, the factor of each
optimizer hyperparameter of its group relative to the base model
(:mod:`abccalc.parametrization.hyper`): the LR, Adam's ``eps`` (which follows the typical
entry of the tensor's gradient) and ``weight_decay`` (inversely to the LR, so torch's
per-step decay lr·λ keeps its timescale). On a depth axis (an infinite repeat count) each
factor also carries d^x with d = ``DEPTH_RATIO`` = DEPTH / BASE_DEPTH, and the module
gets ``BASE_DEPTH``, ``DEPTH``, ``DEPTH_ALPHA`` and the residual branches with their
multiplier L^-α, which the user's forward applies (the generated Model applies it itself).
"""

from __future__ import annotations

from functools import lru_cache

import sympy
from sympy.printing.pycode import pycode

from abccalc.emit.codegen_model import doc_text
from abccalc.emit.patterns import star
from abccalc.errors import AbcError
from abccalc.exponents import Exp, Optimizer
from abccalc.parametrization.gauges import Parametrization, ParamRule
from abccalc.parametrization.hyper import hyper
from abccalc.parametrization.rules import M

D = sympy.Symbol("DEPTH_RATIO", positive=True)

DEPTH_DOC = """
Depth (docs/depth.md). DEPTH_RATIO = DEPTH / BASE_DEPTH is the depth factor d: each
group scale also carries its power of d (the LR's included, so lr_scale and the LR
scheduler notes below cover depth too), and every residual branch of the repeated block
is multiplied by BRANCH_MULTIPLIER = d^-DEPTH_ALPHA before its add, x = x +
BRANCH_MULTIPLIER * f(x) (BRANCHES names the adds). Regenerate for another depth.
"""

SECTION = '''
# -- depth (docs/depth.md) ---------------------------------------------------------------
# Depth L = {value}; at BASE_DEPTH the model is the base model. Every residual branch
# inside the repeated block is multiplied by (L / BASE_DEPTH)^-DEPTH_ALPHA before its add:
# x = x + BRANCH_MULTIPLIER * f(x) (TP6 Eq. 1; CompleteP Table 1, alpha = 1).
# Do not also scale an output projection's init by 1/sqrt(2L) (GPT-2): with the branch
# multiplier that counts depth twice.
BASE_DEPTH = {base}
DEPTH = {depth}
DEPTH_ALPHA = {alpha}
DEPTH_RATIO = DEPTH / BASE_DEPTH  # d in the depth factors of group_scales


def branch_multiplier(depth: int = DEPTH) -> float:
    """The residual branch multiplier (depth / BASE_DEPTH)^-DEPTH_ALPHA."""
    return (depth / BASE_DEPTH) ** -DEPTH_ALPHA


BRANCH_MULTIPLIER = branch_multiplier()
# residual add node (pattern) -> index of its stream input (every other input is a branch)
BRANCHES: dict[str, int] = {branches}


def stream_input(node: str) -> int | None:
    """The index of the stream input of residual add ``node``; None for any other node."""
    for pattern, index in BRANCHES.items():
        if match_pattern(pattern, node) is not None:
            return index
    return None
'''


@lru_cache(maxsize=1024)
def _power(width: Exp, depth: Exp) -> str:
    """Python code of m**width * DEPTH_RATIO**depth."""
    return pycode(M ** sympy.Rational(width.numerator, width.denominator)
                  * D ** sympy.Rational(depth.numerator, depth.denominator),
                  fully_qualified_modules=True)


def group_scales(p: Parametrization, r: ParamRule, lr: Exp, k: int, eps: bool = True
                 ) -> tuple[str, ...]:
    """The ``group_scales`` lines of ``r``: LR m^lr (its width exponent vs SP) with its
    depth factor, Adam ε (unless ``eps`` is off: Lion) and weight decay (torch's
    convention) in width and depth. ``k``
    is the number of infinite dims in the width-scaling fan (m = n^k); with none m is 1,
    so a width exponent there has no m to ride on and is refused."""
    h = hyper(p, r)
    adam = eps and p.optimizer is Optimizer.ADAM
    if not k and (h.wd or (adam and h.eps)):
        raise AbcError(f"{p.graph.source}: parameter '{doc_text(r.name)}' has no infinite "
                       f"fan, but its Adam eps or weight decay scales with width (n^{-h.eps}"
                       f", n^{-h.wd}); the generated code reads width from a tensor's fans: "
                       "give it an infinite dim, or set that group's values by hand")
    k = k or 1
    scales = {"lr": (lr, -h.c_depth)}
    if adam:
        scales["eps"] = (-h.eps / k, -h.eps_depth)
    scales["weight_decay"] = (-h.wd / k, -h.wd_depth)
    return ("        group_scales={",
            *(f"            {name!r}: lambda m: {_power(*e)}," for name, e in scales.items()),
            "        },")


def _branches(stream: dict[str, int]) -> list[tuple[str, int]]:
    """The residual adds by pattern (every block's ``r1`` is ``block.*.r1``), so the module
    does not grow with depth; by name where a pattern's adds disagree on the index."""
    starred: dict[str, int] = {}
    for node, index in stream.items():
        if starred.setdefault(star(node)[0], index) != index:
            return sorted(stream.items())
    return sorted(starred.items())


def depth_source(p: Parametrization) -> str:
    """The depth constants of ``p`` (empty without a depth axis)."""
    graph, d = p.graph, p.depth
    if not d.active:
        return ""
    (_, value, base, depth), *more = d.blocks
    if any(b[2:] != (base, depth) for b in more):
        raise AbcError(f"{graph.source}: codegen writes one depth axis, but the repeat "
                       f"blocks {', '.join(b[0] for b in d.blocks)} have different "
                       "bases or depths; give them one infinite value")
    branches = "{" + "".join(f"\n    {a!r}: {i}," for a, i in _branches(d.stream)) + \
        ("\n}" if d.stream else "}")
    return SECTION.format(value=doc_text(value), base=base, depth=depth,
                          alpha=repr(float(d.alpha)), branches=branches)
