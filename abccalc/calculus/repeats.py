"""A repeated block solved once when its fixed point repeats (issue #13, point 6).

Iteration i of a repeat block (``<block>.<i>.<name>``) is its iteration i−1 with other
names. An op's size rules read only the sizes of the node's inputs and the graph's
structure (the op-unit contract, :mod:`abccalc.graph.ops.base`), so two nodes that differ
only by names and whose inputs have equal sizes get equal sizes, a + b, constants and LR
exponents: the solver copies them (by name offset) instead of recomputing. The copy is
exact: it is made only after comparing the exponents it depends on, and the derivation
text is written again with the node's own names.
"""

from __future__ import annotations

from abccalc.calculus.sizes import Sizes
from abccalc.exponents import NEG_INF
from abccalc.graph.core import Graph, Node, unnamed_fields


def _alike(graph: Graph, sizes: Sizes, node: Node, twin: Node) -> bool:
    """Whether ``node`` and ``twin`` agree in everything a size rule may read except names:
    op and other fields, their inputs' dims, which inputs coincide, their parameter uses
    (kind, fan_in, fan_out) and whether they are dead."""
    if unnamed_fields(node) != unnamed_fields(twin) or \
            (node.name in sizes.dead) != (twin.name in sizes.dead):
        return False
    ins, t_ins = node.inputs, twin.inputs
    if len(ins) != len(t_ins) or (len(ins) > 1 and _pattern(ins) != _pattern(t_ins)):
        return False
    of = graph.node
    for i, j in zip(ins, t_ins, strict=True):
        if of[i].dims != of[j].dims:
            return False
    uses, t_uses = sizes.uses(node), sizes.uses(twin)
    if len(uses) != len(t_uses):
        return False
    for (u, _, _), (v, _, _) in zip(uses, t_uses, strict=True):
        if u.kind is not v.kind or u.fan_in != v.fan_in or u.fan_out != v.fan_out:
            return False
    return True


def _pattern(names: tuple[str, ...]) -> tuple[int, ...] | bool:
    """Which of ``names`` coincide: each one's first position."""
    if len(names) == 2:
        return names[0] == names[1]
    return tuple(names.index(x) for x in names)


def twins(graph: Graph, sizes: Sizes) -> dict[str, str]:
    """Each node of iteration i ≥ 1 of a repeat block → the same node of iteration i − 1,
    where the two are :func:`_alike` (a block whose carry changes dims between iterations,
    or whose last iteration is dead, has none there)."""
    out: dict[str, str] = {}
    node = graph.node
    for block, count in graph.repeats:
        first = f"{block}.0."
        local = [n.name[len(first):] for n in graph.nodes if n.name.startswith(first)]
        for i in range(1, count):
            head, prev = f"{block}.{i}.", f"{block}.{i - 1}."
            for x in local:
                n, t = node.get(head + x), node.get(prev + x)
                if n is not None and t is not None and _alike(graph, sizes, n, t):
                    out[n.name] = t.name
    return out


def same_inputs(sizes: Sizes, node: Node, twin: Node) -> bool:
    """Whether ``node``'s inputs have the exponents (s0, sd) of ``twin``'s, position by
    position (copies are the same objects, so ``is`` decides most)."""
    s0, sd = sizes.s0, sizes.sd
    for x, y in zip(node.inputs, twin.inputs, strict=True):
        if x == y:
            continue
        a, b = s0[x], s0[y]
        if a is not b and a != b:
            return False
        a, b = sd.get(x, NEG_INF), sd.get(y, NEG_INF)
        if a is not b and a != b:
            return False
    return True
