"""The op registry: every op name and its unit (:class:`abccalc.graph.ops.base.Op`).

Adding an op is one module in this package and one line here (docs/contributing_ops.md).
The order is the order of the generated Model's per-op branches.
"""

from __future__ import annotations

from abccalc.graph.ops.add import ADD
from abccalc.graph.ops.attention import ATTENTION
from abccalc.graph.ops.base import Ctx, Op, Shaped, SizesLike
from abccalc.graph.ops.concat import CONCAT
from abccalc.graph.ops.contract import CONTRACT
from abccalc.graph.ops.dense import CONV, LINEAR
from abccalc.graph.ops.elementwise import ELEMENTWISE
from abccalc.graph.ops.embedding import EMBEDDING
from abccalc.graph.ops.io import INPUT, OUTPUT
from abccalc.graph.ops.multiply import MULTIPLY
from abccalc.graph.ops.norm import NORMS
from abccalc.graph.ops.param import PARAM
from abccalc.graph.ops.reduce import REDUCE
from abccalc.graph.ops.reshape import RESHAPE
from abccalc.graph.ops.scale import SCALE
from abccalc.graph.ops.slice import SLICE
from abccalc.graph.ops.softmax import SOFTMAX

OPS: dict[str, Op] = {
    "input": INPUT,
    "output": OUTPUT,
    **{op.name: op for op in ELEMENTWISE},
    "scale": SCALE,
    "add": ADD,
    "multiply": MULTIPLY,
    "softmax": SOFTMAX,
    "contract": CONTRACT,
    "embedding": EMBEDDING,
    **{op.name: op for op in NORMS},
    "linear": LINEAR,
    "conv": CONV,
    "param": PARAM,
    "reduce": REDUCE,
    "concat": CONCAT,
    "slice": SLICE,
    "attention": ATTENTION,
    "reshape": RESHAPE,
}


__all__ = ["OPS", "Ctx", "Op", "Shaped", "SizesLike"]
