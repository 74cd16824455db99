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


def _check_param(node, ins, dims, err) -> Shaped:
    """A learned tensor with no input (a CLS token, a position table): its activation is
    the parameter itself, an input-like use from the constant 1 (TP5 B.1)."""
    _arity(node, 0, err)
    if node.weight is None:
        raise err("a param needs its 'weight' (the parameter's name)")
    if not node.dims:
        raise err("a param needs its dims (the parameter's shape)")
    if len(set(node.dims)) != len(node.dims):
        raise err(f"dims {list(node.dims)} repeat a dim")
    use = Use(node.name, node.weight, Kind.WEIGHT, (), node.dims)
    return Shaped(node, ((use, node.dims),))


REDUCE_MODES = ("mean", "sum")


def _check_reduce(node, ins, dims, err) -> Shaped:
    """A mean or sum over ``over``; the output has the input's other dims."""
    _arity(node, 1, err)
    if not node.over:
        raise err("a reduce needs the dims it reduces 'over'")
    mode = node.mode or "mean"
    if mode not in REDUCE_MODES:
        raise err(f"mode '{mode}' is not one of {', '.join(REDUCE_MODES)}")
    x = ins[0]
    for d in node.over:
        if d not in x:
            raise err(f"reduces over '{d}', which is not a dim of its input (dims {list(x)})")
    rest = tuple(d for d in x if d not in node.over)
    if not rest:
        raise err("a reduce must keep at least one dim (a graph's activations have dims)")
    if node.dims and sorted(node.dims) != sorted(rest):
        raise err(f"dims {list(node.dims)} must be its input's dims without 'over' "
                  f"{list(rest)}")
    return Shaped(replace(node, dims=node.dims or rest, mode=mode))


def _check_concat(node, ins, dims, err) -> Shaped:
    """Inputs joined along the output dim ``along``: each input has the output's other
    dims and one dim of its own (its part; none for a one-slice input such as a CLS
    token), whose sizes add up to ``along``'s."""
    _arity(node, None, err, at_least=2)
    if node.along is None:
        raise err("a concat needs the dim it joins 'along'")
    if not node.dims or node.along not in node.dims:
        raise err(f"a concat needs its output dims, including 'along' ('{node.along}')")
    rest = [d for d in node.dims if d != node.along]
    total, kinds = 0, set()
    for name, x in zip(node.inputs, ins, strict=True):
        missing = [d for d in rest if d not in x]
        own = [d for d in x if d not in rest]
        if missing or len(own) > 1:
            raise err(f"input '{name}' (dims {list(x)}) must have the dims {rest} and at "
                      f"most one dim of its own along '{node.along}'")
        total += dims[own[0]].size if own else 1
        kinds.add(dims[own[0]].infinite if own else False)
    out = dims[node.along]
    if kinds != {out.infinite}:
        raise err(f"the inputs' parts along '{node.along}' must all be "
                  f"{'infinite' if out.infinite else 'finite'}, as '{node.along}' is")
    if total != out.size:
        raise err(f"the inputs' parts along '{node.along}' add up to {total}, but "
                  f"'{node.along}' has {'base ' if out.infinite else ''}size {out.size}")
    return Shaped(node)


def _check_slice(node, ins, dims, err) -> Shaped:
    """Part ``index`` of the input's dim ``along``, cut into the named ``parts`` (in
    order, their sizes adding up to ``along``'s); the output has that part's dim in place
    of ``along``."""
    _arity(node, 1, err)
    x = ins[0]
    if node.along is None or node.along not in x:
        raise err(f"a slice needs 'along', a dim of its input (dims {list(x)})")
    if len(node.parts) < 2:
        raise err("a slice needs the 'parts' (two or more dims) its 'along' dim is cut into")
    index = 0 if node.index is None else node.index
    if not 0 <= index < len(node.parts):
        raise err(f"index {index} is not a part: there are {len(node.parts)} parts")
    whole = dims[node.along]
    if any(dims[d].infinite != whole.infinite for d in node.parts):
        raise err(f"the parts {list(node.parts)} must all be "
                  f"{'infinite' if whole.infinite else 'finite'}, as '{node.along}' is")
    total = sum(dims[d].size for d in node.parts)
    if total != whole.size:
        raise err(f"the parts {list(node.parts)} add up to {total}, but '{node.along}' has "
                  f"{'base ' if whole.infinite else ''}size {whole.size}")
    part = node.parts[index]
    if part in x:
        raise err(f"part '{part}' is already a dim of its input; name the part differently")
    out = tuple(part if d == node.along else d for d in x)
    if node.dims and sorted(node.dims) != sorted(out):
        raise err(f"dims {list(node.dims)} must be its input's with '{node.along}' cut to "
                  f"'{part}': {list(out)}")
    return Shaped(replace(node, dims=node.dims or out, index=index))


def _check_attention(node, ins, dims, err) -> Shaped:
    """Multi-head self-attention, a composite the builder expands into primitive nodes
    (:mod:`abccalc.graph.attention`); here only its fields and dims are checked."""
    _arity(node, 1, err)
    if node.weight is None:
        raise err("an attention needs a 'weight' (W gives W_q, W_k, W_v, W_o)")
    x = ins[0]
    if len(node.heads) != 2 or len(set(node.heads)) != 2:
        raise err("an attention needs 'heads': [head count dim, head dim]")
    for d in node.heads:
        if d in x:
            raise err(f"head dim '{d}' is a dim of its input; heads are its own dims")
    in_dims = node.in_dims or x[-1:]
    for d in in_dims:
        if d not in x:
            raise err(f"in-dim '{d}' is not a dim of its input (dims {list(x)})")
    batch = [d for d in x if d not in in_dims]
    seq = node.over or tuple(batch)
    if len(seq) != 1 or seq[0] not in batch:
        raise err(f"attends 'over' one sequence dim of its input besides 'in', got "
                  f"{list(seq)}; name it with 'over'")
    if dims[seq[0]].infinite:
        raise err(f"sequence dim '{seq[0]}' is infinite; attention is over finite positions")
    if node.causal and tuple(node.causal) != seq:
        raise err(f"causal names its sequence dim ['{seq[0]}'], got {list(node.causal)}")
    out = node.dims or x
    missing = [d for d in batch if d not in out]
    if missing or not [d for d in out if d not in batch]:
        raise err(f"output dims {list(out)} must keep its input's dims {batch} and add "
                  "the dims the output projection writes")
    return Shaped(replace(node, dims=out, in_dims=tuple(in_dims), over=seq))


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
    "param": frozenset({"weight"}),
    "reduce": frozenset({"over", "mode"}),
    "concat": frozenset({"along"}),
    "slice": frozenset({"along", "parts", "index"}),
    "attention": frozenset({"weight", "bias", "in_dims", "over", "heads", "causal"}),
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
    "param": _check_param,
    "reduce": _check_reduce,
    "concat": _check_concat,
    "slice": _check_slice,
    "attention": _check_attention,
}


def carries_constant(node: Node) -> bool:
    """Whether ``node`` multiplies by a parameter-free constant n^-α that the solver
    derives: a ``contract``, a ``scale`` and a ``reduce`` that sums."""
    return node.op in ("contract", "scale") or (node.op == "reduce" and node.mode == "sum")
