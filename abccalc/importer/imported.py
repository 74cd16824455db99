"""What importing a model yields: its graph, and what the model itself already applies.

This is the contract between the tracer (which builds it) and every consumer (``check`` on
a model's current parametrization, codegen keyed by the model's own names): the graph's
parameter names are the model's ``state_dict`` names, so no name map is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abccalc.exponents import Exp
from abccalc.graph.core import Graph


@dataclass(frozen=True)
class Recorded:
    """A constant the model applies at a node that carries a free constant (an SDPA scale,
    a ``* self.scale``, an output ``/ width_mult``): its value at each traced width and the
    width exponent fitted to them (value ∝ n^-exponent)."""

    node: str
    values: tuple[float, ...]
    exponent: Exp
    what: str  # e.g. "scaled_dot_product_attention default scale 1/sqrt(head_dim)"
    module: str  # module path, e.g. "transformer.h.0.attn"
    source: str = ""  # "file.py:123" where torch recorded it, else ""


@dataclass(frozen=True)
class Unseen:
    """Something the tracer could not map onto the calculus, never silently dropped."""

    module: str
    op: str
    reason: str


@dataclass(frozen=True)
class Imported:
    """A traced model: its graph (parameter names = ``state_dict`` names at the first
    width), the width knobs and the values traced at, a way to build it again, what it
    applies, where each node came from, and what could not be seen."""

    graph: Graph
    spec: str  # the MODEL argument as given (``file.py:factory``, ``pkg.mod:factory``, ``hf:…``)
    knobs: dict[str, tuple[int, ...]]  # knob -> the values traced (the first is the base)
    build: Callable[[dict[str, int], Any], Any] = field(repr=False, compare=False)
    # build(knobs, device) -> a fresh torch.nn.Module at those knob values
    constants: dict[str, Recorded] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # node or param -> "module (file:line)"
    unseen: tuple[Unseen, ...] = ()
