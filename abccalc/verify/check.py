"""``abccalc check``: what is wrong with a user's own parametrization, and the μP fix.

The user's exponents (from a params file) are propagated through the graph and classified
(:mod:`abccalc.verify.classify`), then compared with the μP the solver derives
(:func:`abccalc.calculus.solver.solve`). μP fixes only each use's gauge invariants a+b and k·a+c
(k = 2 for SGD, 1 for Adam; TP4 Eq. 5, TP4b Prop. 2.2.3, TP5 Lemma J.1), so the fix is
given *in the user's own gauge*: their multiplier exponent a is kept, and

    b = (a+b)_μP − a_user,        c = (k·a+c)_μP − k·a_user,

written as init variance and LR rules in fan_in/fan_out. A tied parameter has one b and
one c; when its uses' multipliers cannot reach μP together, the check says so and gives
the multipliers that can. Constants (the attention scale) get the solver's exponent.

A violation is any of: an activation that blows up or vanishes; a parameter that is not
updated maximally (r_l ≠ 0) or a readout not initialized maximally; a parameter or constant
whose invariants differ from μP's. No violation means the parametrization is μP up to
the abc-symmetry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from abccalc.calculus.sizes import ABC, key
from abccalc.calculus.solver import Analysis, role_of, solve
from abccalc.calculus.updates import misapplied
from abccalc.exponents import Exp, Optimizer, is_integer, text
from abccalc.graph.core import Graph, Kind, Role, Use
from abccalc.graph.ops import OPS
from abccalc.parametrization.gauges import Parametrization, ParamRule, split_invariants
from abccalc.parametrization.paramsfile import ParamsFile
from abccalc.parametrization.rules import constant_expr, fmt, rule
from abccalc.verify.classify import DEAD_ENDS, DIVERGES, Classification, classify, growth
from abccalc.verify.depth_check import double_counted


@dataclass(frozen=True)
class Setting:
    """One parameter's exponents and the rules they read as."""

    a: dict[str, Exp]  # per use node
    b: Exp
    c: Exp
    init_var: str
    multiplier: dict[str, str]  # per use node
    lr: str

    def to_dict(self, first: str) -> dict[str, Any]:
        out: dict[str, Any] = {"a": str(self.a[first]), "b": str(self.b), "c": str(self.c),
                               "init_var": self.init_var,
                               "multiplier": self.multiplier[first], "lr": self.lr}
        if len(self.a) > 1:
            out["uses"] = [{"node": n, "a": str(a), "multiplier": self.multiplier[n]}
                           for n, a in self.a.items()]
        return out


@dataclass(frozen=True)
class ParamReport:
    """A parameter with a violation: what is wrong, its setting, and μP's in its gauge."""

    name: str
    role: Role
    kind: Kind
    problems: list[str]
    current: Setting
    fix: Setting | None  # None when its own setting is μP already
    alternative: Setting | None = None  # output weights: TP5 Table 8's 1/fan_in multiplier
    conflict: str | None = None  # a tied parameter the user's multipliers cannot fix


@dataclass(frozen=True)
class ConstReport:
    name: str
    exponent: Exp
    multiplier: str
    mup_exponent: Exp
    mup_multiplier: str
    defaulted: bool


@dataclass(frozen=True)
class CheckResult:
    graph: Graph
    optimizer: Optimizer
    source: str
    classification: Classification
    params: list[ParamReport]
    constants: list[ConstReport]
    defaulted_constants: tuple[str, ...] = field(default=())
    depth: list[str] = field(default_factory=list)  # depth counted twice (depth_check)

    @property
    def ok(self) -> bool:
        return not (self.classification.issues or self.params or self.constants
                    or self.depth)

    @property
    def count(self) -> int:
        return (sum(1 for i in self.classification.issues if i.origin) + len(self.params)
                + len(self.constants) + len(self.depth))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (documented in docs/check.md)."""
        c = self.classification
        cd = c.to_dict()
        params = []
        for p in self.params:
            first = self.graph.params[p.name].uses[0].node
            params.append({
                "name": p.name, "role": p.role.value, "kind": p.kind.value,
                "problems": p.problems, "r_l": cd_param(cd, p.name)["r_l"],
                "updated_maximally": c.updated_maximally(p.name),
                "initialized_maximally": c.initialized_maximally(p.name),
                "current": p.current.to_dict(first),
                "fix": p.fix.to_dict(first) if p.fix else None,
                "alternative": p.alternative.to_dict(first) if p.alternative else None,
                "conflict": p.conflict})
        return {
            "graph": self.graph.name, "optimizer": self.optimizer.value,
            "params_file": self.source, "ok": self.ok, "violations": self.count,
            **{k: cd[k] for k in ("r", "stable", "nontrivial", "feature_learning",
                                  "kernel_regime")},
            "activations": cd["issues"],
            "dead_ends": cd["dead_ends"],
            "parameters": params,
            "constants": [{"name": k.name, "exponent": str(k.exponent),
                           "multiplier": k.multiplier, "fix_exponent": str(k.mup_exponent),
                           "fix_multiplier": k.mup_multiplier, "defaulted": k.defaulted}
                          for k in self.constants],
            "defaulted_constants": list(self.defaulted_constants),
            **({"depth": list(self.depth)} if self.graph.depth else {}),
        }


def cd_param(cd: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in cd["parameters"] if p["name"] == name)


def _n_power(e: Exp) -> str:
    return "1" if e == 0 else f"n^{text(e)}" if is_integer(e) else f"n^({text(e)})"


def _setting(p: Parametrization, pname: str, a: dict[str, Exp], b: Exp, c: Exp) -> Setting:
    """Exponents and their rules, written as rules.rule writes μP's (fan_in/fan_out)."""
    param = p.graph.params[pname]
    pr = ParamRule(pname, role_of(p.graph, param.uses[0]), param.kind, param.shape,
                   param.uses, {(u.node, pname): a[u.node] for u in param.uses}, b, c)
    mult: dict[str, str] = {}
    init_var = lr = ""
    for i, use in enumerate(param.uses):
        try:
            r = rule(p, pr, use)
            m, v, lr_u = fmt(r.multiplier), fmt(r.init_var), fmt(r.lr)
        except ValueError:  # a width exponent on a scalar-like parameter: no fan to use
            m, v, lr_u = _n_power(-a[use.node]), _n_power(-2 * b), _n_power(-c)
        mult[use.node] = m
        if i == 0:
            init_var, lr = v, lr_u
    return Setting(dict(a), b, c, init_var, mult, lr)


def _fix(analysis: Analysis, opt: Optimizer, uses: tuple[Use, ...], a: dict[str, Exp]
         ) -> tuple[Exp, Exp, dict[str, Exp] | None, str | None]:
    """(b, c) of μP with the user's a on the first use, the a each other use then needs
    (None if the user's already work), and a conflict message when no a works."""
    inv = [analysis.invariants[key(u)] for u in uses]
    b, c, a_by_use, consistent = split_invariants(inv, a[uses[0].node], opt)
    need = {u.node: a_by_use[key(u)] for u in uses}
    if all(need[u.node] == a[u.node] for u in uses):
        return b, c, None, None
    if not consistent:
        return b, c, need, ("no choice of multipliers reaches μP for this tied parameter "
                            "under " + opt.value + ": its uses need a+b, "
                            f"{opt.k}a+c = " + "; ".join(
                                f"({i.init}, {i.lr}) at {u.node}"
                                for u, i in zip(uses, inv, strict=True)))
    return b, c, need, ("your multipliers cannot reach μP for this tied parameter "
                        "(one b and one c for all uses): use the multipliers of the fix")


def check(graph: Graph, optimizer: Optimizer | str, params: ParamsFile) -> CheckResult:
    """Classify ``params`` on ``graph`` and list every departure from μP with its fix."""
    opt = Optimizer.parse(optimizer) if isinstance(optimizer, str) else optimizer
    abc: ABC = params.abc
    cls = classify(graph, opt, abc, params.source)
    analysis = solve(graph, opt)
    p = Parametrization(analysis, "check", {})
    reports: list[ParamReport] = []
    for pname, param in graph.params.items():
        uses = param.uses
        a_user = {u.node: abc.a[key(u)] for u in uses}
        b_user, c_user = abc.b[pname], abc.c[pname]
        problems = []
        for t in cls.param_terms(pname):
            where = f" at {t.use.node}" if len(uses) > 1 else ""
            if t.update != 0 and not t.dead:  # a dead end's update is not a desideratum
                problems.append(f"its update ΔW·x{where} "
                                + (f"grows like {growth(t.update)}" if t.update > 0 else
                                   f"vanishes like {growth(t.update)}")
                                + f" (r_l = {-t.update}; μP: 0, updated maximally)")
            if t.readout and t.w0_dx != 0 and not t.dead:
                problems.append(f"its init times the change of its input (W₀·Δx){where} "
                                f"{'grows' if t.w0_dx > 0 else 'vanishes'} like "
                                f"{growth(t.w0_dx)} (μP: Θ(1), initialized maximally, "
                                "TP4 Prop. 5.5)")
        invs = [analysis.invariants[key(u)] for u in uses]
        mup = all(a_user[u.node] + b_user == i.init and (
            u.node in cls.sizes.dead or opt.k * a_user[u.node] + c_user == i.lr)
            for u, i in zip(uses, invs, strict=True))  # a dead end's LR is free
        if not mup and not problems:
            problems.append("its a+b or k·a+c differs from μP's")
        u0, i0 = uses[0], invs[0]
        trap = misapplied(opt, graph, pname, graph.inf(u0.fan_in), graph.inf(u0.fan_out),
                          i0.init, i0.lr, opt.k * a_user[u0.node] + c_user)
        if trap:
            problems.append(trap)
        if not problems:
            continue
        current = _setting(p, pname, a_user, b_user, c_user)
        fix = alternative = conflict = None
        if not mup:
            b, c, need, conflict = _fix(analysis, opt, uses, a_user)
            fix = _setting(p, pname, need or a_user, b, c)
            out_uses = [u for u in uses if role_of(graph, u) is Role.OUTPUT
                        and u.kind is Kind.WEIGHT]
            if len(uses) == 1 and out_uses:  # TP5 Table 8: a 1/fan_in readout multiplier
                a8 = {uses[0].node: Fraction(graph.inf(uses[0].fan_in))}
                if a8 != a_user:
                    b8, c8, _, _ = _fix(analysis, opt, uses, a8)
                    alternative = _setting(p, pname, a8, b8, c8)
        reports.append(ParamReport(pname, role_of(graph, uses[0]), param.kind, problems,
                                   current, fix, alternative, conflict))
    consts = []
    for name, alpha in abc.alpha.items():
        mup_alpha = analysis.alpha[name]
        if alpha != mup_alpha:
            consts.append(ConstReport(name, alpha, _const(graph, name, alpha), mup_alpha,
                                      _const(graph, name, mup_alpha),
                                      name in params.defaulted_constants))
    return CheckResult(graph, opt, params.source, cls, reports, consts,
                       params.defaulted_constants,
                       double_counted(graph, opt, params.depth_init))


def _const(graph: Graph, name: str, alpha: Exp) -> str:
    try:
        return fmt(constant_expr(graph, name, alpha))
    except ValueError:
        return _n_power(-alpha)


def _changes(cur: Setting, new: Setting) -> str:
    parts = []
    for what, c, n in (("init var", cur.init_var, new.init_var),
                       ("LR", cur.lr, new.lr)):
        if c != n:
            parts.append(f"{what} {c} → {n}")
    for node, m in new.multiplier.items():
        if cur.multiplier[node] != m:
            at = f" at {node}" if len(new.multiplier) > 1 else ""
            parts.append(f"multiplier{at} {cur.multiplier[node]} → {m}")
    return ", ".join(parts) or "no change in width scaling"


def _keep(cur: Setting, new: Setting) -> str:
    same = [f"{w} {c}" for w, c, n in (("init var", cur.init_var, new.init_var),
                                        ("LR", cur.lr, new.lr)) if c == n]
    mults = set(cur.multiplier.values())
    if cur.multiplier == new.multiplier and len(mults) == 1:
        same.append(f"multiplier {mults.pop()}")
    return f" (keep {', '.join(same)})" if same else ""


def activation_items(c: Classification) -> tuple[list[tuple[str, str]], list[str]]:
    """(node, what) where a problem originates, and ``node (size when)`` of those that only
    inherit it."""
    origins = []
    for i in c.issues:
        if i.origin:
            what = ("change after training grows like" if i.when == "training" and
                    i.problem == "blows_up" else "grows at init like"
                    if i.problem == "blows_up" else "vanishes at init like")
            extra = ", should be Θ(1)" if i.problem == "vanishes" else ""
            origins.append((i.node, f"{what} {growth(i.exponent)}{extra}, from {i.cause}"))
    rest = [f"{i.node} ({growth(i.exponent)} {_when(i)})" for i in c.issues if not i.origin]
    return origins, rest


def activation_lines(c: Classification) -> list[str]:
    """One line per activation where a problem originates, then one for those that only
    inherit it."""
    origins, rest = activation_items(c)
    lines = [f"- {node}: {what}" for node, what in origins]
    return lines + ([f"- and, inherited from those: {', '.join(rest)}"] if rest else [])


def param_lines(p: ParamReport) -> list[str]:
    """What is wrong with ``p`` (after its name) and the fix, as markdown list lines."""
    lines = [f" ({p.role.value} {p.kind.value}): " + "; ".join(p.problems) + "."]
    if p.fix is None:
        return [*lines, "  - its own setting is μP's; this follows from the fixes elsewhere."]
    if p.conflict:
        lines.append(f"  - {p.conflict}.")
    lines.append(f"  - fix: {_changes(p.current, p.fix)}{_keep(p.current, p.fix)}.")
    if p.alternative:
        alt = p.alternative
        mult = next(iter(alt.multiplier.values()))
        lines.append(f"  - or add the output multiplier {mult} (TP5 Table 8): "
                     f"init var {alt.init_var}, LR {alt.lr}.")
    return lines


def const_line(graph: Graph, k: ConstReport) -> str:
    """``k``'s multiplier, μP's, and why (after its name)."""
    why = " (not in the params file: 1 assumed)" if k.defaulted else ""
    return (f": multiplier {k.multiplier}{why} should be {k.mup_multiplier}"
            f"{OPS[graph.node[k.name].op].constant_note(k.mup_exponent)}.")


def summary(res: CheckResult) -> str:
    """``N violations: r = …, stable or not, feature learning or not.``"""
    c = res.classification
    r = "none" if c.r is None else str(c.r)
    return (f"{res.count} violation{'s' if res.count != 1 else ''}: r = {r}, "
            f"{'stable' if c.stable else 'unstable'}, "
            f"{'feature learning' if c.feature_learning else 'no feature learning'}"
            f"{', kernel regime' if c.kernel_regime else ''}.")


OK_TEXT = ("OK: this is μP up to the abc-symmetry. Every activation is Θ(1) at init and stays "
           "Θ(1) in training, every parameter is updated maximally and every readout is "
           "initialized maximally.\n")
GAUGE_NOTE = "Fixes are μP in your gauge: your multipliers are kept where they can be."


def render_markdown(res: CheckResult) -> str:
    """The violations, then the fixes, as a researcher reads them."""
    c = res.classification
    head = (f"# check: {res.graph.name} with {res.source} ({res.optimizer.value})\n\n")
    if res.ok:
        return head + OK_TEXT + _defaulted(res)
    lines = [head + summary(res)]
    if c.issues:
        lines += ["", "## Activations", "", *activation_lines(c)]
        if c.diverges:
            lines += ["", DIVERGES]
    if res.params:
        lines += ["", "## Parameters", "", GAUGE_NOTE]
        for p in res.params:
            first, *rest = param_lines(p)
            lines += ["", f"- {p.name}{first}", *rest]
    if res.constants:
        lines += ["", "## Constants", ""]
        lines += [f"- {k.name}{const_line(res.graph, k)}" for k in res.constants]
    if res.depth:
        lines += ["", "## Depth", "", *(f"- {x}." for x in res.depth)]
    return "\n".join(lines) + "\n" + _defaulted(res)


def _when(i) -> str:
    return "at init" if i.when == "init" else "in training"


def _defaulted(res: CheckResult) -> str:
    dead = res.classification.dead_ends
    note = f"\nNote: {DEAD_ENDS}{', '.join(dead)}.\n" if dead else ""
    if not res.defaulted_constants:
        return note
    return note + ("\nNote: constants not in the params file, multiplier 1 assumed: "
            + ", ".join(res.defaulted_constants) + ".\n")
