"""Generate ``class Model(torch.nn.Module)`` for a graph (``abccalc codegen --model``).

The model interprets a literal table of the graph's nodes: each activation is a tensor
with a leading batch axis followed by the node's dims, in order; linears flatten their
in-dims, contractions are einsums. Weight multipliers and parameter-free constants are
applied in the forward, from the generated PARAMETERS and constant rules.
"""

from __future__ import annotations

import pprint

import sympy
from sympy.printing.pycode import pycode

from abccalc.graph import Node
from abccalc.parametrization import Parametrization
from abccalc.presets import sp_constant_exponent


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
    exponent = sp_constant_exponent(graph, node) - p.constants[name]
    return value * sp_value * (d / graph.dims[dims[0]].size) ** exponent


def constant_rule(p: Parametrization, name: str) -> str:
    """:func:`constant_expr` as a Python lambda of the dim sizes."""
    expr = constant_expr(p, name)
    args = sorted({str(s) for s in expr.free_symbols})
    body = pycode(expr.subs({sympy.Symbol(a, positive=True): sympy.Symbol(f"sizes['{a}']")
                             for a in args}), fully_qualified_modules=True)
    return f"lambda sizes: {body}"


def _node_row(node: Node) -> dict:
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
    return row


RUNTIME = '''

# -- the model -----------------------------------------------------------------------
DIMS: dict[str, dict] = {dims}

NODES: list[dict] = {nodes}

CONSTANTS: dict[str, Callable[[dict[str, int]], float]] = {{
{constants}
}}

CONV = {{1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}}
CONV_FN = {{1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
           3: torch.nn.functional.conv3d}}

ELEMENTWISE = {{
    "relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
    "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid, "identity": lambda x: x,
}}


def dim_sizes(widths: dict[str, int]) -> dict[str, int]:
    """Sizes of every dim: finite ones fixed, infinite ones from ``widths`` (default: their
    base size), multiples (``times``) from the dim they multiply."""
    unknown = set(widths) - {{d for d, v in DIMS.items() if v["infinite"] and "of" not in v}}
    if unknown:
        raise KeyError(f"not an independent infinite dim: {{sorted(unknown)}}")
    sizes = {{}}
    for name, d in DIMS.items():  # multiples come after the dim they multiply
        if "of" in d:
            sizes[name] = int(d["times"] * sizes[d["of"]])
        else:
            sizes[name] = widths.get(name, d["size"])
    return sizes


def _to(x: torch.Tensor, have: list[str], want: list[str]) -> torch.Tensor:
    """Permute the non-batch axes of ``x`` from dims ``have`` to dims ``want``."""
    return x.permute(0, *(1 + have.index(d) for d in want))


class Model(torch.nn.Module):
    """The graph as a module: ``Model(widths)``, e.g. ``Model({{{example}}})``.
    ``forward`` takes the graph's inputs in declaration order, each with a leading batch
    axis, and returns its output; pass ``capture={{}}`` to also collect every activation."""

    def __init__(self, widths: dict[str, int]) -> None:
        super().__init__()
        self.sizes = dim_sizes(widths)
        s = self.sizes
        for n in NODES:
            op = n["op"]
            if "module" in n and n["module"] in dict(self.named_modules()):
                continue  # a tied parameter's later use shares the module of its first
            if op in ("linear", "conv"):
                out = math.prod(s[d] for d in n["dims"] if d not in n["batch"])
                fan_in = math.prod(s[d] for d in n["in_dims"])
                if op == "linear":
                    m = torch.nn.Linear(fan_in, out, bias="bias" in n)
                else:
                    kernel = tuple(s[d] for d in n["kernel"])
                    m = CONV[len(kernel)](fan_in, out, kernel, bias="bias" in n,
                                          padding="same")
                self._put(n["module"], m)
            elif op == "embedding":
                out = math.prod(s[d] for d in n["dims"] if d not in self._dims(n["inputs"][0]))
                self._put(n["module"], torch.nn.Embedding(s[n["vocab"]], out))
            elif op in ("layernorm", "rmsnorm") and "module" in n:
                shape = math.prod(s[d] for d in n["over"])
                cls = torch.nn.LayerNorm if op == "layernorm" else torch.nn.RMSNorm
                norm = cls(shape, elementwise_affine="gain" in n)
                if op == "layernorm" and "bias" not in n:
                    norm.bias = None
                self._put(n["module"], norm)
        self.mult = {{(n["name"], n[k]): use_multiplier(self, n["name"], n[k])
                     for n in NODES for k in ("weight", "gain", "bias") if k in n}}
        self.const = {{n["name"]: CONSTANTS[n["name"]](s) for n in NODES
                       if n["name"] in CONSTANTS}}

    def _put(self, path: str, module: torch.nn.Module) -> None:
        parent: torch.nn.Module = self
        *heads, last = path.split(".")
        for h in heads:
            if not hasattr(parent, h):
                parent.add_module(h, torch.nn.ModuleDict())
            parent = getattr(parent, h)
        parent.add_module(last, module)

    @staticmethod
    def _dims(name: str) -> list[str]:
        return next(n["dims"] for n in NODES if n["name"] == name)

    def forward(self, *inputs: torch.Tensor, capture: dict | None = None) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {{}}
        feed = iter(inputs)
        s = self.sizes
        out = None
        for n in NODES:
            op, dims = n["op"], n["dims"]
            xs = [env[i] for i in n["inputs"]]
            ins = [self._dims(i) for i in n["inputs"]]
            if op == "input":
                y = next(feed)
            elif op == "output":
                y = out = xs[0]
            elif op in ELEMENTWISE:
                y = ELEMENTWISE[op](xs[0])
            elif op == "scale":
                y = xs[0] * self.const[n["name"]]
            elif op == "add":
                y = sum(_to(x, d, dims) for x, d in zip(xs, ins, strict=True))
            elif op == "multiply":
                y = xs[0] * _to(xs[1], ins[1], ins[0])
            elif op == "softmax":
                axis = 1 + dims.index(n["over"][0])
                z = xs[0]
                if "causal" in n:
                    q, k = n["causal"]
                    mask = torch.ones(s[q], s[k], dtype=torch.bool, device=z.device).tril()
                    shape = [1] * z.dim()
                    shape[1 + dims.index(q)], shape[1 + dims.index(k)] = s[q], s[k]
                    if dims.index(q) > dims.index(k):
                        mask = mask.T
                    z = z.masked_fill(~mask.reshape(shape), float("-inf"))
                y = torch.softmax(z, dim=axis)
            elif op == "contract":
                y = self._contract(n, xs, ins)
            elif op == "embedding":
                y = self._embed(n, xs[0], ins[0])
            elif op in ("layernorm", "rmsnorm"):
                y = self._norm(n, xs[0])
            else:  # linear / conv
                y = self._linear(n, xs[0], ins[0])
            env[n["name"]] = y
            if capture is not None:
                capture[n["name"]] = y.detach()
        return out

    def _module(self, n: dict) -> torch.nn.Module:
        return self.get_submodule(n["module"])

    def _linear(self, n: dict, x: torch.Tensor, have: list[str]) -> torch.Tensor:
        s = self.sizes
        batch, in_dims = n["batch"], n["in_dims"]
        out_dims = [d for d in n["dims"] if d not in batch]
        x = _to(x, have, batch + in_dims)
        lead = x.shape[: 1 + len(batch)]
        x = x.reshape(*lead, -1)
        m = self._module(n)
        w = m.weight * self.mult.get((n["name"], n.get("weight")), 1.0)
        bias = getattr(m, "bias", None)  # a tied embedding's readout reuses the Embedding
        b = None if bias is None else bias * self.mult.get((n["name"], n.get("bias")), 1.0)
        if n["op"] == "conv":  # the last len(kernel) batch dims are the spatial ones
            k = len(n["kernel"])
            x = x.reshape(-1, *x.shape[-k - 1:]).movedim(-1, 1)
            y = CONV_FN[k](x, w, b, padding="same").movedim(1, -1).reshape(*lead, -1)
        else:
            y = torch.nn.functional.linear(x, w, b)
        y = y.reshape(*lead, *(s[d] for d in out_dims))
        return _to(y, batch + out_dims, n["dims"])

    def _embed(self, n: dict, ids: torch.Tensor, have: list[str]) -> torch.Tensor:
        s = self.sizes
        out_dims = [d for d in n["dims"] if d not in have]
        y = self._module(n).weight[ids] * self.mult.get((n["name"], n["weight"]), 1.0)
        y = y.reshape(*ids.shape, *(s[d] for d in out_dims))
        return _to(y, have + out_dims, n["dims"])

    def _norm(self, n: dict, x: torch.Tensor) -> torch.Tensor:
        dims, over = n["dims"], n["over"]
        rest = [d for d in dims if d not in over]
        x = _to(x, dims, rest + over)
        lead = x.shape[: 1 + len(rest)]
        x = x.reshape(*lead, -1)
        if n["op"] == "layernorm":
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        else:
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        if "module" in n:
            m = self._module(n)
            if m.weight is not None:
                x = x * (m.weight * self.mult.get((n["name"], n.get("gain")), 1.0))
            if getattr(m, "bias", None) is not None:
                x = x + m.bias * self.mult.get((n["name"], n.get("bias")), 1.0)
        x = x.reshape(*lead, *(self.sizes[d] for d in over))
        return _to(x, rest + over, dims)

    def _contract(self, n: dict, xs: list[torch.Tensor], ins: list[str]) -> torch.Tensor:
        rename = dict(n.get("rename", []))
        u_dims, v_dims = ins[0], [rename.get(d, d) for d in ins[1]]
        letters = {{d: chr(ord("b") + i) for i, d in enumerate(
            dict.fromkeys(u_dims + v_dims + n["dims"]))}}
        spec = ("a" + "".join(letters[d] for d in u_dims) + ",a"
                + "".join(letters[d] for d in v_dims) + "->a"
                + "".join(letters[d] for d in n["dims"]))
        return torch.einsum(spec, xs[0], xs[1]) * self.const[n["name"]]
'''


def _literal_rows(rows: list[dict]) -> str:
    """A list literal, one row a line (pprint only for a row too long for one line)."""
    lines = []
    for row in rows:
        text = repr(row)
        if len(text) > 94:
            text = pprint.pformat(row, sort_dicts=False, width=94).replace("\n", "\n    ")
        lines.append(f"    {text},")
    return "[\n" + "\n".join(lines) + "\n]"


def model_source(p: Parametrization, names: dict[str, str]) -> str:
    """The Model section of the generated module; ``names`` maps graph parameters to the
    module parameter names the model gets."""
    graph = p.graph
    dims = {}
    for name, d in graph.dims.items():
        entry: dict = {"infinite": d.infinite, "size": d.size}
        if d.of is not None:
            entry.update({"of": d.of, "times": float(d.times)})
        dims[name] = entry
    ordered = sorted(dims, key=lambda n: (graph.dims[n].of is not None, list(dims).index(n)))
    nodes = []
    for node in graph.nodes:
        row = _node_row(node)
        if node.op in ("linear", "conv"):
            x_dims = graph.node[node.inputs[0]].dims
            row["batch"] = [d for d in x_dims if d not in node.in_dims]
            row["in_dims"] = list(node.in_dims)
        params = [x for x in (node.weight, node.gain, node.bias) if x]
        if params:
            row["module"] = names[params[0]].rpartition(".")[0]
        nodes.append(row)
    consts = "\n".join(f"    {name!r}: {constant_rule(p, name)},"
                       for name in p.constants)
    example = ", ".join(f"{d!r}: {graph.dims[d].size}" for d in dims
                        if graph.dims[d].infinite and graph.dims[d].of is None)
    return RUNTIME.format(
        dims=pprint.pformat({n: dims[n] for n in ordered}, sort_dicts=False, width=90),
        nodes=_literal_rows(nodes),
        constants=consts, example=example)
