"""The composite ``attention`` op, expanded into primitive nodes when a graph is built.

``{name: a, op: attention, inputs: x, heads: [n_head, d_head], weight: W, bias: b}`` with
x of dims ``[ctx, d_model]`` becomes the six nodes of ``examples/gpt.yaml``'s attention::

    a.q, a.k, a.v  linear x → [ctx, n_head, d_head]       weights W_q, W_k, W_v (biases b_*)
    a.scores       contract [a.q, a.k] over d_head, the keys renamed ctx → ctx_k
    a.probs        softmax over ctx_k (masked key ≤ query when ``causal: ctx``)
    a.mix          contract [a.probs, a.v] over ctx_k
    a              linear a.mix, in [n_head, d_head] → x's dims      weight W_o (bias b_o)

so the solver, ``explain``, ``table`` and codegen see only primitives, and the composite
gives exactly the op-by-op exponents: the score constant is derived, 1/d_head for an
infinite d_head (TP5 Def. 4.1: q and k are correlated once trained, so q·k sums n terms
by LLN), Θ(1) for a finite one (TP5 J.2.1, heads growing). The key dim ``<seq>_k`` is
made with the sequence dim's size unless the graph declares it (then it must match).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from abccalc.errors import AbcError
from abccalc.graph.core import Dim, Node

PARTS = ("q", "k", "v", "scores", "probs", "mix")


def key_dim(seq: str) -> str:
    """The name of the key positions' dim of an attention over ``seq``."""
    return f"{seq}_k"


def expand(node: Node, x_dims: tuple[str, ...], dims: dict[str, Dim],
           err: Callable[[str], AbcError]) -> list[Node]:
    """The primitive nodes of a checked attention ``node`` whose input has ``x_dims``; adds
    the key dim to ``dims`` when the graph does not declare it."""
    (seq,) = node.over
    count, head = node.heads
    keys = key_dim(seq)
    have = dims.get(keys)
    if have is None:
        dims[keys] = Dim(keys, False, dims[seq].size)
    elif have.infinite or have.size != dims[seq].size:
        raise err(f"dim '{keys}' (its key positions) must be finite with the size of "
                  f"'{seq}', {dims[seq].size}")
    batch = tuple(d for d in x_dims if d not in node.in_dims)
    heads = (*batch, count, head)
    x, n = node.inputs[0], node.name

    def param(p: str | None, part: str) -> str | None:
        return None if p is None else f"{p}_{part}"

    def proj(part: str) -> Node:
        return Node(f"{n}.{part}", "linear", (x,), heads, weight=param(node.weight, part),
                    bias=param(node.bias, part), in_dims=node.in_dims)

    rename = ((seq, keys),)
    return [
        proj("q"), proj("k"), proj("v"),
        Node(f"{n}.scores", "contract", (f"{n}.q", f"{n}.k"), (*batch, count, keys),
             over=(head,), rename=rename),
        Node(f"{n}.probs", "softmax", (f"{n}.scores",), over=(keys,),
             causal=(seq, keys) if node.causal else ()),
        Node(f"{n}.mix", "contract", (f"{n}.probs", f"{n}.v"), heads, over=(keys,),
             rename=rename),
        replace(node, op="linear", inputs=(f"{n}.mix",), in_dims=(count, head), over=(),
                heads=(), causal=(), weight=param(node.weight, "o"),
                bias=param(node.bias, "o")),
    ]
