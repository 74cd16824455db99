"""Renderers of a :class:`Parametrization`: markdown, LaTeX, CSV and JSON tables.

The JSON schema is an interface (documented in ``docs/cli.md``)::

    {"graph", "optimizer", "variant", "parameters": [...], "constants": [...]}

with each parameter ``name, role, kind, shape, a, b, c, init_var, multiplier, lr`` (and
``uses`` for a tied parameter) and each constant ``name, exponent, multiplier``. Options add
keys: ``auto``/``skipped`` (``--variant auto``), ``shifts`` (``--shift``), ``form``/``base``
(``--form ratio`` or ``--base``) and a per-parameter ``m`` in the ratio form.
``--variant all`` wraps one such object per variant: ``{"graph", "optimizer",
"variant": "all", "variants": {name: object}}``, where a conflicting variant's object is
``{"graph", "optimizer", "variant", "conflict"}``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from abccalc.calculus.updates import MUON_ADJUST, muon_note, optimizer_of
from abccalc.emit.render_depth import branch_constants, depth_fields, markdown_section
from abccalc.graph.core import Graph, Role
from abccalc.parametrization.gauges import Conflict, Parametrization
from abccalc.parametrization.rules import (
    base_widths,
    constant_monomial,
    greek,
    lr_header,
    m_text,
    ratio_rules,
    rules_of,
)

ROLE_TITLES = {
    Role.INPUT: "Input weights & all biases",
    Role.OUTPUT: "Output weights",
    Role.HIDDEN: "Hidden weights",
    Role.SCALAR: "Scalar-like",
}
FORMATS = ("markdown", "latex", "csv", "json")
FORMS = ("fan", "ratio")


@dataclass(frozen=True)
class View:
    """How to render a table.

    ``form``: ``fan`` writes each rule with fan_in/fan_out (TP5 Tables 3, 8, 9); ``ratio``
    writes it relative to SP at the base widths with the tunable constants σ, α, η and
    m = fan/base_fan (TP5 Eq. 4). ``show_base`` reports the base widths in the fan form too
    (``--base`` was given). ``skipped`` is set by ``--variant auto``: each variant it tried
    before the one it used, with its conflict.
    """

    form: str = "fan"
    show_base: bool = False
    skipped: dict[str, str] | None = field(default=None, hash=False)

    @property
    def reports_base(self) -> bool:
        return self.form == "ratio" or self.show_base


PLAIN = View()


def rows(p: Parametrization, form: str = "fan") -> list[dict]:
    """One dict per parameter, in graph order: the JSON ``parameters`` entries."""
    ratio = form == "ratio"
    make = ratio_rules if ratio else rules_of
    out = []
    for r in p.params.values():
        init_var, multiplier, lr = make(p, r).texts()
        row = {"name": r.name, "role": r.role.value, "kind": r.kind.value,
               "shape": list(r.shape), "a": str(r.a_exp[(r.use.node, r.name)]),
               "b": str(r.b_exp), "c": str(r.c_exp),
               "init_var": init_var, "multiplier": multiplier, "lr": lr,
               **depth_fields(p, r)}
        if ratio:
            row["m"] = m_text(p.graph, r.use)
        if p.optimizer in MUON_ADJUST:
            row["optimizer"] = optimizer_of(p.optimizer, p.graph, r.name)
        if len(r.uses) > 1:
            row["uses"] = [{"node": u.node, "a": str(r.a_exp[(u.node, u.param)]),
                            "multiplier": make(p, r, u).multiplier.text()} for u in r.uses]
            if ratio:
                for entry, u in zip(row["uses"], r.uses, strict=True):
                    entry["m"] = m_text(p.graph, u)
        out.append(row)
    return out


def constants(p: Parametrization) -> list[dict]:
    """Width constants (depth exponent 0), then each residual branch's L^-α."""
    return [{"name": name, "exponent": str(alpha),
             "multiplier": constant_monomial(p.graph, name, alpha).text(),
             "depth_exponent": "0"}
            for name, alpha in p.constants.items()] + branch_constants(p)


def grouped(p: Parametrization, param_rows: list[dict] | None = None
            ) -> list[tuple[str, dict[Role, str]]]:
    """TP5 Table 3-style rows (Init. Var., Multiplier, LR) by role column; a cell lists
    every distinct rule of that role. The multiplier row is left out when every
    multiplier is 1 (Table 3 has none)."""
    cells: dict[str, dict[Role, list[str]]] = {}
    names = ("Init. Var.", "Multiplier", lr_header(p.optimizer))
    for row in param_rows if param_rows is not None else rows(p):
        role = Role(row["role"])
        mults = [u["multiplier"] for u in row.get("uses", [])] or [row["multiplier"]]
        for title, values in zip(names, ([row["init_var"]], mults, [row["lr"]]), strict=True):
            for v in values:
                lst = cells.setdefault(title, {}).setdefault(role, [])
                if v not in lst:
                    lst.append(v)
    out = [(t, {role: "; ".join(v) for role, v in cells[t].items()}) for t in names]
    if all(v == "1" for _, c in out[1:2] for v in c.values()):
        out.pop(1)  # no multipliers: Table 3 has no multiplier row
    return out


def _roles(ps: list[Parametrization]) -> list[Role]:
    present = {r.role for p in ps for r in p.params.values()}
    return [r for r in (Role.INPUT, Role.OUTPUT, Role.HIDDEN, Role.SCALAR) if r in present]


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


PARAM_COLS = ("name", "role", "kind", "a", "b", "c", "init_var", "multiplier", "lr")


def _shift_text(p: Parametrization) -> str:
    c = {2: "c−2θ", 1: "c−θ", 0: "c"}[p.optimizer.k]
    return (f"Shifted by the abc-symmetry (a+θ, b−θ, {c}), the same training dynamics "
            "(TP5 Lemma J.1): " + ", ".join(f"`{n}` θ = {t}" for n, t in p.shifts.items())
            + ".")


def _auto_text(p: Parametrization, skipped: dict[str, str]) -> str:
    why = "; ".join(f"{name}: {msg}" for name, msg in skipped.items())
    return f"variant auto → {p.variant}" + (f" ({why})" if why else "")


def _form_text(form: str) -> str:
    if form == "ratio":
        return ("Rules relative to SP at the base widths (TP5 Eq. 4): m = fan/base_fan of "
                "each parameter's infinite fan (fan_in if it has an infinite dim, else "
                "fan_out); at m = 1 every rule is SP up to the tunable constants σ (init), "
                "α (multiplier) and η (LR).")
    return "Rules give the width scaling; tunable constants multiply them (TP5 Eq. 4)."


def _base_text(graph: Graph, form: str) -> str:
    lines = ["Base widths" + ("" if form == "ratio" else
                              " (used by `--form ratio`; the rules above do not depend on "
                              "them)") + ":"]
    for name, size, note in base_widths(graph):
        lines.append(f"- `{name}` = {size}" + (f" ({note})" if note else ""))
    return "\n".join(lines)


def _md_param_rows(param_rows: list[dict], form: str) -> tuple[list[str], list[list[str]]]:
    keys = [*PARAM_COLS[3:], *(["m"] if form == "ratio" else [])]
    body = [[r["name"], r["role"], r["kind"], "×".join(r["shape"]),
             *(greek(r[k]) for k in keys)] for r in param_rows]
    return keys, body


def _md_constants(p: Parametrization, title: str = "### Parameter-free constants"
                  ) -> list[str]:
    consts = constants(p)
    if not consts:
        return []
    return [title, _md_table(["node", "exponent", "multiplier"],
                             [[c["name"], c["exponent"], c["multiplier"]] for c in consts])]


def markdown(p: Parametrization, view: View = PLAIN) -> str:
    roles = _roles([p])
    param_rows = rows(p, view.form)
    title = f"## μP for `{p.graph.name}` ({p.optimizer.value}, variant {p.variant})"
    notes = [title]
    if view.skipped is not None:
        notes.append(_auto_text(p, view.skipped))
    if p.shifts:
        notes.append(_shift_text(p))
    if p.optimizer in MUON_ADJUST:
        notes.append(muon_note(p.optimizer))
    notes.append(_form_text(view.form))
    table = _md_table([""] + [ROLE_TITLES[r] for r in roles],
                      [[t, *(greek(c.get(r, "—")) for r in roles)]
                       for t, c in grouped(p, param_rows)])
    keys, body = _md_param_rows(param_rows, view.form)
    header = ["parameter", "role", "kind", "shape", "a", "b", "c", "init var",
              "multiplier", lr_header(p.optimizer), *(["m"] if "m" in keys else [])]
    if p.optimizer in MUON_ADJUST:
        header.append("optimizer")
        body = [[*cells, row["optimizer"]] for cells, row in zip(body, param_rows,
                                                                strict=True)]
    out = ["\n\n".join(notes), table]
    if view.reports_base:
        out.append(_base_text(p.graph, view.form))
    out += ["### Parameters", _md_table(header, body), *_md_constants(p)]
    if p.depth.active:
        out.append(markdown_section(p))
    return "\n\n".join(out) + "\n"


def _latex_cell(text: str) -> str:
    import sympy

    from abccalc.parametrization.expr import parse_expr
    from abccalc.parametrization.rules import symbol

    names = {n: symbol(n) for n in ("fan_in", "fan_out", "sigma", "eta", "alpha", "m")}
    return "$" + sympy.latex(parse_expr(text, names), symbol_names={
        names["fan_in"]: r"\mathrm{fan\_in}", names["fan_out"]: r"\mathrm{fan\_out}"}) + "$"


def _latex_comments(p: Parametrization, view: View) -> list[str]:
    out = []
    if view.skipped is not None:
        out.append("% " + _auto_text(p, view.skipped))
    if p.shifts:
        out.append("% shifts: " + ", ".join(f"{n} theta = {t}" for n, t in p.shifts.items()))
    if view.reports_base:
        out.append("% base widths: " + ", ".join(f"{n} = {s}"
                                                 for n, s, _ in base_widths(p.graph)))
    return out


def latex(p: Parametrization, view: View = PLAIN) -> str:
    roles = _roles([p])
    lines = [*_latex_comments(p, view),
             r"\begin{tabular}{l" + "c" * len(roles) + "}", r"\toprule",
             " & ".join(["", *(ROLE_TITLES[r].replace("&", r"\&") for r in roles)]) + r" \\",
             r"\midrule"]
    for t, cells in grouped(p, rows(p, view.form)):
        vals = ["; ".join(_latex_cell(v) for v in cells[r].split("; ")) if r in cells
                else "---" for r in roles]
        lines.append(" & ".join([t, *vals]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _csv_header(form: str) -> list[str]:
    return ["name", "role", "kind", "shape", *PARAM_COLS[3:], *(["m"] if form == "ratio"
                                                                 else [])]


def _csv_rows(p: Parametrization, form: str) -> list[list[str]]:
    keys = [*PARAM_COLS[3:], *(["m"] if form == "ratio" else [])]
    return [[r["name"], r["role"], r["kind"], " ".join(r["shape"]), *(r[k] for k in keys)]
            for r in rows(p, form)]


def csv_text(p: Parametrization, view: View = PLAIN) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_csv_header(view.form))
    w.writerows(_csv_rows(p, view.form))
    return buf.getvalue()


def json_obj(p: Parametrization, view: View = PLAIN) -> dict:
    """The JSON object of one variant (see the module docstring)."""
    out: dict = {"graph": p.graph.name, "optimizer": p.optimizer.value, "variant": p.variant}
    if view.skipped is not None:
        out["auto"] = True
        out["skipped"] = dict(view.skipped)
    if p.shifts:
        out["shifts"] = {n: str(t) for n, t in p.shifts.items()}
    if p.optimizer in MUON_ADJUST:
        out["muon_adjust"] = MUON_ADJUST[p.optimizer]
        out["muon_note"] = muon_note(p.optimizer)
    if view.reports_base:
        out["form"] = view.form
        out["base"] = {n: s for n, s, _ in base_widths(p.graph)}
    out["parameters"] = rows(p, view.form)
    out["constants"] = constants(p)
    return out


def _dump(obj: dict) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def json_text(p: Parametrization, view: View = PLAIN) -> str:
    return _dump(json_obj(p, view))


RENDERERS = {"markdown": markdown, "latex": latex, "csv": csv_text, "json": json_text}


# -- --variant all -----------------------------------------------------------------------

Results = dict[str, Parametrization | Conflict]


def _solved(results: Results) -> dict[str, Parametrization]:
    return {n: p for n, p in results.items() if isinstance(p, Parametrization)}


def _merged(results: Results, form: str) -> list[tuple[str, Parametrization, list[dict]]]:
    """Solved variants with identical rows merged under one label (``table9 = tp4``)."""
    out: list[tuple[list[str], Parametrization, list[dict]]] = []
    for name, p in _solved(results).items():
        prs = rows(p, form)
        for labels, _, other in out:
            if other == prs:
                labels.append(name)
                break
        else:
            out.append(([name], p, prs))
    return [(" = ".join(labels), p, prs) for labels, p, prs in out]


def _abc_cell(p: Parametrization, name: str) -> str:
    r = p.params[name]
    a_s = [str(a) for a in r.a_exp.values()]
    a = a_s[0] if len(set(a_s)) == 1 else "[" + ", ".join(a_s) + "]"
    return f"{a}, {r.b_exp}, {r.c_exp}"


def _invariants(p: Parametrization, name: str) -> tuple[str, str]:
    """a+b and k·a+c of each use (one value when the uses agree)."""
    r, k = p.params[name], p.optimizer.k
    init = dict.fromkeys(str(a + r.b_exp) for a in r.a_exp.values())
    lr = dict.fromkeys(str(k * a + r.c_exp) for a in r.a_exp.values())
    return "; ".join(init), "; ".join(lr)


def markdown_all(results: Results, view: View = PLAIN) -> str:
    merged = _merged(results, view.form)
    first = merged[0][1]
    roles = _roles([p for _, p, _ in merged])
    lr_inv = {2: "2a+c", 1: "a+c", 0: "c"}[first.optimizer.k]
    notes = [f"## μP for `{first.graph.name}` ({first.optimizer.value}), all variants",
             f"Every variant is the same training dynamics: per parameter, a+b and {lr_inv} "
             "are fixed and a variant only chooses a (TP5 Lemma J.1)."]
    if first.shifts:
        notes.append(_shift_text(first))
    notes.append(_form_text(view.form))
    body = []
    for label, p, prs in merged:
        for i, (t, cells) in enumerate(grouped(p, prs)):
            body.append([label if i == 0 else "", t,
                         *(greek(cells.get(r, "—")) for r in roles)])
    table = _md_table(["variant", "", *(ROLE_TITLES[r] for r in roles)], body)
    out = ["\n\n".join(notes), table]
    if view.reports_base:
        out.append(_base_text(first.graph, view.form))
    header = ["parameter", "role", "a+b", lr_inv, *(label for label, _, _ in merged)]
    prow = [[name, r.role.value, *_invariants(first, name),
             *(_abc_cell(p, name) for _, p, _ in merged)]
            for name, r in first.params.items()]
    out += ["### Parameters: a, b, c in each variant", _md_table(header, prow)]
    conflicts = {n: str(e) for n, e in results.items() if isinstance(e, Conflict)}
    if conflicts:
        out += ["### Conflicts", "\n".join(f"- **{n}**: {msg}" for n, msg in conflicts.items())]
    out += _md_constants(first, "### Parameter-free constants (the same in every variant)")
    return "\n\n".join(out) + "\n"


def latex_all(results: Results, view: View = PLAIN) -> str:
    parts = []
    for name, p in results.items():
        if isinstance(p, Conflict):
            parts.append(f"% variant {name}: conflict: {p}\n")
        else:
            parts.append(f"% variant {name}\n" + latex(p, view))
    return "\n".join(parts)


def csv_all(results: Results, view: View = PLAIN) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["variant", *_csv_header(view.form), "conflict"]
    w.writerow(header)
    for name, p in results.items():
        if isinstance(p, Conflict):
            w.writerow([name, *[""] * (len(header) - 2), str(p)])
        else:
            w.writerows([name, *row, ""] for row in _csv_rows(p, view.form))
    return buf.getvalue()


def json_all(results: Results, view: View = PLAIN) -> str:
    first = next(iter(_solved(results).values()))
    variants = {}
    for name, p in results.items():
        variants[name] = json_obj(p, view) if isinstance(p, Parametrization) else {
            "graph": first.graph.name, "optimizer": first.optimizer.value, "variant": name,
            "conflict": str(p)}
    return _dump({"graph": first.graph.name, "optimizer": first.optimizer.value,
                  "variant": "all", "variants": variants})


ALL_RENDERERS = {"markdown": markdown_all, "latex": latex_all, "csv": csv_all,
                 "json": json_all}
"""Renderers of ``--variant all``: one result (Parametrization or Conflict) per variant."""
