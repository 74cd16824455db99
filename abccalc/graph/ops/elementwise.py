"""Elementwise nonlinearities: a Θ(1) Jacobian, so sizes pass through unchanged in both
directions (TP4 §3: a pseudo-Lipschitz φ keeps Θ(1) coordinates Θ(1))."""

from __future__ import annotations

from abccalc.graph.core import Node
from abccalc.graph.ops.base import Op, TorchCtx


class Elementwise(Op):
    """φ(x) applied coordinatewise: s0, sd and g are those of x (the Op defaults)."""

    def __init__(self, name: str, torch_fn: str) -> None:
        self.name = name
        self.torch_fn = torch_fn

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        x = ctx.value(node.inputs[0], node.dims)
        return [f"{ctx.var(node.name)} = {self.torch_fn}({x})" if self.torch_fn
                else f"{ctx.var(node.name)} = {x}"]


ELEMENTWISE = (
    Elementwise("relu", "torch.relu"),
    Elementwise("gelu", "F.gelu"),
    Elementwise("tanh", "torch.tanh"),
    Elementwise("silu", "F.silu"),
    Elementwise("identity", ""),
    Elementwise("sigmoid", "torch.sigmoid"),
)
