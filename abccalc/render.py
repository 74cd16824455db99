"""Renderers of a :class:`Parametrization`: markdown, LaTeX, CSV and JSON tables.

The JSON schema is an interface (documented in ``docs/cli.md``)::

    {"graph", "optimizer", "variant", "parameters": [...], "constants": [...]}

with each parameter ``name, role, kind, shape, a, b, c, init_var, multiplier, lr`` (and
``uses`` for a tied parameter) and each constant ``name, exponent, multiplier``.
"""

from __future__ import annotations

import csv
import io
import json

import sympy

from abccalc.graph import Role
from abccalc.parametrization import Parametrization
from abccalc.rules import constant_expr, fmt, lr_header, rule

ROLE_TITLES = {
    Role.INPUT: "Input weights & all biases",
    Role.OUTPUT: "Output weights",
    Role.HIDDEN: "Hidden weights",
    Role.SCALAR: "Scalar-like",
}
FORMATS = ("markdown", "latex", "csv", "json")


def rows(p: Parametrization) -> list[dict]:
    """One dict per parameter, in graph order: the JSON ``parameters`` entries."""
    out = []
    for r in p.params.values():
        ru = rule(p, r)
        row = {"name": r.name, "role": r.role.value, "kind": r.kind.value,
               "shape": list(r.shape), "a": str(r.a), "b": str(r.b), "c": str(r.c),
               "init_var": fmt(ru.init_var), "multiplier": fmt(ru.multiplier),
               "lr": fmt(ru.lr)}
        if len(r.uses) > 1:
            row["uses"] = [{"node": u.node, "a": str(r.a_by_use[(u.node, u.param)]),
                            "multiplier": fmt(rule(p, r, u).multiplier)} for u in r.uses]
        out.append(row)
    return out


def constants(p: Parametrization) -> list[dict]:
    return [{"name": name, "exponent": str(alpha),
             "multiplier": fmt(constant_expr(p.graph, name, alpha))}
            for name, alpha in p.constants.items()]


def grouped(p: Parametrization, param_rows: list[dict] | None = None
            ) -> list[tuple[str, dict[Role, str]]]:
    """TP5 Table 3-style rows (Init. Var., Multiplier, LR) by role column; a cell lists
    every distinct rule of that role."""
    cells: dict[str, dict[Role, list[str]]] = {}
    names = ("Init. Var.", "Multiplier", lr_header(p.optimizer))
    for row in param_rows or rows(p):
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


def _roles(p: Parametrization) -> list[Role]:
    present = {r.role for r in p.params.values()}
    return [r for r in (Role.INPUT, Role.OUTPUT, Role.HIDDEN, Role.SCALAR) if r in present]


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


PARAM_COLS = ("name", "role", "kind", "a", "b", "c", "init_var", "multiplier", "lr")


def markdown(p: Parametrization) -> str:
    roles = _roles(p)
    param_rows = rows(p)
    title = (f"## μP for `{p.graph.name}` ({p.optimizer.value}, variant {p.variant})\n\n"
             "Rules give the width scaling; tunable constants multiply them (TP5 Eq. 4).")
    table = _md_table([""] + [ROLE_TITLES[r] for r in roles],
                      [[t, *(c.get(r, "—") for r in roles)] for t, c in grouped(p, param_rows)])
    params = _md_table(["parameter", "role", "kind", "shape", "a", "b", "c", "init var",
                        "multiplier", lr_header(p.optimizer)],
                       [[r["name"], r["role"], r["kind"], "×".join(r["shape"]),
                         *(r[k] for k in PARAM_COLS[3:])] for r in param_rows])
    out = [title, table, "### Parameters", params]
    consts = constants(p)
    if consts:
        out += ["### Parameter-free constants",
                _md_table(["node", "exponent", "multiplier"],
                          [[c["name"], c["exponent"], c["multiplier"]] for c in consts])]
    return "\n\n".join(out) + "\n"


def _latex_cell(text: str) -> str:
    expr = sympy.sympify(text.replace("^", "**"), locals={
        n: sympy.Symbol(n, positive=True) for n in ("fan_in", "fan_out")})
    return "$" + sympy.latex(expr, symbol_names={
        sympy.Symbol("fan_in", positive=True): r"\mathrm{fan\_in}",
        sympy.Symbol("fan_out", positive=True): r"\mathrm{fan\_out}"}) + "$"


def latex(p: Parametrization) -> str:
    roles = _roles(p)
    lines = [r"\begin{tabular}{l" + "c" * len(roles) + "}", r"\toprule",
             " & ".join(["", *(ROLE_TITLES[r].replace("&", r"\&") for r in roles)]) + r" \\",
             r"\midrule"]
    for t, cells in grouped(p):
        vals = ["; ".join(_latex_cell(v) for v in cells[r].split("; ")) if r in cells
                else "---" for r in roles]
        lines.append(" & ".join([t, *vals]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def csv_text(p: Parametrization) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "role", "kind", "shape", *PARAM_COLS[3:]])
    for r in rows(p):
        w.writerow([r["name"], r["role"], r["kind"], " ".join(r["shape"]),
                    *(r[k] for k in PARAM_COLS[3:])])
    return buf.getvalue()


def json_text(p: Parametrization) -> str:
    return json.dumps({"graph": p.graph.name, "optimizer": p.optimizer.value,
                       "variant": p.variant, "parameters": rows(p),
                       "constants": constants(p)}, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"markdown": markdown, "latex": latex, "csv": csv_text, "json": json_text}
