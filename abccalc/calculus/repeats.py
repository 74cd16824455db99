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
from abccalc.graph.core import Graph, Node


def twins(graph: Graph, sizes: Sizes) -> dict[str, str]:
    """Each node of iteration i ≥ 1 of a repeat block → the same node of iteration i − 1,
    where the two are of one class (:attr:`Graph.classes`: they differ only by names) and
    both dead or both live (a block whose carry changes dims between iterations, or whose
    last iteration is dead, has none there)."""
    out: dict[str, str] = {}
    node, classes, dead = graph.node, graph.classes, sizes.dead
    for block, count in graph.repeats:
        first = f"{block}.0."
        local = [n.name[len(first):] for n in graph.nodes if n.name.startswith(first)]
        for i in range(1, count):
            head, prev = f"{block}.{i}.", f"{block}.{i - 1}."
            for x in local:
                n, t = head + x, prev + x
                if n in node and t in node and classes[n] == classes[t] \
                        and (n in dead) == (t in dead):
                    out[n] = t
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
