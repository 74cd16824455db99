"""``abccalc check MODEL``: the check of a live model's own parametrization, in its own terms.

:func:`check_model` reads what the model does (:mod:`abccalc.verify.current`) and checks it
(:func:`abccalc.verify.check.check`); the report names the model's ``state_dict`` names and
module paths, with the layers of a stack collapsed into one pattern
(``transformer.h.0..11.attn`` → ``transformer.h.*.attn``) wherever every layer has the same
problem, and writes each constant's fix as the value to pass (``scale=5.657/head_dim``:
equal to the model's own value at the base width, TP5 Eq. 4).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from abccalc.errors import AbcError
from abccalc.exponents import Exp, Optimizer, text
from abccalc.graph.ops import OPS
from abccalc.importer.imported import Imported
from abccalc.importer.model import load_function, parse_spec
from abccalc.parametrization.rules import constant_expr, fmt, symbol
from abccalc.verify.check import (
    GAUGE_NOTE,
    OK_TEXT,
    CheckResult,
    ConstReport,
    ParamReport,
    activation_items,
    check,
    const_line,
    param_lines,
    summary,
)
from abccalc.verify.classify import DIVERGES
from abccalc.verify.current import Current, current

_INDEX = re.compile(r"(?<=[A-Za-z_]\.)\d+(?=\.[A-Za-z_]|[^\w.]|$)")  # h.11.attn, h.11; not 0.02


@dataclass(frozen=True)
class ModelCheck:
    """The check of a model's current parametrization, and how it was read."""

    imported: Imported
    current: Current
    result: CheckResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    def to_dict(self) -> dict[str, Any]:
        """check's JSON (docs/check.md) with ``model``: what was measured and how."""
        cur = self.current
        out = self.result.to_dict()
        out["model"] = {
            "spec": self.imported.spec,
            "knobs": {k: list(v) for k, v in self.imported.knobs.items()},
            "lr_source": cur.lr_source or None, "optimizer_class": cur.optimizer_class,
            "notes": cur.notes,
            "init": {p: {"kind": r.kind, "rms": list(r.rms), "slope": r.slope,
                         "b": str(r.b)} for p, r in cur.init.items()},
            "lr": {p: list(v) for p, v in cur.lr.items()},
            "folded": cur.folded,
            "aliases": {p: list(v) for p, v in cur.aliases.items()},
            "untraced": list(cur.untraced),
            "unseen": [{"module": u.module, "op": u.op, "reason": u.reason}
                       for u in self.imported.unseen],
        }
        return out


def check_model(imp: Imported, optimizer: Optimizer | str, *,
                factory: str | Callable[[Any], Any] | None = None, factory_name: str = "",
                lr_scales: str | None = None, seed: int = 0) -> ModelCheck:
    """Read ``imp``'s model's parametrization and check it against μP. ``factory`` is the
    optimizer factory or its ``FILE.py:FUNC``."""
    if isinstance(factory, str):
        try:
            factory, factory_name = load_function(parse_spec(factory)), factory
        except AbcError as e:
            raise AbcError(f"--optimizer-factory {e}") from None
    elif factory is not None and not factory_name:
        factory_name = getattr(factory, "__qualname__", "the optimizer factory")
    cur = current(imp, optimizer, factory=factory, factory_name=factory_name,
                  lr_scales=lr_scales, seed=seed)
    return ModelCheck(imp, cur, check(imp.graph, optimizer, cur.params))


def collapse(name: str) -> str:
    """Layer indices in a dotted name become ``*``: ``h.11.attn`` → ``h.*.attn``."""
    return _INDEX.sub("*", name)


def grouped(items: list[tuple[str, list[str], list[str]]]) -> list[str]:
    """``(name, lines, extra)`` items, the first line continuing the name. Items whose names
    and lines collapse alike are written once under the pattern, with the first member's
    ``extra`` lines (measured values, which differ by sampling noise); a pattern whose
    members differ keeps every member's own name."""
    groups: dict[str, list[tuple[str, list[str], list[str]]]] = {}
    for item in items:
        groups.setdefault(collapse(item[0]), []).append(item)
    out = []
    for pattern, members in groups.items():
        bodies = {tuple(collapse(x) for x in lines) for _, lines, _ in members}
        if len(members) > 1 and len(bodies) == 1:
            first, *rest = next(iter(bodies))
            out += [f"- {pattern}{first} (×{len(members)})", *members[0][2], *rest]
        else:
            for name, (first, *rest), extra in members:
                out += [f"- {name}{first}", *extra, *rest]
    return out


def _knob(imp: Imported) -> tuple[str, int]:
    """The first width knob that changes, and its base value: every infinite dim is Θ(n),
    so a ratio of base to current size is this knob's ratio."""
    k = next(k for k, v in imp.knobs.items() if len(set(v)) > 1)
    return k, imp.knobs[k][0]


def _ratio(imp: Imported, e: Exp) -> str:
    """n^-e written with the model's own width knob: (base/knob)^e."""
    k, base = _knob(imp)
    if e == 0:
        return "1"
    r, inv = f"{base}/{k}", f"{k}/{base}"
    return {1: r, Fraction(1, 2): f"sqrt({r})", -1: inv, Fraction(-1, 2): f"sqrt({inv})"}.get(
        e, f"({r})^{text(e)}" if e > 0 else f"({inv})^{text(-e)}")


def _in_code(mc: ModelCheck, p: ParamReport) -> list[str]:
    """The fix as changes to the model's own numbers: std, LR and multipliers."""
    if p.fix is None:
        return []
    g, imp = mc.imported.graph, mc.imported
    r = mc.current.init[p.name]
    out = []
    db, dc = p.fix.b - p.current.b, p.fix.c - p.current.c
    if db and r.kind != "zeros":
        out.append(f"init std {r.rms[0]:.3g} → {r.rms[0]:.3g}·{_ratio(imp, db)}")
    if dc:
        out.append(f"LR lr → lr·{_ratio(imp, dc)}")
    for u in g.params[p.name].uses:
        da = p.fix.a[u.node] - p.current.a[u.node]
        if da:
            node = g.node[u.node]  # W(x·m) = (W·m)x where W multiplies the input itself
            where = "input" if node.inputs and OPS[node.op].operand_label(node, u) == \
                node.inputs[0] else "output"
            out.append(f"multiply {u.node}'s {where} by {_ratio(imp, da)}")
    return [f"  - in your code: {'; '.join(out)}."] if out else []


def _value(graph: Any, expr: Any) -> float:
    """``expr`` at the base sizes."""
    return float(expr.subs({symbol(d): dim.size for d, dim in graph.dims.items()}))


def _constant_fix(mc: ModelCheck, k: ConstReport) -> tuple[str, str]:
    """(where, text) of a constant's fix in the model's terms: the value to use, equal
    to the model's own value at the base widths (TP5 Eq. 4). The model's value is the
    product of what was recorded at the node and what was folded into it."""
    g = mc.imported.graph
    recs = [r for n, r in sorted(mc.imported.constants.items())
            if n == k.name or mc.current.folded.get(n) == k.name]
    where = next((r.module for r in recs if r.module), k.name)
    v0 = math.prod(r.values[0] for r in recs)
    note = OPS[g.node[k.name].op].constant_note(k.mup_exponent)
    try:
        expr = constant_expr(g, k.name, k.mup_exponent)
    except ValueError:
        return where, const_line(g, k)
    coef = v0 / _value(g, expr)
    what = " and ".join(r.what for r in recs) or f"{g.node[k.name].op} with no multiplier"
    sdpa = "scaled_dot_product_attention" in what
    body = fmt(expr)
    over = [d for d in g.node[k.name].over if g.dims[d].infinite]
    at, need = "the base widths", k.mup_multiplier
    if sdpa and len(over) == 1:  # the user's name for it (q.size(-1)), whatever the graph's
        body, need = body.replace(over[0], "head_dim"), need.replace(over[0], "head_dim")
        at = f"the base head_dim {g.dims[over[0]].size}"
    value = f"{coef:.4g}/{body[2:]}" if body.startswith("1/") else f"{coef:.4g}*{body}"
    verb = "pass scale=" if sdpa else "use "
    src = "".join(f" ({r.source})" for r in recs if r.source)
    return where, (f": {what}{src}; μP needs {need}: {verb}{value} (equal to "
                   f"the current {v0:.4g} at {at}){note}")


def _measured(mc: ModelCheck, pname: str) -> str:
    cur = mc.current
    r = cur.init[pname]
    init = ("init zeros (any init rule holds, TP5 App. B)" if r.kind == "zeros" else
            f"init rms {r.rms[0]:.2g} → {r.rms[-1]:.2g} ({r.kind}, ∝ n^{text(-r.b)})")
    lr = cur.lr.get(pname)
    lr_text = (f"LR {lr[0]:.3g} → {lr[-1]:.3g}" if lr else
               f"LR ∝ n^{text(-cur.params.abc.c[pname])}" if cur.lr_source else "global LR")
    return f"  - measured over the traced widths: {init}, {lr_text}."


def render_model_markdown(mc: ModelCheck) -> str:
    """The violations and their fixes, keyed by the model's own names."""
    res, cur, imp = mc.result, mc.current, mc.imported
    knobs = ", ".join(f"{k} = {', '.join(map(str, v))}" for k, v in imp.knobs.items())
    head = [f"# check: {imp.spec} ({res.optimizer.value})", "",
            f"Read from the model built at {knobs}: init (measured), multipliers (traced), "
            f"LR ({cur.lr_source or 'assumed'}). At the base width {'{}'} = {'{}'} the fixes leave "
            "the model as it is.".format(*_knob(imp))]
    notes = [f"Note: {n}." for n in cur.notes]
    notes += [f"Note: not seen by the tracer: {u.module}: {u.op} ({u.reason})."
              for u in imp.unseen]
    if res.ok:
        return "\n".join([*head, "", OK_TEXT.rstrip("\n"), *notes]) + "\n"
    lines = [*head, "", summary(res)]
    if res.constants:
        lines += ["", "## Constants", ""]
        lines += grouped([(w, [t], []) for w, t in
                          (_constant_fix(mc, k) for k in res.constants)])
    if res.params:
        items = []
        for p in res.params:
            also = cur.aliases.get(p.name, ())
            name = p.name + "".join(f" (= {a})" for a in also)
            first, *rest = param_lines(p)
            items.append((name, [first, *rest], [_measured(mc, p.name), *_in_code(mc, p)]))
        lines += ["", "## Parameters", "", GAUGE_NOTE, "", *grouped(items)]
    if res.classification.issues:
        origins, rest = activation_items(res.classification)
        by_node: dict[str, list[str]] = {}
        for node, what in origins:
            by_node.setdefault(node, []).append(what)
        acts = [(n, [": " + "; ".join(m)], []) for n, m in by_node.items()]
        lines += ["", "## Activations", "", *grouped(acts)]
        if rest:
            lines.append("- and, inherited from those: "
                         + ", ".join(dict.fromkeys(collapse(x) for x in rest)))
        if res.classification.diverges:
            lines += ["", DIVERGES]
    return "\n".join([*lines, "", *notes]) + "\n"
