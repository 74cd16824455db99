"""Model inputs and outputs (TP5 Appendix B: a model's inputs and outputs are finite)."""

from __future__ import annotations

from abccalc.exponents import NEG_INF, ZERO, Exp
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, TorchCtx, arity, same_dims


class Input(Op):
    """A model input: Θ(1) coordinates that never change (s0 = 0, sd = −∞); no gradient
    flows into it."""

    name = "input"
    is_input = True

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 0, err)
        if not node.dims:
            raise err("an input needs its dims")
        for d in node.dims:
            if dims[d].infinite:
                raise err(f"input dim '{d}' is infinite; model inputs are finite "
                          "(TP5 Appendix B), the first linear maps them into the width")
        return Shaped(node)

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        return ZERO, NEG_INF

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        return []  # an argument of the forward


class Output(Op):
    """A model output: the loss reads it, so its gradient is Θ(1) (g = 0, TP4 §5); its
    sizes are its input's."""

    name = "output"
    is_output = True

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 1, err)
        out = same_dims(node, ins, err)
        for d in out:
            if dims[d].infinite:
                raise err(f"output dim '{d}' is infinite; a model's output is finite "
                          "(TP5 Appendix B), add a readout linear")
        return Shaped(node.with_(dims=out))



INPUT = Input()
OUTPUT = Output()
