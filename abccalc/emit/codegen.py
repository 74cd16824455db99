"""Generate a standalone PyTorch module that applies a parametrization.

The module imports only ``math`` and ``torch``. Every rule is written relative to SP at
the base width (TP5 Eq. 4): init var = σ²/fan_in·m^e₁, multiplier = m^e₂, LR = η·m^e₃,
where m = fan/base_fan of the parameter's infinite fan, read from the tensor's shape.
Expressions are printed with sympy's Python code printer. Parameters that share a rule
share one entry keyed by a name pattern (:func:`rules`, :mod:`abccalc.emit.patterns`), so
the text does not grow with depth; the fixed text is in :mod:`abccalc.emit.codegen_runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import sympy
from sympy.printing.pycode import pycode

from abccalc import __version__
from abccalc.calculus.solver import solve
from abccalc.emit.codegen_batch import apply as apply_batch
from abccalc.emit.codegen_batch import batch_doc, batch_source
from abccalc.emit.codegen_depth import DEPTH_DOC, depth_source, group_scales
from abccalc.emit.codegen_model import constant_expr, doc_text, ident, model_source, py_expr
from abccalc.emit.codegen_optim import optimizer_source, use_text
from abccalc.emit.codegen_runtime import EPS_DOC, FUSED, HEADER, functions
from abccalc.emit.patterns import (
    Starred,
    check_names,
    default_names,
    expand_names,
    match_pattern,
    split_part,
    star,
)
from abccalc.errors import AbcError
from abccalc.exponents import ONE, ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Kind, Use
from abccalc.graph.ops import OPS
from abccalc.parametrization.batch import BatchTransfer
from abccalc.parametrization.gauges import (
    Parametrization,
    ParamRule,
    from_abc,
    parametrize,
    parametrize_auto,
)
from abccalc.parametrization.paramsfile import load_params
from abccalc.parametrization.presets import sp
from abccalc.parametrization.rules import (
    M,
    fan_rules,
    fmt,
    ratio_exponents,
    ratio_of,
    rules_of,
    signature,
)

TABLE_TITLES = {"table3": "TP5 Table 3", "table8": "TP5 Table 8", "table9": "TP5 Table 9",
                "tp4": "TP4 Table 1 (TP5 Table 9)", "unit": "unit-variance (u-muP style)"}
COLUMN = {"input": "input weights & all biases", "output": "output weights",
          "hidden": "hidden weights", "scalar": "scalar-like"}


_functions = lru_cache(maxsize=1)(functions)  # fixed text, read from source once


def load_parametrization(graph: Graph, optimizer: str, variant: str, preset: str = "mup",
                         depth_alpha: Exp = ONE) -> Parametrization:
    """μP in ``variant`` (``auto``: the first without a tied-weight conflict) for
    ``optimizer`` (``adamw`` is Adam-like), SP (``preset='sp'``) or a params file; μP
    scales an infinite repeat count with branch multipliers L^-``depth_alpha``."""
    analysis = solve(graph, Optimizer.parse(optimizer))
    if preset == "sp":
        return sp(analysis)
    if preset != "mup":  # a params file (docs/check.md)
        return from_abc(analysis, load_params(preset, graph).abc, Path(preset).stem)
    if variant == "auto":
        return parametrize_auto(analysis, depth_alpha=depth_alpha)[0]
    return parametrize(analysis, variant, depth_alpha=depth_alpha)


def _fan_axes(graph: Graph, use: Use) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(fan_in axes, width-scaling fan axes, which fan) in PyTorch's layout: a Linear
    weight is (fan_out, fan_in), a conv weight (out, in, *kernel), an Embedding
    (vocab, fan_out) with fan_in 1, a bias or gain (fan_out,) with fan_in 1."""
    node = graph.node[use.node]
    fan_in_axes, fan_out_axes = OPS[node.op].fan_axes(node, use)
    if graph.inf(use.fan_in):
        return fan_in_axes, fan_in_axes, "fan_in"
    if graph.inf(use.fan_out):
        return fan_in_axes, fan_out_axes, "fan_out"
    return fan_in_axes, (), ""


@lru_cache(maxsize=1024)
def _py(expr: sympy.Expr) -> str:
    return pycode(expr, fully_qualified_modules=True)


@lru_cache(maxsize=1024)
def _m_power(e: Exp) -> str:
    """Python code of m**e (sympy's printer, once per distinct exponent)."""
    return _py(M ** sympy.Rational(e.numerator, e.denominator))


@lru_cache(maxsize=4096)
def _rule_lines(title: str, column: str, opt: str, unit: bool, k_in: int, k_out: int,
                sig: tuple[int, ...]) -> tuple[str, ...]:
    """The comment and scale lines of every parameter with this signature: a use with
    ``k_in``/``k_out`` infinite dims and (a, b, c) of :func:`signature` ``sig``."""
    init_var, multiplier, lr = (doc_text(t) for t in fan_rules(unit, k_in, k_out, sig).texts())
    a, b, c = (Fraction(sig[i], sig[i + 1]) for i in (0, 2, 4))  # as signature() wrote
    ev, em, el = ratio_of(k_in, k_out, sig) if k_in or k_out else (ZERO, ZERO, ZERO)
    return (f"    # {title}, {column}: init var {init_var}, multiplier {multiplier}, {opt} LR "
            f"{lr}",
            f"    # (a, b, c) = ({a}, {b}, {c}); vs SP at base width: var x m^{ev}, "
            f"mult x m^{em}, LR x m^{el}",
            f"        var_scale=lambda m: {_m_power(ev)},",
            f"        multiplier=lambda m: {_m_power(em)},")


class Entry(NamedTuple):
    """One parameter's rule, names aside: parameters of equal entries share a pattern."""

    lines: tuple[str, ...]  # comments and the Rule's fields after module_param
    part: tuple[int, int, int] | None
    scales: tuple[str, ...]  # group_scales (the parts of one fused tensor must agree)


def _entry(p: Parametrization, r: ParamRule, part: tuple[int, int, int] | None,
           eps: bool) -> Entry:
    graph = p.graph
    use = r.use
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    rules_of(p, r)  # a scalar-like parameter with nonzero exponents is an error
    in_axes, axes, which = _fan_axes(graph, use)
    base_fan = graph.size(use.fan_in if which == "fan_in" else use.fan_out) if which else 1
    init = "zeros" if r.kind is Kind.BIAS else "ones" if r.kind is Kind.GAIN else "normal"
    sig = signature(r.a_exp[(use.node, r.name)], r.b_exp, r.c_exp)
    comment1, comment2, *scales = _rule_lines(
        doc_text(TABLE_TITLES.get(p.variant, p.variant)), COLUMN[r.role.value],
        p.optimizer.value, p.variant == "unit", k_in, k_out, sig)
    lr = ratio_of(k_in, k_out, sig)[2] if k_in or k_out else ZERO
    groups = group_scales(p, r, lr, k_in if which == "fan_in" else k_out if which else 0,
                          eps)
    return Entry((comment1, comment2, f"role={r.role.value!r}, init={init!r},",
                  f"        fan_in_axes={in_axes!r}, fan_axes={axes!r}, base_fan={base_fan},",
                  *scales, *groups), part, groups)


def _uses(p: Parametrization, r: ParamRule) -> tuple[tuple[str, Exp], ...]:
    """A tied parameter's later uses whose multiplier differs from its first use's (a tied
    embedding's readout carries 1/m in Table 8), with that multiplier's exponent."""
    if len(r.uses) == 1:
        return ()
    first = ratio_exponents(p, r)[1]
    return tuple((u.node, e) for u in r.uses[1:] if (e := ratio_exponents(p, r, u)[1]) != first)


def _starred_uses(r: ParamRule, uses: tuple[tuple[str, Exp], ...]
                  ) -> tuple[tuple[str, Exp], ...] | None:
    """``uses`` keyed by node pattern (digit components starred), or None when a pattern
    would also meet a use of ``r`` with another multiplier."""
    starred: dict[str, Exp] = {}
    for node, e in uses:
        if starred.setdefault(star(node)[0], e) != e:
            return None
    exps = dict(uses)
    for pattern, e in starred.items():
        if any(match_pattern(pattern, u.node) is not None and exps.get(u.node) != e
               for u in r.uses):
            return None
    return tuple(starred.items())


def _rule_text(key: str, module: str, entry: Entry, uses: tuple[tuple[str, Exp], ...]
               ) -> list[str]:
    comment1, comment2, kinds, *fields = entry.lines
    mults = [f"            {node!r}: lambda m: {_m_power(e)}," for node, e in uses]
    return [
        comment1,
        comment2,
        f"    {key!r}: Rule(",
        f"        module_param={module!r}, {kinds}",
        *fields,
        *(["        use_multipliers={", *mults, "        },"] if mults else []),
        *([f"        part={entry.part!r},"] if entry.part else []),
        "    ),",
    ]


def _fingerprints(p: Parametrization
                  ) -> Callable[[ParamRule, tuple[int, int, int] | None], list]:
    """What :func:`_entry` reads of a parameter, names left out: its kind, role, shape
    (the dims a use broadcasts over), part, b, c and depth exponents, and per use the
    node's class (:attr:`Graph.classes`: op, fields, dims and fans, so the fan axes),
    whether it is dead, a, the node's gradient size and its inputs' sizes (all that an
    op's operand rule reads, :mod:`abccalc.graph.ops`). Parameters of equal fingerprints
    have equal entries.
    Exponents are compared as the very objects that the solver (and :func:`parametrize`'s
    memo) share between a repeated block's copies, so ``==`` of two fingerprints mostly
    tests identity, which a list comparison does before calling ``Fraction.__eq__``."""
    graph, sizes, depth = p.graph, p.analysis.sizes, p.depth.params
    node, classes, dead = graph.node, graph.classes, sizes.dead
    s0, sd, g = sizes.s0, sizes.sd, sizes.g

    def fingerprint(r: ParamRule, part: tuple[int, int, int] | None) -> list:
        d = depth[r.name]
        out = [r.kind, r.role, r.shape, part, d.a, r.b_exp, r.c_exp, d.b, d.c,
               d.branch is None]
        for u in r.uses:
            n = u.node
            out += (classes[n], u.kind, u.fan_in, u.fan_out, n in dead,
                    r.a_exp[n, u.param], g.get(n))
            for x in node[n].inputs:
                out += (s0.get(x), sd.get(x))
        return out

    return fingerprint


def rules(p: Parametrization, names: dict[str, str], eps: bool = True) -> list[str]:
    """The PARAMETERS entries. Parameters whose graph and module names agree once their
    digit components (a repeat block's iteration, a ModuleList index) are starred, with
    the same digits in both, and whose rules are equal share one entry keyed by that
    pattern, unless the pattern also meets another parameter or a use of another
    multiplier; every other parameter has its own entry, keyed by its name.

    The work grows with the rule families, not parameters × rules: a family's entry is
    made once per distinct fingerprint (:func:`_fingerprints`), and a pattern's other
    matches are counted by :class:`~abccalc.emit.patterns.Starred`, not by matching
    every name."""
    params, paths = Starred(), Starred()
    fingerprint_of = _fingerprints(p)
    known: dict[tuple[str, str], list[tuple[list, Entry]]] = {}
    made: list[tuple[list, Entry]] = []  # every distinct fingerprint, across families
    groups: dict[tuple, tuple[Entry, list[ParamRule]]] = {}
    path_of: dict[str, str] = {}
    parts: dict[str, Entry] = {}
    later: dict[str, tuple[tuple[str, Exp], ...]] = {}
    for r in p.params.values():
        name = r.name
        path, part = split_part(names[name])
        path_of[name] = path
        (gkey, gdigits), (mkey, mdigits) = params.add(name), paths.add(path)
        pattern = gdigits and gdigits == mdigits
        family = (gkey, mkey) if pattern else (name, path)
        seen = known.get(family)
        if seen is None:
            seen = known[family] = []
        fingerprint = fingerprint_of(r, part)
        entry = None
        for f, e in seen:  # a loop, not next(): most families hold one entry
            if f == fingerprint:
                entry = e
                break
        if entry is None:  # a new rule in this family (its first parameter, or another)
            entry = next((e for f, e in made if f == fingerprint), None)
            if entry is None:  # nor made for another family (W_q's entry is W_k's)
                entry = _entry(p, r, part, eps)
                made.append((fingerprint, entry))
            entry = next((e for _, e in seen if e == entry), entry)
            seen.append((fingerprint, entry))
        if part is not None:
            parts[name] = entry
        later[name] = uses = _uses(p, r) if len(r.uses) > 1 else ()
        if uses and pattern:
            uses = tuple((star(n)[0], e) for n, e in uses)
        # A family holds one object per distinct entry, so its id stands for its value.
        group = groups.get(key := (*family, id(entry), uses))
        if group is None:
            group = groups[key] = (entry, [])
        group[1].append(r)
    _check_parts(p.graph, path_of, parts)
    lines: list[str] = []
    for (key, module, _, uses), (entry, group) in groups.items():
        starred = [_starred_uses(r, later[r.name]) for r in group]
        if "*" not in key or (
                params.matches(key) == len(group) and None not in starred
                and paths.matches(module) == len({path_of[r.name] for r in group})):
            lines += _rule_text(key, module, entry, starred[0] or uses)
            continue
        for r in group:  # the pattern would cover more: each parameter by its name
            lines += _rule_text(r.name, path_of[r.name], entry, later[r.name])
    return lines


def _check_parts(graph: Graph, path_of: dict[str, str], parts: dict[str, Entry]) -> None:
    """The parts of one fused tensor share its optimizer group: their group scales (LR,
    eps, weight decay) agree."""
    scales: dict[str, dict[tuple[str, ...], str]] = {}
    for pname in graph.params:
        if pname in parts:
            scales.setdefault(path_of[pname], {}).setdefault(parts[pname].scales, pname)
    for path, by_scales in scales.items():
        if len(by_scales) > 1:
            a, b = list(by_scales.values())[:2]
            raise AbcError(f"--names: '{doc_text(a)}' and '{doc_text(b)}' are parts of "
                           f"'{doc_text(path)}' with different LR rules (or eps or weight "
                           "decay), but a tensor has one optimizer group; keep them as "
                           "separate module parameters")


def constant_functions(p: Parametrization) -> dict[str, str]:
    """Node → name of its ``<local>_scale`` function, for each constant over an infinite
    dim: nodes with one local name (the last dotted part, ``scores`` for every block's
    ``block.<i>.scores``) and one rule share a function; another rule of the same local
    name gets ``_2``, ``_3``, … (in sorted node order, so declaration order is moot).
    Nodes of one class (:attr:`Graph.classes`) and exponent have one rule, made once."""
    return {name: func for name, (func, _) in _constant_rules(p).items()}


def _constant_rules(p: Parametrization) -> dict[str, tuple[str, sympy.Expr]]:
    """Node → its :func:`constant_functions` name and that function's expression."""
    graph = p.graph
    funcs: dict[str, tuple[str, sympy.Expr]] = {}
    rules: dict[str, list[sympy.Expr]] = {}
    made: dict[tuple[int, Exp], sympy.Expr] = {}
    for name in sorted(p.constants):
        if not any(graph.dims[d].infinite for d in graph.node[name].over):
            continue
        local = name.rsplit(".", 1)[-1]
        exprs = rules.setdefault(local, [])
        expr = made.get(key := (graph.classes[name], p.constants[name]))
        if expr is None:
            expr = made[key] = constant_expr(p, name)
        if expr not in exprs:
            exprs.append(expr)
        k = exprs.index(expr)
        funcs[name] = f"{ident(local)}_scale" + (f"_{k + 1}" if k else ""), exprs[k]
    return funcs


def _constants(p: Parametrization) -> list[str]:
    """One function per distinct constant over an infinite dim (the attention scale),
    its arguments the dims it depends on (as identifiers, :func:`ident`)."""
    graph = p.graph
    out: list[str] = []
    seen: set[str] = set()
    for name, (func, expr) in _constant_rules(p).items():
        if func in seen:
            continue
        seen.add(func)
        alpha = p.constants[name]
        dims = [d for d in graph.node[name].over if graph.dims[d].infinite]
        args = ", ".join(f"{ident(a)}: int" for a in sorted(str(x) for x in expr.free_symbols))
        d = sympy.Symbol(dims[0], positive=True)
        base = graph.dims[dims[0]].size
        dim = doc_text(dims[0])
        out += [
            "",
            "",
            f"def {func}({args}) -> float:",
            f'    """Multiplier of `{doc_text(name)}`: {doc_text(fmt(d ** -alpha))} scaling '
            "(TP5 Def. 4.1).",
            "",
            f"    Use it in your forward in place of 1/sqrt({dim}):",
            "",
            f"        y = (q @ k.transpose(-2, -1)) * {func}({ident(dims[0])})",
            "",
            f"    It equals 1/sqrt({dim}) at the base {dim} = {base} "
            '(TP5 App. B.1)."""',
            f"    return {py_expr(expr, {str(x): ident(str(x)) for x in expr.free_symbols})}",
        ]
    return out


def _join(depth: str, batch: str) -> str:
    """The depth section, then the batch one, two blank lines apart (PEP 8 after a def)."""
    return depth + "\n" + batch if depth and batch else depth or batch


def generate(p: Parametrization, *, names: dict[str, str] | None = None,
             model: bool = False, source: str = "", lion: bool = False,
             batch: BatchTransfer | None = None, fuse: bool = True) -> str:
    """The module's text; deterministic for the same inputs. ``names`` maps graph
    parameters, or patterns of them, to module parameter names or patterns
    (:func:`~abccalc.emit.patterns.expand_names`); default ``<node>.weight``. A Muon
    setup also gets Muon/AdamW groups and step helpers, ``lion`` a plain-torch Lion
    (:mod:`abccalc.emit.codegen_optim`); ``batch`` the batch-size and duration factors
    (:mod:`abccalc.emit.codegen_batch`). ``fuse=False``: the Model's sibling linears as
    separate calls (:func:`~abccalc.emit.codegen_model.model_source`)."""
    graph = p.graph
    if batch is not None and (lion or batch.adam != (p.optimizer is Optimizer.ADAM)):
        raise AbcError(f"batch factors for {batch.optimizer} do not apply to "
                       f"{'lion' if lion else p.optimizer.value} (docs/batch.md)")
    names = default_names(graph) if names is None else expand_names(graph, names, "--names")
    check_names(graph, names, "--names")
    opt_class = "SGD" if p.optimizer.value == "sgd" else "AdamW"
    base = {d: graph.dims[d].size for d in sorted(graph.dims) if graph.dims[d].infinite}
    eps = p.optimizer is Optimizer.ADAM and not lion  # Lion has no eps
    rule_lines = rules(p, names, eps)
    fused = any(split_part(name)[1] for name in names.values())  # its own fast path
    text = HEADER.format(
        title=f"muP for `{doc_text(graph.name)}`: init, parameter groups and forward "
              "multipliers.",
        version=__version__, source=doc_text(source or graph.source),
        graph=doc_text(graph.name), optimizer=p.optimizer.value, variant=p.variant,
        variant_text=doc_text(p.variant), base_widths=repr(base),
        use=use_text(p, lion) or f"    opt = torch.optim.{opt_class}(param_groups(model, "
                                 f"lr=...{', eps=1e-8' if eps else ''}))",
        fused=FUSED.format() if fused else "", eps_doc=EPS_DOC if eps else "",
        depth_doc=(DEPTH_DOC if p.depth.active else "") + batch_doc(batch),
        depth=_join(depth_source(p), batch_source(batch)))
    text += ("\n".join(rule_lines) + "\n}\n" + apply_batch(_functions(), batch)
             + optimizer_source(p, lion, rule_lines))
    constants = _constants(p)
    text += "\n".join(constants) + ("\n" if constants else "")
    if model:
        text += model_source(p, names, fuse=fuse)
    if max(len(line) for line in text.splitlines()) > 100:  # a long name, repr'd whole
        text += "\n# ruff: noqa: E501\n"
    return text
