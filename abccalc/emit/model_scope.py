"""One ``forward`` of the generated Model (the Model's own, or a repeat block's): what the
op units' PyTorch emission asks (:class:`abccalc.graph.ops.base.TorchCtx`).

A scope names each activation by a local variable (:meth:`Scope.var`), reaches each
node's module as ``self.<path>`` relative to the scope's module, and reads parameters,
multipliers and constants as that module stores them. Every name from the spec reaches
the text through ``repr`` or an identifier of :func:`local_names`.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from abccalc.graph.core import Graph, Kind, Node
from abccalc.graph.ops import OPS

# Names a generated forward reads itself (its arguments and locals, the module's globals
# and builtins it calls): no activation variable takes them.
RESERVED = frozenset({"self", "capture", "prefix", "s", "i", "layer", "mask", "F", "torch",
                      "math", "Params", "causal_mask", "conv_last", "dim_sizes", "float",
                      "enumerate", "fused_linear"})
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def local_names(names: Sequence[str], taken: Sequence[str] = ()) -> dict[str, str]:
    """An injective map of ``names`` to Python identifiers, avoiding ``taken`` and
    :data:`RESERVED`: a plain name stays, a dotted one gets ``_`` for its dots when that is
    free (``attn.q`` → ``attn_q``), anything else :func:`ident`'s ``_x_`` + hex."""
    used = set(taken) | RESERVED
    out: dict[str, str] = {}
    plain = [n for n in names if _PLAIN.fullmatch(n) and not keyword.iskeyword(n)]
    for n in plain:
        if n not in used:
            out[n] = n
            used.add(n)
    for n in names:
        if n in out:
            continue
        cand = n.replace(".", "_")
        if not (_PLAIN.fullmatch(cand) and not keyword.iskeyword(cand) and cand not in used):
            cand = f"_x_{n.encode('utf-8', 'surrogatepass').hex()}"
        out[n] = cand
        used.add(cand)
    return out


def is_atom(expr: str) -> bool:
    """Whether ``expr`` can take ``.method()`` without parentheses."""
    body = ast.parse(expr, mode="eval").body
    return isinstance(body, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))


def attr_path(path: str) -> str:
    """``self`` plus a dotted module path (``h.0.attn`` → ``self.h['0'].attn``, a
    ModuleDict's key)."""
    out = "self"
    for part in path.split(".") if path else ():
        out += f"[{part!r}]" if part.isdigit() else f".{part}"
    return out


def permutation(have: Sequence[str], want: Sequence[str]) -> list[int]:
    """Axis order taking dims ``have`` to ``want`` (a repeated dim keeps its order)."""
    left: list[str | None] = list(have)
    out = []
    for d in want:
        i = left.index(d)
        left[i] = None
        out.append(i)
    return out


@dataclass
class Scope:
    """The forward of the module at ``root`` (a module path; '' for the Model) holding the
    nodes whose names start with ``prefix``; ``args`` are its inputs (node names bound to
    the forward's arguments), ``names`` maps graph parameters to module parameters,
    ``mults``/``consts`` the non-unit multiplier and constant expressions (Python text),
    ``streams`` the stream input of each residual branch add (a depth axis); ``fuse``
    whether sibling groups are emitted together (:meth:`siblings`)."""

    graph: Graph
    names: dict[str, str]
    nodes: list[Node]
    args: list[str]
    root: str = ""
    prefix: str = ""
    mults: dict[tuple[str, str], str] = field(default_factory=dict)
    consts: dict[str, str] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)  # node name → variable
    helpers: set[str] = field(default_factory=set)
    uses_params: bool = False
    fuse: bool = True  # emit sibling groups together (Op.torch_sibling_key)
    fused: list[list[str]] = field(default_factory=list)  # the groups emitted together

    def __post_init__(self) -> None:
        local = [self.local(n) for n in [*self.args, *(n.name for n in self.nodes)]]
        self.vars = local_names(list(dict.fromkeys(local)), list(self.alias.values()))

    def local(self, name: str) -> str:
        return name[len(self.prefix):] if name.startswith(self.prefix) else name

    # -- what the op units ask (abccalc.graph.ops.base.TorchCtx) --------------------------
    def var(self, name: str) -> str:
        return self.alias.get(name) or self.vars[self.local(name)]

    def value(self, name: str, dims: Sequence[str]) -> str:
        return self.arrange(self.var(name), self.graph.node[name].dims, dims)

    def arrange(self, expr: str, have: Sequence[str], want: Sequence[str]) -> str:
        perm = permutation(have, want)
        if perm == list(range(len(perm))):
            return expr
        expr = self.atom(expr)
        moved = [i for i, j in enumerate(perm) if i != j]
        if len(moved) == 2:
            return f"{expr}.transpose({moved[0] + 1}, {moved[1] + 1})"
        return f"{expr}.permute(0, {', '.join(str(1 + i) for i in perm)})"

    def size(self, dims: Sequence[str]) -> str:
        return " * ".join(f"s[{d!r}]" for d in dims) or "1"

    def numel(self, param: str) -> str:
        return self.size(self.graph.params[param].shape)

    def owned(self, node: Node) -> list[tuple[Kind, str]]:
        return [(kind, p) for kind, p in node.param_fields
                if (self.graph.params[p].uses[0].node, self.graph.params[p].uses[0].kind)
                == (node.name, kind)]

    def rel(self, path: str) -> str:
        """A module path relative to this scope's module."""
        return path[len(self.root) + 1:] if self.root else path

    def module(self, node: Node) -> str:
        _, pname = self.owned(node)[0]
        return attr_path(self.rel(self.names[pname].rpartition(".")[0]))

    def params_module(self, args: str) -> str:
        self.uses_params = True
        return f"Params({args})"

    def param(self, node: Node, kind: Kind, shape: Sequence[Sequence[str]]) -> str:
        pname = dict((k, p) for k, p in node.param_fields)[kind]
        param = self.graph.params[pname]
        use = next(u for u in param.uses if u.node == node.name and u.kind is kind)
        owner = self.graph.node[param.uses[0].node]
        module, _, attr = self.names[pname].rpartition(".")
        stored = OPS[owner.op].torch_groups(owner, param.uses[0], param.shape)
        want = [tuple(g) for g in shape]
        flat = [d for g in want for d in g]
        if flat != OPS[node.op].use_dims(node, use):
            raise ValueError(f"{node.name}: {flat} is not how it reads {pname}")
        expr = f"{attr_path(self.rel(module))}.{attr}"
        if list(param.shape) != flat:
            expr += f".reshape({', '.join(self.size([d]) for d in param.shape)})"
            expr += f".permute({', '.join(map(str, permutation(param.shape, flat)))})"
            stored = [(d,) for d in flat]
        if stored != want and len(stored) > 1 and sorted(stored) == sorted(want):
            # the same groups stored in another order (a linear stored (in, out))
            expr += f".reshape({', '.join(self.size(g) for g in stored)})"
            expr += f".permute({', '.join(str(stored.index(g)) for g in want)})"
        elif stored != want:
            expr += f".reshape({', '.join(self.size(g) for g in want)})"
        scale = self.scale(node, kind)
        return f"{expr} * {scale}" if scale else expr

    def scale(self, node: Node, kind: Kind) -> str | None:
        pname = dict((k, p) for k, p in node.param_fields)[kind]
        key = (self.local(node.name), self.local(pname))
        return f"self.mult[{key!r}]" if key in self.mults else None

    def scale_value(self, node: Node, kind: Kind) -> str | None:
        pname = dict((k, p) for k, p in node.param_fields)[kind]
        return self.mults.get((self.local(node.name), self.local(pname)))

    def const(self, node: Node) -> str | None:
        key = self.local(node.name)
        return f"self.const[{key!r}]" if key in self.consts else None

    def stream(self, node: Node) -> int | None:
        return self.streams.get(self.local(node.name))

    def atom(self, expr: str) -> str:
        return expr if is_atom(expr) else f"({expr})"

    def flatten(self, expr: str, dims: Sequence[str]) -> str:
        return f"{expr}.flatten({-len(dims)})" if len(dims) > 1 else expr

    def unflatten(self, expr: str, dims: Sequence[str]) -> str:
        if len(dims) < 2:
            return expr
        return f"{self.atom(expr)}.unflatten(-1, ({', '.join(self.size([d]) for d in dims)}))"

    def batch(self) -> str:
        return f"{self.var(self.args[0])}.shape[0]" if self.args else "1"

    def helper(self, name: str) -> str:
        self.helpers.add(name)
        return name

    # -- the forward -------------------------------------------------------------------------
    def covered(self) -> set[str]:
        """Nodes another node's emission computes (an attention's scores and probs)."""
        return {c for n in self.nodes for c in OPS[n.op].torch_covers(self.graph, n)}

    def siblings(self, covered: set[str]) -> dict[str, list[Node]]:
        """Groups of two or more nodes of one op and one ``torch_sibling_key`` (sibling
        linears reading the same input: one matmul), each group under every member's
        name, its nodes in this scope's order; none when ``fuse`` is off."""
        groups: dict[tuple, list[Node]] = {}
        for n in self.nodes if self.fuse else ():
            key = None if n.name in covered else OPS[n.op].torch_sibling_key(n, self)
            if key is not None:
                groups.setdefault((n.op, key), []).append(n)
        return {n.name: g for g in groups.values() if len(g) > 1 for n in g}

    def node_lines(self, node: Node, covered: set[str],
                   siblings: dict[str, list[Node]]) -> list[str]:
        """The node's forward lines: none when another node's lines compute it (covered,
        or a later member of a sibling group), its group's at the group's first member."""
        group = siblings.get(node.name)
        if group is not None:
            if group[0] is not node:
                return []
            self.fused.append([n.name for n in group])
            return OPS[node.op].torch_forward_siblings(group, self)
        return [] if node.name in covered else OPS[node.op].torch_forward(node, self)

    def capture_lines(self, key_prefix: bool) -> list[str]:
        """Store every node's activation (detached) under its name (after ``prefix``)."""
        key = "prefix + " if key_prefix else ""
        return ["if capture is not None:",
                *(f"    capture[{key}{self.local(n.name)!r}] = {self.var(n.name)}.detach()"
                  for n in self.nodes)]
