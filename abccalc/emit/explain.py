"""The derivation trace of one parameter, as text a researcher can follow."""

from __future__ import annotations

from abccalc.errors import AbcError
from abccalc.exponents import fmt_exp
from abccalc.graph.ops import OPS
from abccalc.parametrization.gauges import Parametrization
from abccalc.parametrization.rules import constant_expr, fmt, rule


def _size_line(p: Parametrization, name: str) -> tuple[str, list[str]]:
    s = p.analysis.sizes
    node = p.graph.node[name]
    line = (f"size {name} ({node.op}): s0 = {fmt_exp(s.s0[name])} at init, "
            f"sd = {fmt_exp(s.sd[name])} for its change")
    return line, [f"size {i}" for i in node.inputs]


def _grad_line(p: Parametrization, name: str) -> tuple[str, list[str]]:
    g = p.analysis.sizes.g[name]
    consumers = p.graph.consumers[name]
    if OPS[p.graph.node[name].op].is_output:
        return f"grad {name}: g = 0 (the loss is Θ(1) in the finite output)", []
    if name in p.analysis.sizes.dead:
        return (f"grad {name}: g = -∞, exactly 0: no path from {name} to an output "
                "(a dead end)"), []
    return (f"grad {name}: g = {fmt_exp(g)}, the largest of what its consumers "
            f"{', '.join(consumers)} send back", [f"grad {c}" for c in consumers])


def _sources(p: Parametrization, queue: list[str], max_steps: int) -> list[str]:
    """The size and gradient lines that ``queue``'s dependencies expand to, breadth first."""
    out = ["", "  where the sizes come from:"]
    seen: set[str] = set()
    steps = 0
    while queue and steps < max_steps:
        item = queue.pop(0)
        if item in seen:
            continue
        seen.add(item)
        kind, name = item.split(" ", 1)
        line, deps = (_size_line if kind == "size" else _grad_line)(p, name)
        out.append("    " + line)
        queue += deps
        steps += 1
    if queue:
        out.append(f"    … ({len(set(queue) - seen)} more steps up the graph)")
    return out


def _explain_constant(p: Parametrization, name: str, max_steps: int) -> str:
    """The derivation of a parameter-free constant n^-α (a contract's or a scale's)."""
    node = p.graph.node[name]
    step = p.analysis.trace[f"alpha {name}"]
    alpha = p.constants[name]
    try:
        mult = fmt(constant_expr(p.graph, name, alpha))
    except ValueError:
        mult = f"n^{-alpha}"
    out = [f"{name}: constant of {node.op} {name} ({', '.join(node.inputs)}), "
           f"{p.optimizer.value}, variant {p.variant}",
           f"  result: α = {alpha}: multiplier {mult}", "",
           f"  {step.what} = {step.value}", f"    because {step.rule}"]
    return "\n".join(out + _sources(p, list(step.deps), max_steps)) + "\n"


def _explain_branch(p: Parametrization, add: str) -> str:
    """The derivation of a residual branch multiplier L^-α (docs/depth.md)."""
    step = p.depth.trace[f"depth alpha {add}"]
    return "\n".join([f"{add}: residual branch multiplier of add {add}, {p.optimizer.value}",
                      f"  result: depth exponent α = {step.value}: multiplier L^-{step.value}",
                      "", f"  {step.what} = {step.value}", f"    because {step.rule}"]) + "\n"


def _depth_lines(p: Parametrization, pname: str) -> list[str]:
    """The depth constraints of ``pname`` and its Adam ε and weight-decay exponents."""
    from abccalc.parametrization.hyper import hyper

    trace = p.depth.trace
    out = ["", f"  depth (L = {', '.join(v for _, v, *_ in p.depth.blocks)}, α = "
           f"{p.depth.alpha}; solved per axis, docs/depth.md):"]
    for what in ("a", "b", "c"):
        step = trace[f"depth {what} {pname}"]
        out += [f"  {step.what} = {step.value}", f"    because {step.rule}"]
    h = hyper(p, p.params[pname])
    out += [f"  Adam ε: eps = {h.eps}, eps_depth = {h.eps_depth}",
            "    because ε must scale like the typical entry of ∂L/∂w, n^-a·g(h)·st(x) "
            "summed over the broadcast dims" + (f", and L^-α through the branch "
                                                f"multiplier of {h.branch}" if h.branch
                                                else ", with no depth factor outside the "
                                                "branches"),
            f"  weight decay (torch AdamW): wd = {h.wd}, wd_depth = {h.wd_depth}",
            "    because the per-step decay lr·λ keeps its timescale when λ ∝ 1/lr"]
    return out


def explain(p: Parametrization, pname: str, max_steps: int = 40) -> str:
    """Every constraint that fixed ``pname``'s exponents (a parameter's, or a constant's
    when ``pname`` is a ``contract`` or ``scale`` node, or a residual branch's add on a
    depth axis), then the sizes they used."""
    if pname in p.constants and f"alpha {pname}" in p.analysis.trace:
        return _explain_constant(p, pname, max_steps)
    if pname in p.depth.branches:
        return _explain_branch(p, pname)
    if pname not in p.params:
        known = [*p.params, *p.constants]
        raise AbcError(f"{p.graph.source}: unknown parameter or constant '{pname}' (known: "
                       f"{', '.join(known)})")
    r = p.params[pname]
    ru = rule(p, r)
    trace = p.analysis.trace
    k = p.optimizer.k
    out = [f"{pname}: {r.role.value} {r.kind.value}, shape {' x '.join(r.shape)}, "
           f"{p.optimizer.value}, variant {p.variant}",
           f"  result: a = {r.a}, b = {r.b}, c = {r.c}: init var {fmt(ru.init_var)}, "
           f"multiplier {fmt(ru.multiplier)}, LR {fmt(ru.lr)}", ""]
    queue: list[str] = []
    for use in r.uses:
        for kind in ("init", "lr"):
            step = trace[f"{kind} {pname}@{use.node}"]
            out.append(f"  {step.what} = {step.value}")
            out.append(f"    because {step.rule}")
            queue += step.deps
    a = r.a_by_use[(r.use.node, pname)]
    out.append(f"  gauge {p.variant}: a = {a} ⇒ b = (a+b) − a = {r.b}, "
               f"c = ({k}a+c) − {k}a = {r.c}" + (
                   f" (shifted by θ = {p.shifts[pname]})" if pname in p.shifts else ""))
    if p.depth.active:
        out += _depth_lines(p, pname)
    return "\n".join(out + _sources(p, queue, max_steps)) + "\n"
