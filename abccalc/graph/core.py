"""The frozen computation graph: dims, parameters and nodes.

A dim is *finite* (its size stays fixed as the model widens) or *infinite* (it scales like
the width n; TP5 Appendix B, "Matrix-Like, Vector-Like, Scalar-Like Parameters"). Every
infinite dim is Θ(n); its base size only matters for rules written with width ratios.
Graphs are built by :class:`abccalc.graph.builder.GraphBuilder` (or read from YAML by
:mod:`abccalc.graph.spec`), which validates them; nothing here mutates.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import Enum
from fractions import Fraction
from functools import cached_property
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


def topological_order(inputs: dict[str, tuple[str, ...]]) -> list[str] | None:
    """Kahn's algorithm, taking the smallest ready name first, so the order depends only
    on the graph (as networkx's lexicographical_topological_sort); None on a cycle."""
    pending = {name: len(ins) for name, ins in inputs.items()}
    consumers: dict[str, list[str]] = {name: [] for name in inputs}
    for name, ins in inputs.items():
        for i in ins:
            consumers[i].append(name)
    ready = [name for name, k in pending.items() if k == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for c in consumers[name]:
            pending[c] -= 1
            if pending[c] == 0:
                heapq.heappush(ready, c)
    return order if len(order) == len(inputs) else None


@dataclass(frozen=True)
class Dim:
    """A named dimension.

    ``size`` is the size of a finite dim and the base size of an infinite one. An infinite
    dim may be declared a fixed multiple of another (``d_ff = 4·d_model``): ``of`` names it
    and ``times`` is the factor, so its base size is ``times × base(of)``.
    """

    name: str
    infinite: bool
    size: int
    of: str | None = None
    times: Fraction | None = None


class Role(str, Enum):
    """The columns of TP5 Table 3 plus scalar-like (TP5 Appendix B)."""

    INPUT = "input"
    HIDDEN = "hidden"
    OUTPUT = "output"
    SCALAR = "scalar"


class Kind(str, Enum):
    WEIGHT = "weight"
    BIAS = "bias"
    GAIN = "gain"


@dataclass(frozen=True)
class Use:
    """One op reading a parameter: the effective weight of this use is ``n^-a · w``.

    ``fan_in`` are the dims the use sums over (empty for biases, gains and embedding
    lookups, whose fan_in is 1) and ``fan_out`` the dims it writes.
    """

    node: str
    param: str
    kind: Kind
    fan_in: tuple[str, ...]
    fan_out: tuple[str, ...]


def made(cls: type[T], **values: Any) -> T:
    """``cls(**values)`` for a frozen dataclass, made without ``__init__`` (which sets each
    field through ``object.__setattr__``), for the hot paths that make one per parameter
    or node. ``values`` must name every field, in order; ``__post_init__`` does not run,
    so the caller passes values it would leave as they are
    (tests/test_fast_construct.py compares with ``cls(...)``)."""
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def new_use(node: str, param: str, kind: Kind, fan_in: tuple[str, ...],
            fan_out: tuple[str, ...]) -> Use:
    """``Use(node, param, kind, fan_in, fan_out)`` (:func:`made`): a build's repeated
    nodes make one per parameter."""
    return made(Use, node=node, param=param, kind=kind, fan_in=fan_in, fan_out=fan_out)


@dataclass(frozen=True)
class Param:
    """A named trainable tensor; tied tensors are one Param with several uses."""

    name: str
    shape: tuple[str, ...]
    uses: tuple[Use, ...]

    @property
    def kind(self) -> Kind:
        return self.uses[0].kind


def new_param(name: str, shape: tuple[str, ...], uses: tuple[Use, ...]) -> Param:
    """``Param(name, shape, uses)`` (:func:`made`): a build makes one per parameter."""
    return made(Param, name=name, shape=shape, uses=uses)


@dataclass(frozen=True)
class Node:
    """One op. ``dims`` are the dims of the activation it produces.

    Op-specific fields: ``weight``/``bias``/``gain`` name parameters; ``in_dims`` are the
    dims a ``linear`` contracts; ``over`` the dims of a ``contract``, ``softmax`` or norm;
    ``vocab`` the finite dim an ``embedding`` looks up; ``value`` the tunable constant of
    a ``scale``; ``kernel`` the finite kernel dims of a ``conv``; ``rename`` maps dims of a
    ``contract``'s second input to new names (key positions ``ctx → ctx_k``); ``causal``
    names the (query, key) dims a ``softmax`` masks to key ≤ query.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()
    weight: str | None = None
    bias: str | None = None
    gain: str | None = None
    in_dims: tuple[str, ...] = ()
    over: tuple[str, ...] = ()
    vocab: str | None = None
    value: float | None = None
    kernel: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    causal: tuple[str, ...] = ()
    mode: str | None = None
    along: str | None = None
    parts: tuple[str, ...] = ()
    index: int | None = None
    heads: tuple[str, ...] = ()

    @property
    def param_fields(self) -> Iterator[tuple[Kind, str]]:
        for kind, name in ((Kind.WEIGHT, self.weight), (Kind.BIAS, self.bias),
                           (Kind.GAIN, self.gain)):
            if name is not None:
                yield kind, name

    def with_(self, **changes: Any) -> Node:
        """This node with ``changes``: itself when nothing changes (nodes are frozen), else
        a copy made without ``__init__`` (a frozen dataclass sets each of its 19 fields
        through ``object.__setattr__``; a repeat makes thousands of these): the same
        field dict, in the same order, with ``changes`` written over it."""
        d = self.__dict__
        if not changes.keys() <= d.keys():
            raise TypeError(f"Node has no field(s) {sorted(changes.keys() - d.keys())}")
        if all(d[k] == v for k, v in changes.items()):
            return self
        return self._copy(changes)

    def _copy(self, changes: dict[str, Any]) -> Node:
        """A copy with ``changes`` (Node field names, unchecked) written over its fields."""
        new = object.__new__(Node)
        fresh = new.__dict__
        fresh.update(self.__dict__)
        fresh.update(changes)
        return new


NAMED_FIELDS = ("name", "inputs", "weight", "bias", "gain")  # the fields a repeat renames
# A node's fields other than names (its op first), as a tuple: two nodes with equal ones
# differ only by names.
unnamed_fields = attrgetter(*(f.name for f in fields(Node) if f.name not in NAMED_FIELDS))


@dataclass(frozen=True)
class Graph:
    """A validated computation graph. ``nodes`` keep the order they were declared in."""

    name: str
    dims: dict[str, Dim]
    nodes: tuple[Node, ...]
    params: dict[str, Param]
    values: dict[str, int] = field(default_factory=dict)
    source: str = field(default="<graph>", compare=False)
    # (block name, count) of each repeat block: iteration i's nodes are named
    # ``<block>.<i>.<local name>`` (the solver copies an iteration that repeats the last)
    repeats: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    # (block, value, base, input node, output local name) of each repeat block whose count
    # is an infinite value: the depth axis L (docs/depth.md), built values[value] times
    depth: tuple[tuple[str, str, int, str, str], ...] = field(default=(), compare=False)

    def __hash__(self) -> int:
        return id(self)

    @cached_property
    def node(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def order(self) -> tuple[Node, ...]:
        """Nodes in a topological order that does not depend on declaration order."""
        return tuple(self.node[name] for name in topological_order(
            {n.name: n.inputs for n in self.nodes}))

    @cached_property
    def consumers(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.order:
            for i in n.inputs:
                out[i].append(n.name)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def classes(self) -> dict[str, int]:
        """Each node's class: nodes of one class differ only by names. Their op and other
        fields, their inputs' dims, which of their inputs are the same node, and their
        parameter uses' kinds and fans are equal, so a rule that reads no name treats them
        alike (the iterations of a repeat block). The builder fills this in from its
        checks (:meth:`abccalc.graph.builder.GraphBuilder.build`), which may split a class
        found here further (never join two)."""
        first: dict[tuple[str, str], Use] = {}
        for p in self.params.values():
            for u in p.uses:
                first.setdefault((u.node, u.param), u)
        ids: dict[tuple, int] = {}
        out: dict[str, int] = {}
        for n in self.nodes:
            ins = n.inputs
            uses = tuple((u.kind, u.fan_in, u.fan_out) for u in
                         (first[n.name, p] for p in (n.weight, n.bias, n.gain) if p is not None))
            key = (unnamed_fields(n), tuple(self.node[i].dims for i in ins),
                   tuple(ins.index(i) for i in ins), uses)
            out[n.name] = ids.setdefault(key, len(ids))
        return out

    def inf(self, dims: tuple[str, ...] | list[str]) -> int:
        """The width exponent of the product of ``dims``: the count of infinite ones
        (counted once per tuple of dims: every stage asks it of the same few)."""
        key = dims if type(dims) is tuple else tuple(dims)
        k = self._inf_counts.get(key)
        if k is None:
            k = self._inf_counts[key] = sum(1 for d in key if self.dims[d].infinite)
        return k

    @cached_property
    def _inf_counts(self) -> dict[tuple[str, ...], int]:
        return {}

    def size(self, dims: tuple[str, ...], widths: dict[str, int] | None = None) -> int:
        """The product of the sizes of ``dims``, at base sizes or at ``widths``."""
        return math.prod(self.dim_size(d, widths) for d in dims)

    def dim_size(self, name: str, widths: dict[str, int] | None = None) -> int:
        dim = self.dims[name]
        if widths and name in widths:
            return widths[name]
        if dim.of is not None and widths:
            return int(dim.times * self.dim_size(dim.of, widths))
        return dim.size

    def operand_dims(self, node: Node) -> list[tuple[str, ...]]:
        """The dims of ``node``'s inputs as the node sees them (after a contract's rename)."""
        dims = [self.node[i].dims for i in node.inputs]
        if node.rename:
            rename = dict(node.rename)
            dims[-1] = tuple(rename.get(d, d) for d in dims[-1])
        return dims

    @property
    def outputs(self) -> tuple[Node, ...]:
        from abccalc.graph.ops import OPS  # the op units import this module

        return tuple(n for n in self.order if OPS[n.op].is_output)
