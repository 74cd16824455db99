"""The Python builder API: the one way a :class:`~abccalc.graph.core.Graph` gets made.

>>> b = GraphBuilder("mlp")
>>> b.dim("d_in", size=3).dim("width", base=8).dim("d_out", size=1)
GraphBuilder('mlp')
>>> _ = b.node("x", "input", dims=["d_in"])
>>> _ = b.node("h", "linear", inputs=["x"], dims=["width"], weight="W1")
>>> _ = b.node("f", "linear", inputs=["h"], dims=["d_out"], weight="W2")
>>> _ = b.node("y", "output", inputs=["f"])
>>> sorted(b.build().params)
['W1', 'W2']

A repeated block (``repeat``) is expanded at :meth:`GraphBuilder.build` time
(:mod:`abccalc.graph.blocks`), so a count named by a value can be changed with
:meth:`GraphBuilder.set` (``--set n_layer=96``); the op units' checks of the nodes, each
run once for all of a node's name-only copies, are in :mod:`abccalc.graph.checks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

from abccalc.errors import AbcError
from abccalc.graph.blocks import MAX_NODES, expand
from abccalc.graph.checks import check_fields, expand_composites, shape_nodes
from abccalc.graph.core import Dim, Graph, Node, Param, new_param, topological_order, unnamed_fields
from abccalc.graph.names import check_name, clean, name_error, shown
from abccalc.graph.ops import OPS

NODE_FIELDS = {f.name for f in fields(Node)}
MAX_SIZE = 2**40  # a dim's size or base, and a value


@dataclass
class Block:
    """A block of nodes repeated ``count`` times; iteration i reads the previous one's
    ``output`` node under the name ``carry`` (the first reads ``input``). Inside, node and
    parameter names become ``<name>.<i>.<local name>``; after the block, ``name`` refers to
    the last iteration's output."""

    name: str
    count: int | str
    input: str
    carry: str
    output: str
    nodes: list[Node] = field(default_factory=list)

    source: str = "<graph>"

    def node(self, name: str, op: str, **kw) -> Block:
        """Add a node to the block; ``kw`` are :class:`~abccalc.graph.core.Node` fields."""
        self.nodes.append(_make_node(name, op, kw, self.source))
        return self


LIST_FIELDS = {"inputs", "dims", "in_dims", "over", "kernel", "causal", "parts", "heads"}


def _names_field(value: Any, where: str, key: str, source: str) -> tuple[str, ...]:
    """A list field ``key`` of ``where`` (``node 'x'``): a name or a list of names, each
    following the identifier rule (the message's text is made only on failure)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise AbcError(f"{source}: {where}: '{key}': expected a name or a list of names, "
                       f"got {type(value).__name__}")
    for v in value:
        if name_error(v) is not None:
            check_name(v, f"{where}: '{key}'", source)  # raises
    return tuple(value)


_KW_FIELDS = NODE_FIELDS - {"name", "op"}
_BLANK = Node("", "")  # every other field at its default


def _make_node(name: str, op: str, kw: dict, source: str = "<graph>") -> Node:
    """A Node from keyword fields, every name checked (``docs/spec.md``, Names): a bare name
    in a list field is a one-element list, and ``rename`` may be a mapping."""
    check_name(name, "node name", source, module=True)
    where = f"node '{name}'"
    if not isinstance(op, str):
        raise AbcError(f"{source}: {where}: op {shown(op)} is not a name")
    kw = dict(kw)
    for k in LIST_FIELDS & set(kw):
        kw[k] = _names_field(kw[k], where, k, source)
    for k in ("weight", "bias", "gain", "vocab", "along", "mode"):
        v = kw.get(k)
        if v is not None and name_error(v) is not None:
            check_name(v, f"{where}: '{k}'", source)  # raises
    index = kw.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                              or not 0 <= index <= MAX_NODES):
        raise AbcError(f"{source}: {where}: 'index' {shown(index)} is not an integer ≥ 0")
    if "rename" in kw:
        pairs = kw["rename"]
        pairs = list(pairs.items()) if isinstance(pairs, dict) else pairs
        if not isinstance(pairs, list | tuple) or not all(
                isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
            raise AbcError(f"{source}: {where}: 'rename' must map dim names to dim names")
        kw["rename"] = tuple((check_name(a, f"{where}: 'rename'", source),
                              check_name(b, f"{where}: 'rename'", source)) for a, b in pairs)
    if kw.get("value") is not None:
        v = kw["value"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or abs(v) > MAX_SIZE:
            raise AbcError(f"{source}: {where}: 'value' {shown(v)} is not a finite "
                           "number")
    if kw.keys() <= _KW_FIELDS:  # Node(...) without __init__ (19 fields set one by one)
        return _BLANK._copy({"name": name, "op": op, **kw})
    return Node(name=name, op=op, **kw)  # the TypeError of a field Node lacks


class GraphBuilder:
    """Collects dims, values and nodes; :meth:`build` validates them into a frozen Graph."""

    def __init__(self, name: str, source: str = "<graph>") -> None:
        if not isinstance(source, str):
            raise TypeError(f"GraphBuilder: source must be a str, got {type(source).__name__}")
        self.name = check_name(name, "graph name", source)
        self.source = source
        self._explicit: set[str] = set()  # dims given a size by set()
        self._dims: dict[str, dict] = {}
        self._values: dict[str, int] = {}
        self._depth: dict[str, int] = {}  # infinite values (depth axes): name -> base
        self._items: list[Node | Block] = []
        self._repeats: list[tuple[str, int]] = []  # (block, count) as last expanded
        self._carry: dict[str, tuple[str, str]] = {}  # block -> (input node, output local)

    def __repr__(self) -> str:
        return f"GraphBuilder({self.name!r})"

    def err(self, what: str, msg: str) -> AbcError:
        return AbcError(f"{self.source}: {what}: {msg}")

    def dim(self, name: str, size: int | None = None, *, base: int | None = None,
            of: str | None = None, times: float | Fraction | None = None) -> GraphBuilder:
        """A finite dim (``size``), an infinite one (``base``), or an infinite multiple
        ``times × of`` of another infinite dim."""
        check_name(name, "dim name", self.source, dim=True)
        if name in self._dims:
            raise self.err(f"dim '{name}'", "duplicate name")
        if sum(x is not None for x in (size, base, of)) != 1 or (of is None) != (times is None):
            raise self.err(f"dim '{name}'", "give exactly one of size (finite), base "
                           "(infinite) or times+of (a multiple of another dim)")
        for v in (size, base):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1
                                  or v > MAX_SIZE):
                raise self.err(f"dim '{name}'", f"size {shown(v)} is not a positive "
                               "integer ≤ 2^40")
        if times is not None and (isinstance(times, bool)
                                  or not isinstance(times, int | float | Fraction)
                                  or not math.isfinite(times) or not 0 < times <= MAX_SIZE):
            raise self.err(f"dim '{name}'", f"times {shown(times)} is not a positive "
                           "finite number")
        if of is not None:
            check_name(of, f"dim '{name}': 'of'", self.source)
        self._dims[name] = {"size": size, "base": base, "of": of, "times": times}
        return self

    def value(self, name: str, value: int | None = None, *, base: int | None = None
              ) -> GraphBuilder:
        """A named integer, e.g. a repeat count; with ``base`` instead, an infinite repeat
        count (a depth axis L, docs/depth.md) built ``base`` times until ``set``."""
        check_name(name, "value name", self.source)
        if (value is None) == (base is None):
            raise self.err(f"value '{name}'", "give exactly one of an integer or "
                           "{base: N} (an infinite repeat count)")
        v = value if base is None else base
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SIZE \
                or (base is not None and v < 1):
            raise self.err(f"value '{name}'", f"{shown(v)} is not an integer in "
                           + ("[1, 2^40] (the base of an infinite repeat count)"
                              if base is not None else "[0, 2^40]"))
        if name in self._values:
            raise self.err(f"value '{name}'", "duplicate name")
        self._values[name] = v
        if base is not None:
            self._depth[name] = base
        return self

    def set_base(self, name: str, value: str | int) -> GraphBuilder:
        """Declare a value an infinite repeat count with this base, or override its base
        (``--base n_layer=2``); its count follows the base unless ``set`` gave it."""
        if name not in self._values:
            raise AbcError(f"{self.source}: --base {clean(name)}={clean(str(value))}: "
                           f"unknown value '{clean(name)}'")
        count, given = self._values[name], name in self._explicit
        self.set(name, value)  # validates the number
        self._depth[name] = self._values[name]
        if given:
            self._values[name] = count
        else:
            self._explicit.discard(name)
        return self

    def set(self, name: str, value: str | int) -> GraphBuilder:
        """Override a value or a dim's size/base (the CLI's ``--set NAME=VALUE``). A dim
        that a contract's ``rename`` makes from ``name`` (key positions ``ctx → ctx_k``)
        and that had its size follows it, unless it is set itself."""
        shown = clean(f"--set {name}={value}")
        text = str(value).strip() if isinstance(value, str | int) else ""
        if isinstance(value, bool) or not text.lstrip("+-").isdigit() or not text.isascii() \
                or len(text) > 15:
            raise AbcError(f"{self.source}: {shown}: not an integer"
                           + (" of at most 15 digits" if text.isdigit() else ""))
        number = int(text)
        if number < 0 or (name in self._dims and number < 1):
            raise AbcError(f"{self.source}: {shown}: must be positive")
        if number > MAX_SIZE:
            raise AbcError(f"{self.source}: {shown}: larger than 2^40")
        if name in self._values:
            if name in self._depth and number < 1:
                raise AbcError(f"{self.source}: {shown}: an infinite repeat count is at "
                               "least 1")
            self._values[name] = number
            self._explicit.add(name)
        elif name in self._dims and self._dims[name]["of"] is None:
            self._explicit.add(name)
            for follower in self._followers(name):
                self._set_dim(follower, number)
            self._set_dim(name, number)
        else:
            known = sorted([*self._values, *(d for d in self._dims if not self._dims[d]["of"])])
            raise AbcError(f"{self.source}: {shown}: unknown name '{clean(name)}' "
                           f"(known: {', '.join(known)})")
        return self

    def _size(self, name: str) -> int:
        d = self._dims[name]
        return d["size"] if d["size"] is not None else d["base"]

    def _set_dim(self, name: str, number: int) -> None:
        d = self._dims[name]
        d["size" if d["size"] is not None else "base"] = number

    def _followers(self, name: str) -> list[str]:
        """Dims renamed from ``name`` by a contract, of the same size and kind, not set
        explicitly: the key positions that follow the query positions."""
        nodes = [n for item in self._items
                 for n in (item.nodes if isinstance(item, Block) else [item])]
        d = self._dims[name]
        out = []
        for n in nodes:
            for a, b in OPS[n.op].followers(n) if n.op in OPS else n.rename:
                f = self._dims.get(b)
                if a == name and b != name and b not in self._explicit and b not in out \
                        and f is not None and f["of"] is None \
                        and (f["size"] is None) == (d["size"] is None) \
                        and self._size(b) == self._size(name):
                    out.append(b)
        return out

    def node(self, name: str, op: str, **kw) -> GraphBuilder:
        """Add a node; ``kw`` are :class:`~abccalc.graph.core.Node` fields."""
        unknown = set(kw) - NODE_FIELDS
        if unknown:
            raise self.err(f"node '{clean(name)}'", f"unknown field(s) {sorted(unknown)}")
        self._items.append(_make_node(name, op, kw, self.source))
        return self

    def repeat(self, name: str, count: int | str, *, input: str, carry: str,
               output: str) -> Block:
        """Start a repeated block; add its nodes with ``Block.node``. ``count`` is an
        integer or the name of a value."""
        check_name(name, "repeat block name", self.source, module=True)
        for what, ref in (("input", input), ("carry", carry), ("output", output)):
            check_name(ref, f"repeat '{name}': '{what}'", self.source)
        if isinstance(count, str):
            check_name(count, f"repeat '{name}': count", self.source)
        elif isinstance(count, bool) or not isinstance(count, int) \
                or not 0 <= count <= MAX_NODES:
            raise self.err(f"repeat '{name}'", f"count {shown(count)} is not an "
                           "integer ≥ 0 or a value name")
        block = Block(name, count, input, carry, output, source=self.source)
        self._items.append(block)
        return block

    # -- build --------------------------------------------------------------------------
    def _resolve_dims(self) -> dict[str, Dim]:
        dims: dict[str, Dim] = {}

        def get(name: str, seen: tuple[str, ...] = ()) -> Dim:
            if name in dims:
                return dims[name]
            if name not in self._dims:
                raise self.err(f"dim '{seen[-1]}'", f"is a multiple of unknown dim '{name}'")
            if name in seen:
                raise self.err(f"dim '{name}'", "is defined as a multiple of itself")
            d = self._dims[name]
            if d["of"] is not None:
                base = get(d["of"], (*seen, name))
                if not base.infinite:
                    raise self.err(f"dim '{name}'", f"is a multiple of finite dim '{d['of']}'")
                times = Fraction(d["times"]).limit_denominator(10**6)
                if times <= 0 or (times * base.size).denominator != 1:
                    raise self.err(f"dim '{name}'", f"times {d['times']} × base "
                                   f"{base.size} of '{d['of']}' is not a positive integer")
                dims[name] = Dim(name, True, int(times * base.size), d["of"], times)
            else:
                infinite = d["base"] is not None
                dims[name] = Dim(name, infinite, d["base"] if infinite else d["size"])
            return dims[name]

        for name in self._dims:
            get(name)
        return dims

    def _raise_cycle(self, nodes: list[Node]) -> None:
        """Name the nodes of a cycle (networkx finds one; only needed on this error path)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(n.name for n in nodes)  # declaration order: the cycle starts there
        g.add_edges_from((i, n.name) for n in nodes for i in n.inputs)
        cycle = nx.find_cycle(g)
        path = " -> ".join([e[0] for e in cycle] + [cycle[0][0]])
        raise self.err(f"node '{cycle[0][0]}'", f"is on a cycle: {path}")

    def build(self, reuse: bool = True) -> Graph:
        """Validate and freeze. Raises :class:`AbcError` naming the culprit. With ``reuse``
        (the default), a node that differs from an earlier one only by names, as a repeat
        block's iterations do, takes that node's checks (:mod:`abccalc.graph.checks`): the
        same Graph, checked once per distinct node."""
        dims = self._resolve_dims()
        nodes, self._repeats, carries = expand(self._items, self._values, self.source,
                                               self.err)
        self._carry.update(carries)
        if not any(d.infinite for d in dims.values()):
            raise AbcError(f"{self.source}: no infinite dim; mark the width dim(s) with "
                           "'base: SIZE'")
        names: dict[str, Node] = {}
        checked: set[tuple] = set()  # fields other than names, already checked
        for n in nodes:
            if n.name in names:
                raise self.err(f"node '{n.name}'", "duplicate name")
            if n.name in dims:
                raise self.err(f"node '{n.name}'", "duplicate name (also a dim)")
            if not reuse:
                check_fields(n, dims, self.err)
            else:
                key = unnamed_fields(n)
                if key not in checked:
                    check_fields(n, dims, self.err)
                    checked.add(key)
            names[n.name] = n
        for n in nodes:
            for i in n.inputs:
                if i not in names:
                    raise self.err(f"node '{n.name}'", f"unknown input '{i}'")
        order = topological_order({n.name: n.inputs for n in nodes})
        if order is None:
            self._raise_cycle(nodes)
        shaped, uses, classes = shape_nodes(names, order, dims, self.err, reuse)
        expanded = expand_composites(nodes, shaped, dims, self.err)
        if expanded is not None:  # composites expanded: shape the graph again
            nodes = expanded
            names = {n.name: n for n in nodes}
            order = topological_order({n.name: n.inputs for n in nodes})
            shaped, uses, classes = shape_nodes(names, order, dims, self.err, reuse)
        first = {}  # parameters in topological order of first use: declaration order is moot
        for i, name in enumerate(order):
            n = names[name]
            for p in (n.weight, n.bias, n.gain):  # params_of, without a list per node
                if p is not None and p not in first:
                    first[p] = i
        params: dict[str, Param] = {}
        for pname in sorted(uses, key=first.__getitem__):
            held = uses[pname]
            use0, shape0 = held[0]
            for use, shape in held[1:]:
                if sorted(shape) != sorted(shape0):
                    raise self.err(f"parameter '{pname}'", f"is tied but has shape "
                                   f"{list(shape)} at node '{use.node}' and {list(shape0)} "
                                   f"at node '{use0.node}'")
            params[pname] = new_param(pname, shape0, tuple(u for u, _ in held))
        frozen = tuple(shaped[n.name] for n in nodes)
        if not any(OPS[n.op].is_output for n in frozen):
            raise AbcError(f"{self.source}: no output node; end the graph with 'op: output'")
        if not params:
            raise AbcError(f"{self.source}: no parameters (no node has a weight, bias or "
                           "gain); there is nothing to parametrize")
        depth = tuple((item.name, item.count, self._depth[item.count],
                       *self._carry[item.name])
                      for item in self._items if isinstance(item, Block)
                      and isinstance(item.count, str) and item.count in self._depth)
        graph = Graph(self.name, dims, frozen, params, dict(self._values), self.source,
                      tuple(self._repeats), depth)
        if all(shaped[n.name].inputs == n.inputs for n in nodes):
            # the checks kept every node's inputs, so the order found above is the graph's
            # own (Graph.order: the same function of the same names and inputs)
            graph.__dict__["node"] = {n.name: n for n in frozen}
            graph.__dict__["order"] = tuple(shaped[name] for name in order)
            if reuse:  # the checks' classes: finer than Graph.classes finds, never coarser
                graph.__dict__["classes"] = {n.name: classes[n.name] for n in frozen}
        return graph
