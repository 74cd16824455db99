"""A user's own parametrization, read from a YAML params file (for ``check`` / ``classify``).

The format is documented in ``docs/check.md``::

    parameters:                       # first matching key, in file order, wins
      "*_g":  {init_var: 1, lr: 1}                      # rules in fan_in / fan_out / dims
      "@output": {init_var: 1, multiplier: 1/fan_in, lr: 1}
      W1:   {a: 0, b: 0, c: "-1"}                        # or the exponents themselves
      "*":  {init_var: 1/fan_in, multiplier: 1, lr: 1}
    constants:                        # parameter-free constants (contract, scale)
      "*scores": 1/sqrt(d_head)       # a multiplier rule, or {exponent: 1/2}

A key is an exact parameter name, an ``fnmatch`` glob (``*.W_q``) or a role selector
(``@input``, ``@hidden``, ``@output``, ``@scalar``: TP5 Table 3's columns, by the infinite
dims of the parameter's first use). An exact name that is not a parameter of the graph is an
error; a glob or a role that matches nothing is not, so one file can serve several graphs.

A rule is an expression in ``fan_in``, ``fan_out`` and the graph's dim names, read with
the whitelisted grammar of :mod:`abccalc.parametrization.expr` (numbers, names,
``* / ** ^ sqrt ( )``).
Its width exponent is found by putting n for every infinite dim (n^k for a fan with k
infinite dims) and 1 for every finite one: W = n^-a·w, w ~ N(0, n^-2b), LR = η·n^-c
(TP4 §1; TP5 Def. A.2). Constant factors (σ, η, 0.02) do not matter. A multiplier rule is
read at each use of the parameter with that use's fans; init_var and lr with the first use's.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy

from abccalc.calculus.sizes import ABC, UseKey, key
from abccalc.calculus.solver import role_of
from abccalc.errors import AbcError
from abccalc.exponents import ZERO, Exp, exact
from abccalc.graph.core import Graph, Role, Use
from abccalc.graph.ops import OPS
from abccalc.graph.yamlio import read_yaml
from abccalc.parametrization.expr import MAX_EXPONENT, ExprError, parse_expr

N = sympy.Dummy("n", positive=True)  # a Dummy: never equal to a dim named n
RULE_FIELDS = ("init_var", "multiplier", "lr")
EXP_FIELDS = ("a", "b", "c")
ROLES = {f"@{r.value}": r for r in Role}
_GLOB = re.compile(r"[*?\[]")
_FRACTION = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(/\d+)?")


@dataclass(frozen=True)
class ParamsFile:
    """What a params file says about one graph: the abc exponents, which key set each
    parameter, and the constants the file left out (multiplier 1 assumed)."""

    source: str
    abc: ABC
    keys: dict[str, str]
    defaulted_constants: tuple[str, ...]
    # exponent of the depth L (an infinite repeat count) in each init_var rule that names
    # it, e.g. -1 for GPT-2's std 0.02/sqrt(2·n_layer) (docs/depth.md)
    depth_init: dict[str, Exp] = field(default_factory=dict)


def constant_nodes(graph: Graph) -> list[str]:
    """The parameter-free ops that carry a width-scalable constant n^-α."""
    return [n.name for n in graph.order if OPS[n.op].has_constant(n)]


def _is_glob(k: str) -> bool:
    return k.startswith("@") or bool(_GLOB.search(k))


def _matches(k: str, name: str, role: Role | None) -> bool:
    if k.startswith("@"):
        return role is ROLES[k]
    return fnmatch.fnmatchcase(name, k)


def parse_exponent(value: Any, where: str) -> Exp:
    """A width exponent: a number or a fraction written as a string (``"1/2"``), exact,
    with ``|value| ≤ MAX_EXPONENT``."""
    bad = AbcError(f"{where}: expected a number or a fraction like 1/2, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40 or not _FRACTION.fullmatch(text):
            raise bad
        try:
            value = Fraction(text)
        except ZeroDivisionError:
            raise AbcError(f"{where}: {value!r} divides by zero") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise bad
    exp = Fraction(value)
    if abs(exp) > MAX_EXPONENT:
        raise AbcError(f"{where}: exponent {exp} is larger than {MAX_EXPONENT} in size")
    return exp


def _parse(text: str, names: dict[str, sympy.Symbol], where: str) -> sympy.Expr:
    """``text`` in the rule grammar of :mod:`abccalc.parametrization.expr` (never evaluated
    as Python)."""
    try:
        return parse_expr(text, names)
    except ExprError as e:
        if e.unknown is not None:
            raise AbcError(f"{where}: unknown name '{e.unknown}' in '{text}' (known: "
                           f"{_known(names)})") from None
        raise AbcError(f"{where}: '{text}' is not an expression in {_known(names)}, "
                       f"sqrt, numbers, * / ** ( ): {e}") from None


def _known(names: dict[str, sympy.Symbol]) -> str:
    return ", ".join(names)


def rule_exponent(value: Any, names: dict[str, sympy.Symbol], subs: dict[sympy.Symbol, Any],
                  where: str) -> Exp:
    """The width exponent p of a rule that scales like n^p (a positive monomial)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AbcError(f"{where}: expected a rule such as 1/fan_in, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AbcError(f"{where}: {value!r} is not a finite number")
    expr = _parse(value, names, where) if isinstance(value, str) \
        else sympy.Rational(Fraction(value))
    unknown = sorted(str(s) for s in expr.free_symbols if s not in names.values())
    if unknown:
        raise AbcError(f"{where}: unknown name '{unknown[0]}' in '{value}' (known: "
                       f"{_known(names)})")
    for factor in sympy.Mul.make_args(expr):
        base, power = factor.as_base_exp()
        if factor.is_Number or (base.is_Symbol and power.is_Rational):
            continue
        raise AbcError(f"{where}: '{value}' is not a monomial (a constant times powers of "
                       f"{_known(names)})")
    if expr == 0:
        raise AbcError(f"{where}: '{value}' is zero; write the width scaling it would have "
                       "otherwise (zero satisfies any init rule, TP5 App. B)")
    if not expr.is_positive:
        raise AbcError(f"{where}: '{value}' must be positive")
    coeff, power = sympy.powsimp(expr.subs(subs)).as_coeff_exponent(N)
    if coeff.free_symbols or not power.is_Rational:
        raise AbcError(f"{where}: '{value}' does not scale like a power of the width")
    return exact(power)


def rule_names(graph: Graph) -> dict[str, sympy.Symbol]:
    """The symbols a rule may name: depth values, the graph's dims, ``fan_in``, ``fan_out``."""
    names = {v: sympy.Symbol(v, positive=True) for _, v, *_ in graph.depth}
    names.update({d: sympy.Symbol(d, positive=True) for d in graph.dims})
    names["fan_in"] = sympy.Symbol("fan_in", positive=True)
    names["fan_out"] = sympy.Symbol("fan_out", positive=True)
    return names


def rule_subs(graph: Graph, names: dict[str, sympy.Symbol], use: Use | None
              ) -> dict[sympy.Symbol, Any]:
    """n for every infinite dim, 1 for every finite one and every depth value, and
    ``use``'s fans as powers of n."""
    subs: dict[sympy.Symbol, Any] = {names[v]: 1 for _, v, *_ in graph.depth}
    subs.update({names[d]: N if dim.infinite else 1 for d, dim in graph.dims.items()})
    if use is not None:
        subs[names["fan_in"]] = N ** graph.inf(use.fan_in)
        subs[names["fan_out"]] = N ** graph.inf(use.fan_out)
    return subs


def _per_use(value: Any, uses: tuple[Use, ...], where: str) -> dict[str, Any]:
    """``value`` for every use, or a mapping node → value for a tied parameter."""
    if not isinstance(value, dict):
        return {u.node: value for u in uses}
    nodes = [u.node for u in uses]
    unknown = [k for k in value if k not in nodes]
    missing = [n for n in nodes if n not in value]
    if unknown or missing:
        raise AbcError(f"{where}: a per-use mapping needs exactly the nodes {nodes}")
    return dict(value)


def _param_entry(graph: Graph, pname: str, entry: Any, where: str,
                 names: dict[str, sympy.Symbol]) -> tuple[dict[UseKey, Exp], Exp, Exp]:
    uses = graph.params[pname].uses
    if not isinstance(entry, dict):
        raise AbcError(f"{where}: expected a mapping with {{init_var, multiplier, lr}} or "
                       "{a, b, c}")
    fields = set(entry)
    unknown = sorted(fields - set(RULE_FIELDS) - set(EXP_FIELDS))
    if unknown:
        raise AbcError(f"{where}: unknown field '{unknown[0]}' (rules: init_var, multiplier, "
                       "lr; or exponents: a, b, c)")
    if fields & set(RULE_FIELDS) and fields & set(EXP_FIELDS):
        raise AbcError(f"{where}: give either rules (init_var, multiplier, lr) or exponents "
                       "(a, b, c), not both")
    exponents = bool(fields & set(EXP_FIELDS))
    need = ("b", "c") if exponents else ("init_var", "lr")
    for f in need:
        if f not in entry:
            raise AbcError(f"{where}: missing '{f}'")
    first = uses[0]
    if exponents:
        a_raw = _per_use(entry.get("a", 0), uses, f"{where}: 'a'")
        a = {key(u): parse_exponent(a_raw[u.node], f"{where}: 'a'") for u in uses}
        b = parse_exponent(entry["b"], f"{where}: 'b'")
        c = parse_exponent(entry["c"], f"{where}: 'c'")
        return a, b, c
    m_raw = _per_use(entry.get("multiplier", 1), uses, f"{where}: 'multiplier'")
    a = {key(u): -rule_exponent(m_raw[u.node], names, rule_subs(graph, names, u),
                                f"{where}: 'multiplier'") for u in uses}
    sub = rule_subs(graph, names, first)
    b = -rule_exponent(entry["init_var"], names, sub, f"{where}: 'init_var'") / 2
    c = -rule_exponent(entry["lr"], names, sub, f"{where}: 'lr'")
    return a, b, c


def _constant(graph: Graph, node: str, value: Any, where: str,
              names: dict[str, sympy.Symbol]) -> Exp:
    if isinstance(value, dict):
        if set(value) != {"exponent"}:
            raise AbcError(f"{where}: expected a multiplier rule (1/sqrt(d_head)) or "
                           "{exponent: α} for n^-α")
        return parse_exponent(value["exponent"], f"{where}: 'exponent'")
    return -rule_exponent(value, names, rule_subs(graph, names, None), where)


def load_params(path: str | Path, graph: Graph,
                base: Callable[[], ABC] | None = None) -> ParamsFile:
    """Read a params file for ``graph``; every error is one line naming the file. A file
    with only ``lr`` (an optimizer setup, :func:`lrs_from_dict`) takes init and
    multipliers from ``base()``."""
    data = read_yaml(path)
    if isinstance(data, dict) and "lr" in data and base is not None:
        return lrs_from_dict(data, graph, base(), str(path))
    return params_from_dict(data, graph, str(path))


def lrs_from_dict(data: Any, graph: Graph, base: ABC, source: str = "<lrs>") -> ParamsFile:
    """An optimizer setup: ``lr`` maps parameter names, globs or roles (first match wins)
    to the LR scale of their param group, a rule such as ``1/fan_in``; init and
    multipliers are ``base``'s (abccalc's μP model). So only c comes from the file."""
    if not isinstance(data, dict) or not isinstance(data.get("lr"), dict) or set(data) != {
            "lr"}:
        raise AbcError(f"{source}: not an LR file: expected only 'lr', a mapping of "
                       "parameter names or globs to LR rules such as 1/fan_in")
    names = rule_names(graph)
    entries: dict[str, Any] = {str(k): v for k, v in data["lr"].items()}
    _check_keys(entries, graph, source)
    c: dict[str, Exp] = {}
    keys: dict[str, str] = {}
    for pname, param in graph.params.items():
        first = param.uses[0]
        k = next((k for k in entries if _matches(k, pname, role_of(graph, first))), None)
        if k is None:
            raise AbcError(f"{source}: parameter '{pname}': no key matches it (add it or a "
                           "glob such as \"*\")")
        c[pname] = -rule_exponent(entries[k], names, rule_subs(graph, names, first),
                                  f"{source}: parameter '{pname}' (key '{k}')")
        keys[pname] = k
    return ParamsFile(source, ABC(dict(base.a), dict(base.b), c, dict(base.alpha)), keys, ())


def _check_keys(entries: dict[str, Any], graph: Graph, source: str) -> None:
    """Every key is a known role, a glob, or a parameter of ``graph``."""
    for k in entries:
        if k.startswith("@") and k not in ROLES:
            raise AbcError(f"{source}: key '{k}': unknown role (known: {', '.join(ROLES)})")
        if not _is_glob(k) and k not in graph.params:
            raise AbcError(f"{source}: key '{k}': unknown parameter name (not in "
                           f"{graph.source}; use a glob such as '*{k}' for keys meant for "
                           "other graphs)")


def params_from_dict(data: Any, graph: Graph, source: str = "<params>") -> ParamsFile:
    """Turn parsed YAML (or an equivalent dict) into exponents for ``graph``."""
    if not isinstance(data, dict) or not isinstance(data.get("parameters"), dict):
        raise AbcError(f"{source}: not a params file: expected a mapping with 'parameters' "
                       "(a mapping of parameter names or globs to rules)")
    extra = sorted(set(data) - {"parameters", "constants"})
    if extra:
        raise AbcError(f"{source}: unknown top-level key '{extra[0]}' (known: parameters, "
                       "constants)")
    consts = data.get("constants") or {}
    if not isinstance(consts, dict):
        raise AbcError(f"{source}: 'constants' must be a mapping of node names to multipliers")
    names = rule_names(graph)
    entries: dict[str, Any] = {str(k): v for k, v in data["parameters"].items()}
    _check_keys(entries, graph, source)
    a: dict[UseKey, Exp] = {}
    b: dict[str, Exp] = {}
    c: dict[str, Exp] = {}
    keys: dict[str, str] = {}
    depth_init: dict[str, Exp] = {}
    for pname, param in graph.params.items():
        role = role_of(graph, param.uses[0])
        k = next((k for k in entries if _matches(k, pname, role)), None)
        if k is None:
            raise AbcError(f"{source}: parameter '{pname}': missing (no key matches it; "
                           "add it or a glob such as \"*\")")
        where = f"{source}: parameter '{pname}' (key '{k}')"
        a_p, b[pname], c[pname] = _param_entry(graph, pname, entries[k], where, names)
        a.update(a_p)
        keys[pname] = k
        rule = entries[k].get("init_var") if isinstance(entries[k], dict) else None
        if graph.depth and isinstance(rule, str):
            depth = {s: N if str(s) in {v for _, v, *_ in graph.depth} else 1
                     for s in names.values()}
            e = rule_exponent(rule, names, depth, f"{where}: 'init_var'")
            if e:
                depth_init[pname] = e
    const_nodes = constant_nodes(graph)
    alpha: dict[str, Exp] = {}
    for k in consts:
        k = str(k)
        if not _is_glob(k) and k not in const_nodes:
            raise AbcError(f"{source}: constants key '{k}': not a constant of {graph.source} "
                           f"(known: {', '.join(const_nodes) or 'none'})")
    for node in const_nodes:
        k = next((str(k) for k in consts if fnmatch.fnmatchcase(node, str(k))), None)
        if k is not None:
            alpha[node] = _constant(graph, node, consts[k],
                                    f"{source}: constant '{node}' (key '{k}')", names)
    defaulted = tuple(n for n in const_nodes if n not in alpha)
    alpha.update({n: ZERO for n in defaulted})
    return ParamsFile(source, ABC(a, b, c, alpha), keys, defaulted, depth_init)
