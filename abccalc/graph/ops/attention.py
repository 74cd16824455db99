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

from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Err, Op, Shaped, arity
from abccalc.graph.ops.contract import CONTRACT
from abccalc.graph.ops.dense import LINEAR
from abccalc.graph.ops.softmax import SOFTMAX

PARTS = ("q", "k", "v", "scores", "probs", "mix")


def key_dim(seq: str) -> str:
    """The name of the key positions' dim of an attention over ``seq``."""
    return f"{seq}_k"


class Attention(Op):
    """Multi-head self-attention, a composite: :meth:`expand` gives its primitive nodes, so
    no size rule or emission of its own is ever asked for."""

    name = "attention"
    fields = frozenset({"weight", "bias", "in_dims", "over", "heads", "causal"})

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        """Its fields and dims: ``heads`` two new dims, ``in`` (default the last dim) in
        x, ``over`` x's one finite sequence dim besides ``in``, ``causal`` that dim."""
        arity(node, 1, err)
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
            raise err(f"sequence dim '{seq[0]}' is infinite; attention is over finite "
                      "positions")
        if node.causal and tuple(node.causal) != seq:
            raise err(f"causal names its sequence dim ['{seq[0]}'], got {list(node.causal)}")
        out = node.dims or x
        missing = [d for d in batch if d not in out]
        if missing or not [d for d in out if d not in batch]:
            raise err(f"output dims {list(out)} must keep its input's dims {batch} and add "
                      "the dims the output projection writes")
        return Shaped(node.with_(dims=out, in_dims=tuple(in_dims), over=seq))

    # A built graph holds only its expansion, which ``contract`` emits as SDPA.

    def followers(self, node: Node) -> tuple[tuple[str, str], ...]:
        return ((node.over[0], key_dim(node.over[0])),) if len(node.over) == 1 else ()

    def expand(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim], err: Err
               ) -> list[Node]:
        """The primitive nodes of the checked ``node`` (its input's dims ``ins[0]``); adds
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
        batch = tuple(d for d in ins[0] if d not in node.in_dims)
        heads = (*batch, count, head)
        x, n = node.inputs[0], node.name

        def param(p: str | None, part: str) -> str | None:
            return None if p is None else f"{p}_{part}"

        def proj(part: str) -> Node:
            return Node(f"{n}.{part}", LINEAR.name, (x,), heads,
                        weight=param(node.weight, part), bias=param(node.bias, part),
                        in_dims=node.in_dims)

        rename = ((seq, keys),)
        return [
            proj("q"), proj("k"), proj("v"),
            Node(f"{n}.scores", CONTRACT.name, (f"{n}.q", f"{n}.k"), (*batch, count, keys),
                 over=(head,), rename=rename),
            Node(f"{n}.probs", SOFTMAX.name, (f"{n}.scores",), over=(keys,),
                 causal=(seq, keys) if node.causal else ()),
            Node(f"{n}.mix", CONTRACT.name, (f"{n}.probs", f"{n}.v"), heads, over=(keys,),
                 rename=rename),
            node.with_(op=LINEAR.name, inputs=(f"{n}.mix",), in_dims=(count, head), over=(),
                    heads=(), causal=(), weight=param(node.weight, "o"),
                    bias=param(node.bias, "o")),
        ]


ATTENTION = Attention()
