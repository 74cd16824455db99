"""Embedding lookup: a table row per finite id (TP5 B.1: an input weight)."""

from __future__ import annotations

from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Err, Op, Shaped, arity


class Embedding(Op):
    """E[ids]: reads the constant 1 (a one-hot id), fan_in 1, fan_out its own dims."""

    name = "embedding"
    fields = frozenset({"weight", "vocab"})
    reads_ids = True
    same_dims = False

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        if node.weight is None:
            raise err("an embedding needs a weight")
        if node.vocab is None:
            raise err("an embedding needs its 'vocab' dim")
        if dims[node.vocab].infinite:
            raise err(f"vocab dim '{node.vocab}' must be finite")
        for d in ins[0]:
            if dims[d].infinite:
                raise err(f"its input '{node.inputs[0]}' has infinite dim '{d}'; an "
                          "embedding looks up finite ids")
        missing = [d for d in ins[0] if d not in node.dims]
        if missing:
            raise err(f"output dims {list(node.dims)} drop its input's dims {missing}")
        out = tuple(d for d in node.dims if d not in ins[0])
        if not out:
            raise err("an embedding needs at least one output dim beyond its input's")
        use = Use(node.name, node.weight, Kind.WEIGHT, (), out)
        return Shaped(node, ((use, (node.vocab, *out)),))


EMBEDDING = Embedding()
