"""Generate ``class Model(torch.nn.Module)`` for a graph (``abccalc codegen --model``).

The model interprets a literal table of the graph's nodes, in the graph's topological
order (so the text does not depend on the order nodes were declared in): each activation
is a tensor with a leading batch axis followed by the node's dims, in order; linears
flatten their in-dims, contractions are einsums. Weight multipliers and parameter-free
constants are applied in the forward, from the generated PARAMETERS and constant rules.

Names from the spec never reach generated text as code: strings are written with
``repr``, text in docstrings and comments through :func:`doc_text`, Python identifiers
through :func:`ident`, and module attribute paths through :func:`module_part`.
"""

from __future__ import annotations

import keyword
import pprint
import re
import textwrap
from collections.abc import Callable
from functools import lru_cache

import sympy
from sympy.printing.pycode import pycode

from abccalc.errors import AbcError
from abccalc.graph.core import Graph, Kind, Node
from abccalc.graph.ops import OPS, Op
from abccalc.parametrization.gauges import Parametrization

# the generated Model's residual branch multiplier (abccalc.emit.codegen_depth)
MODEL_BRANCH = '''            stream = stream_input(n["name"])
            if stream is not None:  # x + L^-alpha * f(x)
                xs = [x if i == stream else x * BRANCH_MULTIPLIER for i, x in enumerate(xs)]
'''

# Public attributes of torch.nn.Module, ModuleDict, Linear, Conv1d/2d/3d and Embedding
# (torch 2.x; a test checks the installed torch adds none) and of the generated Model and
# Params: a submodule of that name cannot be added (``add_module`` refuses it).
MODULE_ATTRIBUTES = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu
cuda dilation double dump_patches embedding_dim eval extra_repr float forward
from_pretrained get_buffer get_extra_state get_parameter get_submodule groups half
in_channels in_features ipu items kernel_size keys load_state_dict max_norm modules mtia
named_buffers named_children named_modules named_parameters norm_type num_embeddings
out_channels out_features output_padding padding padding_idx padding_mode parameters pop
register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
register_parameter register_state_dict_post_hook register_state_dict_pre_hook
requires_grad_ reset_parameters scale_grad_by_freq set_extra_state set_submodule
share_memory sparse state_dict stride to to_empty train training transposed type update
values xpu zero_grad weight bias sizes mult const applies_multipliers
""".split())
# Names a generated function's argument must not shadow.
PY_RESERVED = frozenset({"math", "torch"})
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def doc_text(text: str) -> str:
    """``text`` safe inside a generated docstring or comment: one ASCII line in which a
    backslash, quote or control character is written as its Python escape, so it can end
    neither the comment nor the string."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _hex(name: str) -> str:
    return name.encode("utf-8", "surrogatepass").hex()


def ident(name: str) -> str:
    """A Python identifier for ``name``: ``name`` itself when it is a plain ASCII
    identifier (letter first) that is no keyword and shadows nothing the generated code
    uses, else ``_x_`` + its UTF-8 hex. Injective: kept names never start with ``_``."""
    if _PLAIN.fullmatch(name) and not keyword.iskeyword(name) and name not in PY_RESERVED:
        return name
    return f"_x_{_hex(name)}"


@lru_cache(maxsize=4096)
def module_part(name: str) -> str:
    """One component of a generated module path (``add_module`` name): a plain
    identifier or a block index kept as is; a name that is an attribute of torch's
    modules (``forward``, ``weight``, …) gets ``_r_``; anything else ``_x_`` + hex."""
    if re.fullmatch(r"[0-9]+", name):
        return name
    if _PLAIN.fullmatch(name) and not keyword.iskeyword(name):
        return f"_r_{name}" if name in MODULE_ATTRIBUTES else name
    return f"_x_{_hex(name)}"


def module_path(node: str) -> str:
    """The generated Model's module for graph node ``node``: its dotted components, each
    through :func:`module_part` (``block.0.attn`` stays ``block.0.attn``)."""
    return ".".join(module_part(c) for c in node.split("."))


def check_module_path(path: str, what: str) -> None:
    """Refuse a ``--names`` module path the generated Model could not hold."""
    for part in path.split("."):
        if module_part(part) != part and not re.fullmatch(r"_[rx]_[0-9A-Za-z_]+", part):
            raise AbcError(f"--names: {what} maps to '{doc_text(path)}', whose component "
                           f"'{doc_text(part)}' is not a plain identifier or index, or is "
                           "an attribute of torch.nn.Module")


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


def constant_rule(p: Parametrization, name: str) -> str:
    """:func:`constant_expr` as a Python lambda of the dim sizes."""
    expr = constant_expr(p, name)
    return "lambda sizes: " + py_expr(
        expr, {str(s): f"sizes[{str(s)!r}]" for s in expr.free_symbols})


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


def _node_row(graph: Graph, node: Node, names: dict[str, str]) -> dict:
    row: dict = {"name": node.name, "op": node.op, "inputs": list(node.inputs),
                 "dims": list(node.dims)}
    for fld in ("in_dims", "over", "kernel", "rename", "causal"):
        value = getattr(node, fld, ())
        if value:
            row[fld] = [list(v) if isinstance(v, tuple) else v for v in value]
    for fld in ("weight", "bias", "gain", "vocab", "value"):
        value = getattr(node, fld)
        if value is not None:
            row[fld] = value
    row.update(OPS[node.op].torch_row(graph, node))
    params, owns = {}, {}
    for kind, pname in node.param_fields:
        param = graph.params[pname]
        use = next(u for u in param.uses if u.node == node.name and u.kind is kind)
        params[kind.value] = [names[pname], list(param.shape), OPS[node.op].use_dims(node, use)]
        if (param.uses[0].node, param.uses[0].kind) == (node.name, kind):
            owns[kind.value] = list(param.shape)
            row["module"] = names[pname].rpartition(".")[0]
    if params:
        row["params"] = params
    if owns:
        row["owns"] = owns
    return row


RUNTIME = '''

# -- the model -----------------------------------------------------------------------
DIMS: dict[str, dict] = @DIMS@

NODES: list[dict] = @NODES@

INPUTS: list[str] = @INPUTS@

CONSTANTS: dict[str, Callable[[dict[str, int]], float]] = {
@CONSTANTS@
}

@GLOBALS@# ops whose inputs are brought to the node's own dim order first
SAME_DIMS = @SAME_DIMS@


def dim_sizes(widths: dict[str, int]) -> dict[str, int]:
    """Sizes of every dim. Finite dims keep their size; an independent infinite dim takes
    its width from ``widths``, or else scales with the named ones by their common width
    multiplier (all stay at base size when ``widths`` is empty; named dims of different
    multipliers must name every independent dim); a multiple (``times``) follows its dim."""
    free = [d for d, v in DIMS.items() if v["infinite"] and "of" not in v]
    unknown = sorted(set(widths) - set(free))
    if unknown:
        raise KeyError(f"not an independent infinite dim: {unknown} (those are {free})")
    for d, w in widths.items():
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"width of {d!r} must be a positive integer, got {w!r}")
    ratios = {widths[d] / DIMS[d]["size"] for d in widths}
    missing = [d for d in free if d not in widths]
    if missing and len(ratios) > 1:
        raise ValueError(f"widths {widths} scale dims by different multipliers, so the "
                         f"others cannot follow them: also give {missing}")
    ratio = ratios.pop() if ratios else 1.0
    sizes: dict[str, int] = {}
    for name, d in DIMS.items():  # multiples come after the dim they multiply
        if "of" in d:
            num, den = d["times"]
            sizes[name] = max(1, sizes[d["of"]] * num // den)
        elif name in widths:
            sizes[name] = widths[name]
        else:
            sizes[name] = max(1, round(d["size"] * ratio)) if d["infinite"] else d["size"]
    return sizes


def _to(x: torch.Tensor, have: list[str], want: list[str]) -> torch.Tensor:
    """Permute the non-batch axes of ``x`` from dims ``have`` to dims ``want``."""
    if have == want:
        return x
    return x.permute(0, *(1 + i for i in _perm(have, want)))


def _perm(have: list[str], want: list[str]) -> list[int]:
    """Axis order that takes dims ``have`` to ``want`` (a repeated dim keeps its order)."""
    left = list(have)
    out = []
    for d in want:
        i = left.index(d)
        left[i] = None
        out.append(i)
    return out


class Params(torch.nn.Module):
    """The parameters a node owns besides a Linear/Conv/Embedding weight: a norm's gain
    (``weight``) and ``bias``, or the bias of a linear whose weight is tied elsewhere."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__()
        for name, size in sizes.items():
            init = torch.ones if name == "weight" else torch.zeros  # as nn.LayerNorm
            self.register_parameter(name, torch.nn.Parameter(init(size)))


class Model(torch.nn.Module):
    """The graph as a module: ``Model(widths)``, e.g. ``Model({@EXAMPLE@})`` (see
    ``dim_sizes``). ``forward`` takes the graph's inputs positionally in ``INPUTS`` order
    (sorted by name) or by name, each with a leading batch axis, and returns its (first)
    output; pass ``capture={}`` to also collect every activation. The forward applies
    every multiplier itself, so ``apply_multipliers`` leaves a Model alone."""

    applies_multipliers = True

    def __init__(self, widths: dict[str, int]) -> None:
        super().__init__()
        self.sizes = dim_sizes(widths)
        s = self.sizes
        owners = sorted((n for n in NODES if "owns" in n),
                        key=lambda n: n["module"].count("."))  # `h` before `h.g`
        for n in owners:
            op, owns = n["op"], n["owns"]
            size = {k: math.prod(s[d] for d in dims) for k, dims in owns.items()}
@BUILD@
            else:
                m = Params({"weight" if k == "gain" else k: v for k, v in size.items()})
            self._put(n["module"], m)
        self.mult = {(n["name"], n[k]): use_multiplier(self, n["name"], n[k])
                     for n in NODES for k in ("weight", "gain", "bias") if k in n}
        self.const = {n["name"]: CONSTANTS[n["name"]](s) for n in NODES
                      if n["name"] in CONSTANTS}

    def _put(self, path: str, module: torch.nn.Module) -> None:
        parent: torch.nn.Module = self
        *heads, last = path.split(".")
        for h in heads:
            if h not in parent._modules:
                parent.add_module(h, torch.nn.ModuleDict())
            parent = parent.get_submodule(h)
        parent.add_module(last, module)

    @staticmethod
    def _dims(name: str) -> list[str]:
        return next(n["dims"] for n in NODES if n["name"] == name)

    def _param(self, n: dict, kind: str) -> torch.Tensor:
        """Parameter ``kind`` of node ``n`` times its multiplier there, its axes in the
        order this use reads them (a tied parameter may be stored in another order)."""
        path, stored, want = n["params"][kind]
        t = self.get_parameter(path)
        if stored != want:
            t = t.reshape([self.sizes[d] for d in stored]).permute(_perm(stored, want))
        return t * self.mult[(n["name"], n[kind])]

    def forward(self, *inputs: torch.Tensor, capture: dict | None = None,
                **named: torch.Tensor) -> torch.Tensor:
        feed = dict(zip(INPUTS, inputs, strict=False))
        if len(inputs) > len(INPUTS) or set(feed) & set(named) or (
                set(feed) | set(named)) != set(INPUTS):
            raise TypeError(f"Model takes the inputs {INPUTS}, each once, positionally "
                            "in this order or by name")
        feed.update(named)
        env: dict[str, torch.Tensor] = {}
        s = self.sizes
        out = None
        for n in NODES:
            op, dims = n["op"], n["dims"]
            xs = [env[i] for i in n["inputs"]]
            ins = [self._dims(i) for i in n["inputs"]]
            if op in SAME_DIMS:
                xs = [_to(x, d, dims) for x, d in zip(xs, ins, strict=True)]
@BRANCH@@FORWARD@
            env[n["name"]] = y
            if capture is not None:
                capture[n["name"]] = y.detach()
        return out
@METHODS@'''


def _branches(snippet: Callable[[Op], str], cond: str, indent: str) -> str:
    """An if/elif chain with one branch per distinct snippet of the op units (in registry
    order), taken by the ops that share it: ``cond`` formats the test of ``op``."""
    groups: dict[str, list[str]] = {}
    for name, unit in OPS.items():
        if snippet(unit):
            groups.setdefault(snippet(unit), []).append(name)
    out = []
    for i, (text, names) in enumerate(groups.items()):
        quoted = ", ".join(f'"{n}"' for n in names)  # registry keys: plain identifiers
        test = f"op == {quoted}" if len(names) == 1 else f"op in ({quoted})"
        out.append(f"{indent}{'elif' if i else 'if'} {cond.format(test)}:")
        out.append(textwrap.indent(text.strip("\n"), indent + "    "))
    return "\n".join(out)


def runtime_parts() -> dict[str, str]:
    """The generated Model's op-specific code, assembled from the op units' snippets."""
    same = ", ".join(f'"{n}"' for n, unit in OPS.items() if unit.same_dims)
    return {
        "GLOBALS": "".join(t + "\n" for t in dict.fromkeys(
            u.torch_globals for u in OPS.values()) if t),
        "SAME_DIMS": "(" + textwrap.fill(same, 88, subsequent_indent=" " * 13) + ")",
        "BUILD": _branches(lambda u: u.torch_build, '{} and "weight" in owns', " " * 12),
        "FORWARD": _branches(lambda u: u.torch_forward, "{}", " " * 12),
        "METHODS": "".join(dict.fromkeys(u.torch_methods for u in OPS.values())),
    }


def _literal_rows(rows: list[dict]) -> str:
    """A list literal, one row a line (pprint only for a row too long for one line)."""
    lines = []
    for row in rows:
        text = repr(row)
        if len(text) > 94:
            text = pprint.pformat(row, sort_dicts=False, width=94).replace("\n", "\n    ")
        lines.append(f"    {text},")
    return "[\n" + "\n".join(lines) + "\n]"


def _depth(graph: Graph, dim: str) -> int:
    """How many ``of`` links lead from ``dim`` to an independent dim."""
    of = graph.dims[dim].of
    return 0 if of is None else 1 + _depth(graph, of)


def model_source(p: Parametrization, names: dict[str, str]) -> str:
    """The Model section of the generated module; ``names`` maps graph parameters to the
    module parameter names the model gets. Nodes are listed in the graph's topological
    order, dims with each multiple after the dim it multiplies: the text depends on the
    graph only, not on declaration order."""
    graph = p.graph
    check_model_names(graph, names)
    dims = {}
    for name, d in graph.dims.items():
        entry: dict = {"infinite": d.infinite, "size": d.size}
        if d.of is not None:
            entry.update({"of": d.of, "times": [d.times.numerator, d.times.denominator]})
        dims[name] = entry
    ordered = sorted(dims, key=lambda n: (_depth(graph, n), n))
    rows = [_node_row(graph, node, names) for node in graph.order]
    consts = "\n".join(f"    {name!r}: {constant_rule(p, name)},"
                       for name in sorted(p.constants))
    example = ", ".join(f"{d!r}: {graph.dims[d].size}" for d in ordered
                        if graph.dims[d].infinite and graph.dims[d].of is None)
    values = {
        "DIMS": pprint.pformat({n: dims[n] for n in ordered}, sort_dicts=False, width=90),
        "NODES": _literal_rows(rows),
        "INPUTS": repr([n.name for n in graph.order if OPS[n.op].is_input]),
        "CONSTANTS": consts,
        "EXAMPLE": doc_text(example),
        "BRANCH": MODEL_BRANCH if p.depth.active else "",
    }
    values.update(runtime_parts())
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m[1]], RUNTIME)
