"""The op registry: which ops exist and how each one's dims are checked.

Each op maps its inputs' dims to its output dims and names the parameter uses it makes.
The scaling rules themselves live in :mod:`abccalc.calculus.exponents`; this module only knows
shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from abccalc.errors import AbcError
from abccalc.graph.core import Dim, Kind, Node, Use

ELEMENTWISE = ("relu", "gelu", "tanh", "silu", "identity", "sigmoid")
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class Shaped:
    """A node with its dims filled in, and the parameter uses it makes (with shapes)."""

    node: Node
    uses: tuple[tuple[Use, tuple[str, ...]], ...] = ()


Check = Callable[[Node, list[tuple[str, ...]], dict[str, Dim], Callable[[str], AbcError]],
                 Shaped]


def _arity(node: Node, n: int | None, err: Callable[[str], AbcError], at_least: int = 0) -> None:
    k = len(node.inputs)
    if n is not None and k != n:
        raise err(f"op '{node.op}' takes {n} input{'s' if n != 1 else ''}, got {k}")
    if k < at_least:
        raise err(f"op '{node.op}' takes at least {at_least} inputs, got {k}")


def _same_dims(node: Node, ins: list[tuple[str, ...]], err: Callable[[str], AbcError]
               ) -> tuple[str, ...]:
    dims = ins[0]
    for name, d in zip(node.inputs[1:], ins[1:], strict=True):
        if sorted(d) != sorted(dims):
            raise err(f"inputs have different dims: {node.inputs[0]} {list(dims)} "
                      f"vs {name} {list(d)}")
    if node.dims and sorted(node.dims) != sorted(dims):
        raise err(f"dims {list(node.dims)} do not match its input's dims {list(dims)}")
    return node.dims or dims


def _check_input(node, ins, dims, err) -> Shaped:
    _arity(node, 0, err)
    if not node.dims:
        raise err("an input needs its dims")
    for d in node.dims:
        if dims[d].infinite:
            raise err(f"input dim '{d}' is infinite; model inputs are finite "
                      "(TP5 Appendix B), the first linear maps them into the width")
    return Shaped(node)


def _check_output(node, ins, dims, err) -> Shaped:
    _arity(node, 1, err)
    out = _same_dims(node, ins, err)
    for d in out:
        if dims[d].infinite:
            raise err(f"output dim '{d}' is infinite; a model's output is finite "
                      "(TP5 Appendix B), add a readout linear")
    return Shaped(replace(node, dims=out))


def _check_linear(node, ins, dims, err) -> Shaped:
    in_dims, out = _dense(node, ins, err)
    uses = [(Use(node.name, node.weight, Kind.WEIGHT, in_dims, out), out + in_dims)]
    if node.bias is not None:
        uses.append((Use(node.name, node.bias, Kind.BIAS, (), out), out))
    return Shaped(replace(node, in_dims=in_dims), tuple(uses))


def _check_conv(node, ins, dims, err) -> Shaped:
    """A convolution: a Θ(1)-sized collection of dense weights, one per kernel offset
    (TP5 J.2.1). Its use sums over the in dims and the finite kernel dims, so its width
    exponents are a linear's; fan_in = in × kernel as in PyTorch."""
    in_dims, out = _dense(node, ins, err)
    if not node.kernel:
        raise err("a conv needs its finite 'kernel' dims (e.g. kernel: [k] or [kh, kw]); "
                  "without one it is a linear")
    x = ins[0]
    for d in node.kernel:
        if dims[d].infinite:
            raise err(f"kernel dim '{d}' is infinite; a conv kernel is finite (TP5 J.2.1: a "
                      "Θ(1)-sized collection of dense weights)")
        if d in x or d in node.dims:
            raise err(f"kernel dim '{d}' is a dim of its {'input' if d in x else 'output'}; "
                      "kernel dims belong to the weight only")
    if len(set(node.kernel)) != len(node.kernel):
        raise err(f"kernel dims {list(node.kernel)} repeat a dim")
    spatial = [d for d in x if d not in in_dims]
    if len(spatial) < len(node.kernel):
        raise err(f"a kernel {list(node.kernel)} slides over {len(node.kernel)} spatial "
                  f"dim(s) of its input, but it has only {spatial} besides 'in' {list(in_dims)}")
    fan_in = in_dims + node.kernel
    uses = [(Use(node.name, node.weight, Kind.WEIGHT, fan_in, out), out + fan_in)]
    if node.bias is not None:
        uses.append((Use(node.name, node.bias, Kind.BIAS, (), out), out))
    return Shaped(replace(node, in_dims=in_dims), tuple(uses))


def _dense(node, ins, err) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (in dims, out dims) of a linear or conv: ``in`` defaults to the input's last
    dim; the other input dims are kept (batch, or spatial for a conv)."""
    _arity(node, 1, err)
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


def _check_embedding(node, ins, dims, err) -> Shaped:
    _arity(node, 1, err)
    if node.weight is None:
        raise err("an embedding needs a weight")
    if node.vocab is None:
        raise err("an embedding needs its 'vocab' dim")
    if dims[node.vocab].infinite:
        raise err(f"vocab dim '{node.vocab}' must be finite")
    for d in ins[0]:
        if dims[d].infinite:
            raise err(f"its input '{node.inputs[0]}' has infinite dim '{d}'; an embedding "
                      "looks up finite ids")
    missing = [d for d in ins[0] if d not in node.dims]
    if missing:
        raise err(f"output dims {list(node.dims)} drop its input's dims {missing}")
    out = tuple(d for d in node.dims if d not in ins[0])
    if not out:
        raise err("an embedding needs at least one output dim beyond its input's")
    use = Use(node.name, node.weight, Kind.WEIGHT, (), out)
    return Shaped(node, ((use, (node.vocab, *out)),))


def _check_elementwise(node, ins, dims, err) -> Shaped:
    _arity(node, 1, err)
    return Shaped(replace(node, dims=_same_dims(node, ins, err)))


def _check_add(node, ins, dims, err) -> Shaped:
    _arity(node, None, err, at_least=2)
    return Shaped(replace(node, dims=_same_dims(node, ins, err)))


def _check_multiply(node, ins, dims, err) -> Shaped:
    _arity(node, 2, err)
    return Shaped(replace(node, dims=_same_dims(node, ins, err)))


def _check_norm(node, ins, dims, err) -> Shaped:
    _arity(node, 1, err)
    out = _same_dims(node, ins, err)
    over = node.over or out[-1:]
    for d in over:
        if d not in out:
            raise err(f"normalizes over '{d}', which is not a dim of its input")
    uses = [(Use(node.name, p, kind, (), over), over)
            for kind, p in ((Kind.GAIN, node.gain), (Kind.BIAS, node.bias)) if p is not None]
    return Shaped(replace(node, dims=out, over=over), tuple(uses))


def _check_contract(node, ins, dims, err) -> Shaped:
    _arity(node, 2, err)
    if not node.over:
        raise err("a contract needs the dims it sums 'over'")
    u, v = ins
    for d in node.over:
        if not (d in u and d in v):
            raise err(f"contracts over '{d}', which both inputs must have (dims {list(u)} "
                      f"and {list(v)})")
    if not node.dims:
        raise err("a contract needs its output dims")
    free = {d for d in (*u, *v) if d not in node.over}
    if set(node.dims) != free or len(set(node.dims)) != len(node.dims):
        raise err(f"output dims {list(node.dims)} must be the inputs' uncontracted dims "
                  f"{sorted(free)} (use 'rename' on the second input for key positions)")
    return Shaped(node)


def _check_softmax(node, ins, dims, err) -> Shaped:
    _arity(node, 1, err)
    out = _same_dims(node, ins, err)
    over = node.over or out[-1:]
    for d in over:
        if d not in out:
            raise err(f"softmax over '{d}', which is not a dim of its input")
        if dims[d].infinite:
            raise err(f"softmax over infinite dim '{d}' is not supported "
                      "(its outputs would be Θ(1/n))")
    if node.causal:
        if len(node.causal) != 2 or not all(d in out for d in node.causal):
            raise err(f"causal names (query, key) dims of its input, got {list(node.causal)}")
        q, k = node.causal
        if dims[q].infinite or dims[k].infinite or dims[q].size != dims[k].size:
            raise err(f"causal dims '{q}' and '{k}' must be finite and of equal size")
    return Shaped(replace(node, dims=out, over=over))


# The op-specific Node fields each op reads (name, op, inputs, dims are common); any other
# field set on a node is a mistake the builder reports.
FIELDS: dict[str, frozenset[str]] = {
    "linear": frozenset({"weight", "bias", "in_dims"}),
    "conv": frozenset({"weight", "bias", "in_dims", "kernel"}),
    "embedding": frozenset({"weight", "vocab"}),
    "scale": frozenset({"value"}),
    "contract": frozenset({"over", "rename"}),
    "softmax": frozenset({"over", "causal"}),
    **{op: frozenset({"gain", "bias", "over"}) for op in NORMS},
}

OPS: dict[str, Check] = {
    "input": _check_input,
    "output": _check_output,
    "linear": _check_linear,
    "conv": _check_conv,
    "embedding": _check_embedding,
    "add": _check_add,
    "multiply": _check_multiply,
    "scale": _check_elementwise,
    "contract": _check_contract,
    "softmax": _check_softmax,
    **{op: _check_elementwise for op in ELEMENTWISE},
    **{op: _check_norm for op in NORMS},
}
