"""Dense weights: ``linear`` (h = W·x over the ``in`` dims) and ``conv`` (TP5 J.2.1: a
Θ(1)-sized collection of dense weights, one per kernel offset)."""

from __future__ import annotations

from dataclasses import replace

from abccalc.graph.core import Dim, Kind, Node, Use
from abccalc.graph.ops.base import Err, Op, Shaped, arity


class Linear(Op):
    """h = W·x (+ b): W has dims (out, in); ``in`` defaults to the input's last dim and the
    other input dims (batch, tokens) are kept."""

    name = "linear"
    fields = frozenset({"weight", "bias", "in_dims"})
    same_dims = False

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        in_dims, out = self.dense_dims(node, ins, err)
        return self.shaped(node, in_dims, out, in_dims)

    @staticmethod
    def shaped(node: Node, in_dims: tuple[str, ...], out: tuple[str, ...],
               fan_in: tuple[str, ...]) -> Shaped:
        """The node with its ``in`` dims, its weight use and its bias use (if any)."""
        uses = [(Use(node.name, node.weight, Kind.WEIGHT, fan_in, out), out + fan_in)]
        if node.bias is not None:
            uses.append((Use(node.name, node.bias, Kind.BIAS, (), out), out))
        return Shaped(replace(node, in_dims=in_dims), tuple(uses))

    @staticmethod
    def dense_dims(node: Node, ins: list[tuple[str, ...]], err: Err
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The (in dims, out dims) of a linear or conv: ``in`` defaults to the input's last
        dim; the other input dims are kept (batch, or spatial for a conv)."""
        arity(node, 1, err)
        if node.weight is None:
            raise err(f"a {node.op} needs a weight")
        x = ins[0]
        in_dims = node.in_dims or x[-1:]
        for d in in_dims:
            if d not in x:
                raise err(f"in-dim '{d}' is not a dim of its input '{node.inputs[0]}' "
                          f"(dims {list(x)})")
        batch = [d for d in x if d not in in_dims]
        if not node.dims:
            raise err(f"a {node.op} needs its output dims")
        missing = [d for d in batch if d not in node.dims]
        if missing:
            raise err(f"output dims {list(node.dims)} drop the input's dims {missing}; "
                      "list them in 'in' to contract them")
        out = tuple(d for d in node.dims if d not in batch)
        if not out:
            raise err(f"a {node.op} needs at least one output dim of its own")
        return tuple(in_dims), out


class Conv(Linear):
    """A convolution: its use sums over the in dims and the finite kernel dims, so its
    width exponents are a linear's; fan_in = in × kernel as in PyTorch."""

    name = "conv"
    fields = frozenset({"weight", "bias", "in_dims", "kernel"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        in_dims, out = self.dense_dims(node, ins, err)
        if not node.kernel:
            raise err("a conv needs its finite 'kernel' dims (e.g. kernel: [k] or [kh, kw]); "
                      "without one it is a linear")
        x = ins[0]
        for d in node.kernel:
            if dims[d].infinite:
                raise err(f"kernel dim '{d}' is infinite; a conv kernel is finite (TP5 "
                          "J.2.1: a Θ(1)-sized collection of dense weights)")
            if d in x or d in node.dims:
                raise err(f"kernel dim '{d}' is a dim of its "
                          f"{'input' if d in x else 'output'}; kernel dims belong to the "
                          "weight only")
        if len(set(node.kernel)) != len(node.kernel):
            raise err(f"kernel dims {list(node.kernel)} repeat a dim")
        spatial = [d for d in x if d not in in_dims]
        if len(spatial) < len(node.kernel):
            raise err(f"a kernel {list(node.kernel)} slides over {len(node.kernel)} spatial "
                      f"dim(s) of its input, but it has only {spatial} besides 'in' "
                      f"{list(in_dims)}")
        return self.shaped(node, in_dims, out, in_dims + node.kernel)


LINEAR = Linear()
CONV = Conv()
