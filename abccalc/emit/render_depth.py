"""Depth, Adam ε and weight decay in the tables and JSON (docs/depth.md).

Each parameter's JSON row gains ``a_depth, b_depth, c_depth`` (multiplier L^−a, init std
L^−b, LR L^−c relative to the base depth), ``eps, eps_depth`` (ε = ε_base·n^−eps·
L^−eps_depth) and ``wd, wd_depth`` (λ, the same form, torch's AdamW convention); each
constant gains ``depth_exponent``, and each residual branch's multiplier L^−α is a
constant named after its add node. The markdown table gains a depth section when the
graph has a depth axis, with m_N = fan/base_fan and m_L = L/base_L (CompleteP Table 1's
notation).
"""

from __future__ import annotations

import re

from abccalc.exponents import Exp
from abccalc.parametrization.gauges import Parametrization, ParamRule
from abccalc.parametrization.hyper import hyper

FIELDS = ("a_depth", "b_depth", "c_depth", "eps", "eps_depth", "wd", "wd_depth")


def depth_fields(p: Parametrization, r: ParamRule) -> dict[str, str]:
    """The new per-parameter JSON fields, as exact exponent strings."""
    h = hyper(p, r)
    return {f: str(getattr(h, f)) for f in FIELDS}


def power(base: str, e: Exp) -> str:
    """``base^e`` as the tables write a ratio's power: ``1``, ``m_L``, ``1/m_L``,
    ``m_L^(1/2)``."""
    if e == 0:
        return "1"
    if e == 1:
        return base
    if e == -1:
        return f"1/{base}"
    return f"{base}^({e})" if e.denominator != 1 or e < 0 else f"{base}^{e}"


def monomial(m_n: Exp, m_l: Exp) -> str:
    """``m_N^m_n·m_L^m_l``, each factor left out when its power is 0."""
    parts = [power(b, e) for b, e in (("m_N", m_n), ("m_L", m_l)) if e != 0]
    return "·".join(parts) or "1"


def branch_constants(p: Parametrization) -> list[dict]:
    """One constant per residual branch: its add node, width exponent 0, depth exponent α."""
    return [{"name": add, "exponent": "0", "multiplier": power("m_L", -alpha),
             "depth_exponent": str(alpha)} for add, alpha in p.depth.branches.items()]


def _local(name: str, blocks: tuple[str, ...]) -> str:
    """``block.3.W_q`` → ``block.*.W_q`` for a block of the depth axis."""
    for b in blocks:
        m = re.fullmatch(rf"{re.escape(b)}\.\d+\.(.+)", name)
        if m:
            return f"{b}.*.{m[1]}"
    return name


def markdown_section(p: Parametrization) -> str:
    """The depth section of the markdown table: branch multipliers, then per parameter
    (iterations of a block merged when they agree) its width and depth factors of the LR,
    ε and λ relative to the base model, m_N = fan/base_fan, m_L = L/base_L."""
    d = p.depth
    if not d.active:
        return ""
    blocks = tuple(b for b, *_ in d.blocks)
    axes = ", ".join(f"`{v}` (base {base}, now {count})" for _, v, base, count in d.blocks)
    lines = [f"### Depth: L = {axes}, α = {d.alpha}",
             f"Per axis (docs/depth.md): width factors in m_N = fan/base_fan, depth factors "
             f"in m_L = L/base_L. Branch multipliers {power('m_L', -d.alpha)} at "
             + ", ".join(sorted({f'`{_local(a, blocks)}`' for a in d.branches})) + ".",
             "", "| parameter | branch | a_L | b_L | c_L | LR | Adam ε | weight decay λ |",
             "|---|---|---|---|---|---|---|---|"]
    seen: set[tuple] = set()
    for r in p.params.values():
        h = hyper(p, r)
        row = (_local(r.name, blocks), _local(h.branch, blocks) if h.branch else "—",
               str(h.a_depth), str(h.b_depth), str(h.c_depth),
               "η·" + monomial(-r.c_exp, -h.c_depth),
               "ε·" + monomial(-h.eps, -h.eps_depth), "λ·" + monomial(-h.wd, -h.wd_depth))
        if row not in seen:
            seen.add(row)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
