"""The repeat blocks the generated Model writes as a class of their own.

A ``repeat`` of ``count`` ≥ 2 iterations becomes ``class <Name>Block(torch.nn.Module)``
and a ``torch.nn.ModuleList`` of ``count`` of them, looped over in the Model's forward,
when its iterations are one module with different weights: the same nodes, dims,
multipliers and constants; iteration i reads only iteration i−1's output (its carry;
the first reads the block input) and outside nodes every iteration reads alike; outside
nodes read only the last iteration's output; and its parameters sit at
``<path>.<i>.<rest>`` for one ``path`` and the same ``<rest>`` in every iteration (so a
checkpoint's keys are those of the unrolled model). Any other repeat is written out node
by node in the Model's forward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from abccalc.emit.pynames import module_path
from abccalc.graph.core import Graph, Node


@dataclass(frozen=True)
class RepeatBlock:
    """One repeat written as a class: iteration 0's ``nodes`` (graph order), their
    ``prefix`` (``block.0.``); ``carry``, the node iteration 0 reads as its carry; ``outer``,
    the outside nodes every iteration reads; ``output``, the local name of an iteration's
    output;
    ``members``, every iteration's nodes; ``last``, the member emitted last."""

    name: str
    count: int
    path: str
    class_name: str
    nodes: tuple[Node, ...]
    prefix: str
    carry: str
    outer: tuple[str, ...]
    output: str
    members: frozenset[str]
    last: str


_PARAMS = ("weight", "bias", "gain")
_SAME = tuple(f.name for f in fields(Node) if f.name not in ("name", "inputs", *_PARAMS))


def _local_node(node: Node, pre: str) -> tuple:
    """What must agree between iterations: the node's local name, its fields and its
    parameters' local names."""
    return (node.name[len(pre):], *(getattr(node, f) for f in _SAME),
            *(None if getattr(node, k) is None else getattr(node, k)[len(pre):]
              for k in _PARAMS))


def _signature(graph: Graph, iters: list[list[Node]], pres: list[str], i: int) -> list:
    """Each node of iteration ``i`` with its names made local and its inputs classified:
    ("local", name), ("prev", local name in iteration i−1) or ("outer", name), with dims."""
    out = []
    mine = {n.name for n in iters[i]}
    before = {n.name for n in iters[i - 1]} if i else set()
    for node in iters[i]:
        refs = []
        for x in node.inputs:
            if x in mine:
                ref = ("local", x[len(pres[i]):])
            elif x in before:
                ref = ("prev", x[len(pres[i - 1]):])
            else:
                ref = ("outer", x)
            refs.append((ref, graph.node[x].dims))
        out.append((_local_node(node, pres[i]), tuple(refs)))
    return out


def _path(names: dict[str, str], pname0: str, pname1: str) -> str | None:
    """The ModuleList path P with names[pname0] = P.0.R and names[pname1] = P.1.R."""
    a, b = names[pname0].split("."), names[pname1].split(".")
    for j in range(1, len(a) - 1):
        if a[j] == "0" and len(a) == len(b) and b[j] == "1" and a[:j] == b[:j] \
                and a[j + 1:] == b[j + 1:]:
            return ".".join(a[:j])
    return None


def class_name(block: str, taken: set[str]) -> str:
    """``transformer_layer`` → ``TransformerLayerBlock`` (``block`` → ``Block``); a name
    that is no plain identifier, or one taken, gets a number."""
    camel = "".join(p[:1].upper() + p[1:] for p in block.split("_")) \
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", block) else ""
    base = camel if camel.endswith("Block") else f"{camel}Block"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


def find_blocks(graph: Graph, names: dict[str, str], local_mults: dict, local_consts: dict
                ) -> list[RepeatBlock]:
    """The repeats written as classes (module docstring). ``local_mults``/``local_consts``
    give a node's multiplier and constant texts keyed by names local to its iteration."""
    index = {n.name: i for i, n in enumerate(graph.order)}
    owner = {p: param.uses[0].node for p, param in graph.params.items()}
    taken: set[str] = set()
    out = []
    for name, count in graph.repeats:
        pres = [f"{name}.{i}." for i in range(count)]
        iters: list[list[Node]] = [[] for _ in range(count)]
        for n in graph.order:  # one pass: iteration i's nodes are <name>.<i>.<local>
            head, dot, rest = n.name[len(name) + 1:].partition(".")
            if n.name.startswith(f"{name}.") and dot and head.isdigit() \
                    and int(head) < count and rest:
                iters[int(head)].append(n)
        block = _block(graph, names, name, count, pres, iters, index, owner,
                       local_mults, local_consts)
        if block is not None:
            out.append(RepeatBlock(**block, class_name=class_name(name, taken)))
    return out


def _block(graph: Graph, names: dict[str, str], name: str, count: int, pres: list[str],
           iters: list[list[Node]], index: dict[str, int], owner: dict[str, str],
           local_mults: dict, local_consts: dict) -> dict | None:
    if count < 2 or not iters[0]:
        return None
    sigs = [_signature(graph, iters, pres, i) for i in range(count)]
    key = [{node[0]: (node, refs) for node, refs in sig} for sig in sigs]
    if any(k != key[1] for k in key[2:]):
        return None
    prev = {ref[1] for _, refs in sigs[1] for (ref, _) in refs if ref[0] == "prev"}
    if len(prev) != 1:
        return None
    (out_local,) = prev
    zero = key[0]
    if len(zero) != len(sigs[1]):
        return None
    carry: set[str] = set()
    for node, refs in sigs[1]:
        if node[0] not in zero or zero[node[0]][0] != node:
            return None
        for (r1, d1), (r0, d0) in zip(refs, zero[node[0]][1], strict=True):
            if d1 != d0 or (r1[0] != "prev" and r1 != r0):
                return None
            if r1[0] == "prev":
                if r0[0] != "outer":
                    return None
                carry.add(r0[1])
    members = frozenset(n.name for it in iters for n in it)
    outer = tuple(dict.fromkeys(r[1] for _, refs in sigs[1] for (r, _) in refs
                                if r[0] == "outer"))
    if len(carry) != 1 or members & {*carry, *outer} or carry & set(outer):
        return None
    output = pres[-1] + out_local
    last = max(members, key=index.__getitem__)
    for n in graph.order:
        if n.name not in members and any(x in members for x in n.inputs) and (
                index[n.name] < index[last] or set(n.inputs) & members != {output}):
            return None
    where = {n.name: i for i, it in enumerate(iters) for n in it}
    states: list[tuple[dict, dict]] = [({}, {}) for _ in range(count)]
    for (a, b), v in local_mults.items():
        if a in where:
            pre = pres[where[a]]
            states[where[a]][0][(a[len(pre):], b[len(pre):])] = v
    for a, v in local_consts.items():
        if a in where:
            states[where[a]][1][a[len(pres[where[a]]):]] = v
    if any(state != states[0] for state in states[1:]):
        return None
    params = [{p[len(pre):]: p for n in it for _, p in n.param_fields}
              for pre, it in zip(pres, iters, strict=True)]
    if params[0]:
        first = next(iter(params[0]))
        path = _path(names, params[0][first], params[1][first])
        if path is None or any(
                names[p] != f"{path}.{i}.{names[params[0][local]][len(path) + 3:]}"
                for i, ps in enumerate(params) for local, p in ps.items()):
            return None
    else:
        path = module_path(name)
    for p, node in owner.items():
        module = names[p].rpartition(".")[0]
        if node not in members and (module == path or module.startswith(path + ".")):
            return None
    return {"name": name, "count": count, "path": path, "nodes": tuple(iters[0]),
            "prefix": pres[0], "carry": carry.pop(), "outer": outer, "output": out_local,
            "members": members, "last": last}
