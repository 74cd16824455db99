"""Generate the graph's PyTorch model, ``class Model(torch.nn.Module)`` (``abccalc codegen
--model``), as the plain PyTorch a person would write.

- Each repeat block whose iterations are one module with different weights is a class,
  held ``count`` times in a ``torch.nn.ModuleList`` and looped over
  (:mod:`abccalc.emit.model_blocks`); anything else is written node by node.
- ``forward`` is straight-line code, each node's lines written by its op unit
  (``torch_forward``; :class:`abccalc.emit.model_scope.Scope` is what the unit asks): a
  linear is an ``nn.Linear`` call, a norm ``nn.LayerNorm``, an attention pattern
  ``F.scaled_dot_product_attention`` with the derived scale.
- An activation has a leading batch axis, then the node's dims in order.
- Multipliers and constants that are not identically 1 are applied in the forward from
  ``self.mult`` and ``self.const``, computed at construction from the dim sizes (TP5 Eq.
  4 relative to SP at the base widths; App. B.1), so ``apply_multipliers`` leaves the
  Model alone; ``capture={}`` records every node's activation (the coordinate check).

Names from the spec reach the text only through ``repr``, :func:`doc_text`, :func:`ident`
and :func:`module_part` (:mod:`abccalc.emit.pynames`) and the scope's local names.
"""

from __future__ import annotations

import io
import keyword
import pprint
import re
import textwrap
import tokenize

import sympy
from sympy.printing.pycode import pycode

from abccalc.emit.model_blocks import RepeatBlock, find_blocks
from abccalc.emit.model_runtime import HEAD, HELPERS
from abccalc.emit.model_scope import RESERVED, Scope, attr_path
from abccalc.emit.pynames import (
    MODULE_ATTRIBUTES,
    check_module_path,
    doc_text,
    ident,
    module_part,
    module_path,
)
from abccalc.errors import AbcError
from abccalc.graph.core import Graph, Kind
from abccalc.graph.ops import OPS
from abccalc.parametrization.gauges import Parametrization
from abccalc.parametrization.rules import ratio_exponents

__all__ = ["MODULE_ATTRIBUTES", "check_model_names", "constant_expr", "doc_text", "ident",
           "model_source", "module_part", "module_path", "py_expr"]


def constant_expr(p: Parametrization, name: str) -> sympy.Expr:
    """The constant of ``name`` in its dims: SP's constant at the base widths times
    (d/base)^(α_SP − α), so it equals SP's at the base widths (TP5 App. B.1)."""
    graph = p.graph
    node = graph.node[name]
    dims = [d for d in (*node.over, *node.dims) if graph.dims[d].infinite]
    value = sympy.Float(node.value) if node.value is not None else sympy.Integer(1)
    if not dims:
        return value
    d = sympy.Symbol(dims[0], positive=True)
    over = [x for x in node.over if graph.dims[x].infinite]
    sp_value = sympy.Mul(*(sympy.Symbol(x, positive=True) for x in over)) ** -sympy.S.Half \
        if over else sympy.Integer(1)
    exponent = OPS[node.op].sp_constant(graph, node) - p.constants[name]
    return value * sp_value * (d / graph.dims[dims[0]].size) ** exponent


def py_expr(expr: sympy.Expr, name_of: dict[str, str]) -> str:
    """Python source of ``expr`` with each dim symbol written as ``name_of[dim]`` (an
    identifier or a ``sizes[...]`` lookup): the symbols are printed as placeholders
    ``_dim<i>_`` first, so no dim name is ever printed by sympy."""
    dims = sorted(str(s) for s in expr.free_symbols)
    placeholder = {sympy.Symbol(d, positive=True): sympy.Symbol(f"_dim{i}_", positive=True)
                   for i, d in enumerate(dims)}
    text = pycode(expr.subs(placeholder), fully_qualified_modules=True)
    return re.sub(r"\b_dim(\d+)_\b", lambda m: name_of[dims[int(m[1])]], text)


def size_text(expr: sympy.Expr) -> str:
    """``expr`` of the dim sizes as Python reading them from ``s``."""
    return py_expr(expr, {str(d): f"s[{str(d)!r}]" for d in expr.free_symbols})


def multiplier_texts(p: Parametrization) -> dict[tuple[str, str], str]:
    """(node, parameter) → Python text of the parameter's multiplier at that use, m^e with
    m the width ratio of its first use's infinite fan (TP5 Eq. 4), where it is not
    identically 1. Each distinct (fan, e) is printed once (a deep model repeats them)."""
    graph = p.graph
    out, memo = {}, {}
    for r in p.params.values():
        fan = r.use.fan_in if graph.inf(r.use.fan_in) else r.use.fan_out
        for use in r.uses:
            e = ratio_exponents(p, r, use)[1]
            if not e:
                continue
            if (fan, e) not in memo:
                m = sympy.Mul(*(sympy.Symbol(d, positive=True) / graph.dims[d].size
                                for d in fan if graph.dims[d].infinite))
                memo[fan, e] = size_text(m ** sympy.Rational(e.numerator, e.denominator))
            out[(use.node, r.name)] = memo[fan, e]
    return out


def constant_texts(p: Parametrization) -> dict[str, str]:
    """Node → Python text of its constant (:func:`constant_expr`) where it is not
    identically 1, each distinct one printed once; on a depth axis each residual branch
    add's is the module's ``BRANCH_MULTIPLIER`` (L/BASE_DEPTH)^-α (docs/depth.md), one
    global whatever the depth, so the text does not grow with it."""
    out = dict.fromkeys(p.depth.stream, "BRANCH_MULTIPLIER")
    memo: dict[tuple, str | None] = {}
    for name in sorted(p.constants):
        node = p.graph.node[name]
        key = (node.op, node.over, node.dims, node.value, p.constants[name])
        if key not in memo:
            expr = constant_expr(p, name)
            memo[key] = None if expr == 1 else size_text(expr)
        if memo[key] is not None:
            out[name] = memo[key]
    return out


def check_model_names(graph: Graph, names: dict[str, str]) -> None:
    """With ``--model`` the generated Model owns the names: the parameters a node reads
    first live on one module, as ``weight`` (weights, gains) and ``bias``, at a path the
    Model can hold; a tied parameter's later uses read it where it lives."""
    first = {pname: (param.uses[0].node, param.uses[0].kind)
             for pname, param in graph.params.items()}
    owner: dict[str, str] = {}
    for node in graph.order:
        modules = set()
        for kind, pname in node.param_fields:
            if first[pname] != (node.name, kind):
                continue
            module, _, attr = names[pname].rpartition(".")
            want = "bias" if kind is Kind.BIAS else "weight"
            if attr != want or not module:
                raise AbcError(f"--names: '{doc_text(pname)}' maps to "
                               f"'{doc_text(names[pname])}', but the generated Model "
                               f"names it '<module>.{want}'")
            check_module_path(module, f"'{doc_text(pname)}'")
            modules.add(module)
        if len(modules) > 1:
            raise AbcError(f"--names: the parameters of node '{doc_text(node.name)}' map to "
                           f"different modules {[doc_text(m) for m in sorted(modules)]}")
        for module in modules:
            if owner.setdefault(module, node.name) != node.name:
                raise AbcError(f"--names: nodes '{doc_text(owner[module])}' and "
                               f"'{doc_text(node.name)}' both put their parameters on "
                               f"module '{doc_text(module)}'")


def _uses(lines: list[str], name: str) -> bool:
    """Whether the statements ``lines`` (one body) read the Python name ``name``."""
    text = "if 1:\n" + "".join(f"    {line}\n" for line in lines)
    return any(t.type == tokenize.NAME and t.string == name
               for t in tokenize.generate_tokens(io.StringIO(text).readline))


def _dict_lines(attr: str, entries: dict) -> list[str]:
    if not entries:
        return []
    return [f"self.{attr} = {{", *(f"    {k!r}: {v}," for k, v in entries.items()), "}"]


def _module_lines(scope: Scope, lists: dict[str, dict[str, str]]) -> list[str]:
    """``__init__``'s module lines: each owner's module at its path (relative to the
    scope) in graph order, the ModuleLists of blocks (``lists``: node → {path:
    constructor}, made where that node comes), parents first, a ModuleDict for a path
    component no node owns."""
    made: dict[str, str] = {}
    mine = {n.name for n in scope.nodes}
    for node in scope.graph.order:
        made.update(lists.get(node.name, {}))
        if node.name not in mine:
            continue
        module = OPS[node.op].torch_module(node, scope)
        if module is not None:
            _, pname = scope.owned(node)[0]
            made[scope.rel(scope.names[pname].rpartition(".")[0])] = module
    order = {path: i for i, path in enumerate(made)}
    lines, have = [], set()
    for path in sorted(made, key=lambda x: (x.count("."), order[x])):
        parts = path.split(".")
        for j in range(1, len(parts)):
            parent = ".".join(parts[:j])
            if parent not in have and parent not in made:
                lines.append(f"{attr_path(parent)} = torch.nn.ModuleDict()")
                have.add(parent)
        lines.append(f"{attr_path(path)} = {made[path]}")
        have.add(path)
    return lines


def wrap(line: str, limit: int = 100) -> list[str]:
    """``line`` broken after commas inside brackets so that each piece fits ``limit``
    columns, continuing under the bracket's first argument; a string is one token, never
    broken. A line that does not tokenize alone (part of a bracket) stays as it is."""
    body = line.lstrip()
    pad = len(line) - len(body)
    if len(line) <= limit:
        return [line]
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(body).readline))
    except (tokenize.TokenError, SyntaxError):
        return [line]
    opens: list[int] = []
    breaks: list[tuple[int, int]] = []  # (column after a comma, its bracket's column)
    for t in toks:
        if t.type == tokenize.OP and t.string in "([{":
            opens.append(t.end[1])
        elif t.type == tokenize.OP and t.string in ")]}":
            opens.pop()
        elif t.type == tokenize.OP and t.string == "," and opens:
            breaks.append((t.end[1], opens[-1]))
    out, start, indent = [], 0, pad
    while indent + len(body) - start > limit:
        fits = [(c, col) for c, col in breaks if start < c and indent + c - start <= limit]
        if not fits:
            break
        c, col = fits[-1]
        out.append(" " * indent + body[start:c].strip())
        start, indent = c, pad + col
    return [*out, " " * indent + body[start:].strip()]


def _indent(lines: list[str], n: int) -> str:
    return "".join(f"{piece}\n" for line in lines for piece in wrap(" " * n + line))


def _methods(init_args: str, init: list[str], forward_args: str, body: list[str],
             ret: str) -> str:
    sizes = ["s = self.sizes"] if _uses(body, "s") else []
    return (_indent([f"def __init__(self, {init_args}) -> None:"], 4)
            + _indent(["super().__init__()", *init], 8) + "\n"
            + _indent([f"def forward(self, {forward_args}) -> torch.Tensor:"], 4)
            + _indent([*sizes, *body, f"return {ret}"], 8))


def _block_class(block: RepeatBlock, scope: Scope) -> str:
    covered = scope.covered()
    siblings = scope.siblings(covered)
    body = [line for node in block.nodes
            for line in scope.node_lines(node, covered, siblings)]
    args = ", ".join(f"{scope.var(a)}: torch.Tensor" for a in scope.args)
    init = ["self.sizes = s", *_module_lines(scope, {}), *_dict_lines("mult", scope.mults),
            *_dict_lines("const", scope.consts)]
    name = doc_text(block.name)
    return (f"\n\nclass {block.class_name}(torch.nn.Module):\n"
            f'    """One iteration of repeat `{name}` (nodes `{name}.<i>.<name>`, output '
            f"`{doc_text(block.output)}`).\n    ``capture`` gets each activation under "
            '``prefix`` + its name."""\n\n'
            + _methods("s: dict[str, int]", init,
                       f"{args}, *, capture: dict | None = None, prefix: str = \"\"",
                       [*body, *scope.capture_lines(True)],
                       scope.var(block.prefix + block.output)))


def _free_var(taken: set[str], first: str = "x") -> str:
    """``first`` if it is a plain name no one else takes, else the first free of x, h,
    carry, hidden (``_carry`` at worst: scope variables never start with one ``_``)."""
    return next(v for v in (first, "x", "h", "carry", "hidden", "_carry")
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and not keyword.iskeyword(v)
                and v not in taken and v not in RESERVED)


def _loop(block: RepeatBlock, scope: Scope) -> list[str]:
    """The Model's lines running the blocks in turn."""
    var = scope.var(f"{block.name}.{block.count - 1}.{block.output}")
    args = ", ".join([var, *(scope.var(o) for o in block.outer)])
    prefix = (f'f"{block.name}.{{i}}."' if re.fullmatch(r"[A-Za-z0-9_]+", block.name)
              else f'{block.name + "."!r} + f"{{i}}."')
    return [f"{var} = {scope.var(block.carry)}",
            f"for i, layer in enumerate({attr_path(block.path)}):",
            f"    {var} = layer({args}, capture=capture, prefix={prefix})"]


def model_source(p: Parametrization, names: dict[str, str], *, fuse: bool = True) -> str:
    """The Model section of the generated module; ``names`` maps graph parameters to the
    module parameter names the model gets. The text depends on the graph only, not on the
    order its nodes and dims were declared in. ``fuse=False`` writes sibling linears as
    separate calls (for comparison: the same function, one matmul each)."""
    graph = p.graph
    check_model_names(graph, names)
    mults, consts, streams = multiplier_texts(p), constant_texts(p), p.depth.stream
    blocks = find_blocks(graph, names, mults, consts)
    members = {n for b in blocks for n in b.members}
    helpers: set[str] = set()
    params = False
    classes = []
    fused: list[list[str]] = []
    for b in blocks:
        mine = {n.name for n in b.nodes}
        taken = {n.name[len(b.prefix):] for n in b.nodes} | set(b.outer)
        scope = Scope(graph, names, list(b.nodes), [b.carry, *b.outer],
                      root=f"{b.path}.0", prefix=b.prefix,
                      mults={(k[0][len(b.prefix):], k[1][len(b.prefix):]): v
                             for k, v in mults.items() if k[0] in mine},
                      consts={k[len(b.prefix):]: v for k, v in consts.items() if k in mine},
                      streams={k[len(b.prefix):]: v for k, v in streams.items() if k in mine},
                      alias={b.carry: _free_var(taken)}, fuse=fuse)
        classes.append(_block_class(b, scope))
        helpers |= scope.helpers
        params |= scope.uses_params
        fused += [[f"{b.name}.<i>.{n[len(b.prefix):]}" for n in g] for g in scope.fused]
    top = [n for n in graph.order if n.name not in members]
    inputs = [n.name for n in graph.order if OPS[n.op].is_input]
    taken = {n.name for n in top}
    alias = {}
    for b in blocks:
        var = _free_var(taken, b.name)
        taken.add(var)
        alias[f"{b.name}.{b.count - 1}.{b.output}"] = var
    scope = Scope(graph, names, top, inputs,
                  mults={k: v for k, v in mults.items() if k[0] not in members},
                  consts={k: v for k, v in consts.items() if k not in members},
                  streams={k: v for k, v in streams.items() if k not in members},
                  alias=alias, fuse=fuse)
    first = {b: next(n.name for n in graph.order if n.name in b.members) for b in blocks}
    lists = {first[b]: {b.path: f"torch.nn.ModuleList({b.class_name}(s) for _ in "
                                f"range({b.count}))"} for b in blocks}
    init = ["self.sizes = s = dim_sizes(widths)", *_module_lines(scope, lists),
            *(_dict_lines("mult", scope.mults) or ["self.mult = {}"]),
            *(_dict_lines("const", scope.consts) or ["self.const = {}"])]
    covered = scope.covered()
    siblings = scope.siblings(covered)
    last = {b.last: b for b in blocks}
    body = []
    for node in graph.order:
        if node.name in last:
            body += _loop(last[node.name], scope)
        elif node.name not in members:
            body += scope.node_lines(node, covered, siblings)
    outputs = [n.name for n in graph.order if OPS[n.op].is_output]
    helpers |= scope.helpers
    params |= scope.uses_params
    fused += scope.fused
    args = "".join(f"{scope.var(i)}: torch.Tensor, " for i in inputs)
    ordered = sorted(graph.dims, key=lambda n: (_depth(graph, n), n))
    dims = {}
    for name in ordered:
        d = graph.dims[name]
        entry: dict = {"infinite": d.infinite, "size": d.size}
        if d.of is not None:
            entry.update({"of": d.of, "times": [d.times.numerator, d.times.denominator]})
        dims[name] = entry
    example = ", ".join(f"{d!r}: {graph.dims[d].size}" for d in ordered
                        if graph.dims[d].infinite and graph.dims[d].of is None)
    text = HEAD.replace("@DIMS@", pprint.pformat(dims, sort_dicts=False, width=90)) \
        .replace("@INPUTS@", repr(inputs))
    text += "".join(HELPERS[h] for h in sorted({*helpers, *(["Params"] if params else [])}))
    text += "".join(classes)
    text += (f"\n\nclass Model(torch.nn.Module):\n"
             f'    """`{doc_text(graph.name)}` as a module, built with ``Model(widths)``, e.g.\n'
             f"    ``Model({{{doc_text(example)}}})`` (see ``dim_sizes``).\n\n"
             "    ``forward`` takes the inputs in ``INPUTS`` order, each with a leading batch "
             "axis,\n    and returns the first output; ``capture={}`` also collects every "
             "activation by\n    node name. The forward applies every multiplier and "
             "constant itself (``mult``,\n    ``const``), so ``apply_multipliers`` leaves "
             'a Model alone.' + _fused_doc(fused) + '"""\n\n'
             "    applies_multipliers = True\n\n"
             + _methods("widths: dict[str, int]", init,
                        f"{args}*, capture: dict | None = None",
                        [*body, *scope.capture_lines(False)],
                        scope.var(outputs[0]) if outputs else "None"))
    return text


def _fused_doc(groups: list[list[str]]) -> str:
    """The Model docstring's paragraph on the sibling linears computed as one matmul."""
    if not groups:
        return ""
    text = "; ".join(", ".join(f"`{doc_text(n)}`" for n in g) for g in groups)
    para = ("Sibling linears reading one input run as one matmul (``fused_linear``): "
            f"{text}. Their modules and parameters stay separate (the state_dict, "
            "init_ and param_groups are unchanged) and ``capture`` records each "
            "output, but forward hooks registered on those modules do not fire (so "
            "shard their parent block with fully_shard, not each of them).")
    return "\n\n" + "\n".join(textwrap.wrap(para, 88, initial_indent="    ",
                                              subsequent_indent="    "))


def _depth(graph: Graph, dim: str) -> int:
    """How many ``of`` links lead from ``dim`` to an independent dim."""
    of = graph.dims[dim].of
    return 0 if of is None else 1 + _depth(graph, of)
