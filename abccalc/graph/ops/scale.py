"""A parameter-free multiplier n^-α·x (a tunable ``value`` times a width power)."""

from __future__ import annotations

from abccalc.graph.ops.base import Op


class Scale(Op):
    """value · n^-α · x."""

    name = "scale"
    fields = frozenset({"value"})
    constant = True


SCALE = Scale()
