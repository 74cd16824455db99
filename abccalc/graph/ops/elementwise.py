"""Elementwise nonlinearities: a Θ(1) Jacobian, so sizes pass through unchanged in both
directions (TP4 §3: a pseudo-Lipschitz φ keeps Θ(1) coordinates Θ(1))."""

from __future__ import annotations

from abccalc.graph.ops.base import Op


class Elementwise(Op):
    """φ(x) applied coordinatewise: s0, sd and g are those of x (the Op defaults)."""

    def __init__(self, name: str, torch_fn: str) -> None:
        self.name = name
        self.torch_forward = f"y = {torch_fn}(xs[0])" if torch_fn else "y = xs[0]"


ELEMENTWISE = (
    Elementwise("relu", "torch.relu"),
    Elementwise("gelu", "torch.nn.functional.gelu"),
    Elementwise("tanh", "torch.tanh"),
    Elementwise("silu", "torch.nn.functional.silu"),
    Elementwise("identity", ""),
    Elementwise("sigmoid", "torch.sigmoid"),
)
