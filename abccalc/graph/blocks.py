"""Repeat blocks expanded into plain nodes (``docs/spec.md``, section 6).

A block of nodes repeated ``count`` times (:class:`~abccalc.graph.builder.Block`) becomes
``count`` copies of its nodes: in iteration i, node and parameter names become
``<block>.<i>.<local name>``, the ``carry`` input reads the previous iteration's ``output``
(the first reads the block's ``input``), and after the block its name refers to the last
iteration's output. The expansion happens at build time, so a count named by a value
follows ``--set``. The copies differ from each other only by names, which is what lets a
build check one of them for all (:mod:`abccalc.graph.checks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from abccalc.errors import AbcError
from abccalc.graph.core import Node

if TYPE_CHECKING:
    from abccalc.graph.builder import Block

Err = Callable[[str, str], AbcError]  # (what, message): GraphBuilder.err
MAX_NODES = 100_000  # after repeats are expanded (docs/spec.md, Limits)


def params_of(node: Node) -> list[str]:
    """The parameter names a node reads (weight, bias, gain), like ``Node.param_fields``."""
    return [p for p in (node.weight, node.bias, node.gain) if p is not None]


def _check_block_params(outside: list[Node], inside: dict[str, str], err: Err) -> None:
    """A parameter named outside a block must not take the name of a block iteration's
    parameter (``layer.0.W``): it would silently tie into it (docs/spec.md, section 6).
    ``inside`` maps each block iteration's parameter to its (last) node."""
    for n in outside:
        for p in params_of(n):
            if p in inside:
                raise err(f"node '{n.name}'", f"parameter '{p}' takes the name of a repeat "
                          f"block's parameter (at '{inside[p]}'); a block's parameters "
                          "cannot be tied from outside")


def _count(item: Block, values: dict[str, int], err: Err) -> int:
    count = values.get(item.count, item.count) if isinstance(item.count, str) \
        else item.count
    if isinstance(count, str):
        raise err(f"repeat '{item.name}'", f"unknown count value '{count}'")
    return count


def expand(items: list[Node | Block], values: dict[str, int], source: str, err: Err
           ) -> tuple[list[Node], list[tuple[str, int]], dict[str, tuple[str, str]]]:
    """The nodes of ``items`` with every block expanded, counts read from ``values``; each
    block's (name, count) in order; and each block's (input node, output local name)."""
    total = sum(_count(i, values, err) * len(i.nodes) if not isinstance(i, Node) else 1
                for i in items)
    if total > MAX_NODES:
        raise AbcError(f"{source}: {total:,} nodes once repeats are expanded; "
                       f"the limit is {MAX_NODES:,}")
    nodes: list[Node] = []
    alias: dict[str, str] = {}  # block name -> its last iteration's output node
    repeats: list[tuple[str, int]] = []
    carries: dict[str, tuple[str, str]] = {}
    inside: dict[str, str] = {}  # a block iteration's parameter -> its last node
    for item in items:
        if isinstance(item, Node):
            nodes.append(item)
            continue
        count = _count(item, values, err)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise err(f"repeat '{item.name}'", f"count {count!r} is not an integer ≥ 0")
        local = {n.name for n in item.nodes}
        if item.output not in local:
            raise err(f"repeat '{item.name}'",
                      f"output '{item.output}' is not a node of the block")
        prev = alias.get(item.input, item.input)
        carry = item.carry
        named = [(n, [k for k in ("weight", "bias", "gain") if getattr(n, k) is not None])
                 for n in item.nodes]
        for i in range(count):
            pre = f"{item.name}.{i}."
            for n, params in named:  # the node with its names prefixed (always a copy)
                changes = {"name": pre + n.name, "inputs": tuple(
                    pre + x if x in local else prev if x == carry else x for x in n.inputs)}
                for k in params:
                    changes[k] = p = pre + n.__dict__[k]
                    inside[p] = changes["name"]
                nodes.append(n._copy(changes))
            prev = pre + item.output
        carries[item.name] = (alias.get(item.input, item.input), item.output)
        alias[item.name] = prev
        repeats.append((item.name, count))
    _check_block_params([n for n in items if isinstance(n, Node)], inside, err)
    if not alias:
        return nodes, repeats, carries
    return [n.with_(inputs=tuple(alias.get(x, x) for x in n.inputs))
            if not alias.keys().isdisjoint(n.inputs) else n for n in nodes], repeats, carries
