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


def _signature(graph: Graph, sizes: Sizes, node: Node) -> tuple:
    """Everything a size rule may read about ``node`` except names: its op and fields,
    its operands' dims, which inputs coincide, its parameter uses and whether it is dead."""
    return (unnamed_fields(node), tuple(graph.operand_dims(node)),
            tuple(node.inputs.index(i) for i in node.inputs),
            tuple((u.kind, u.fan_in, u.fan_out) for u, _, _ in sizes.uses(node)),
            node.name in sizes.dead)


def twins(graph: Graph, sizes: Sizes) -> dict[str, str]:
    """Each node of iteration i ≥ 1 of a repeat block → the same node of iteration i − 1,
    where the two have the same :func:`_signature` (a block whose carry changes dims
    between iterations, or whose last iteration is dead, has none there)."""
    out: dict[str, str] = {}
    node = graph.node
    sig: dict[str, tuple] = {}

    def signature(n: Node) -> tuple:
        if n.name not in sig:
            sig[n.name] = _signature(graph, sizes, n)
        return sig[n.name]

    for block, count in graph.repeats:
        head = block + "."
        for n in graph.nodes:
            if not n.name.startswith(head):
                continue
            i, dot, local = n.name[len(head):].partition(".")
            if not dot or not i.isdigit() or i != str(int(i)) or not 0 < int(i) < count:
                continue
            t = node.get(f"{head}{int(i) - 1}.{local}")
            if t is not None and signature(n) == signature(t):
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
