"""Contraction of two activations over shared dims, times a free constant n^-α
(attention scores qᵀk, attention-weighted values)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, Exp, fmt_exp, plus
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Rule, Shaped, SizesLike, TorchCtx, arity
from abccalc.graph.ops.multiply import changed_product
from abccalc.graph.ops.softmax import SOFTMAX

if TYPE_CHECKING:
    from abccalc.graph.core import Graph


def _constant_rule(u: str, v: str, k: int, st_u: Exp, st_v: Exp) -> str:
    """The rule of a contraction's constant (written when ``explain`` reads it)."""
    return (f"Θ(1) once trained (LLN, TP5 Def. 4.1 fn. 8): {u} and {v} are correlated, so "
            f"the sum over {k} infinite dim(s) is n^{k}: n^(-α + st({u}) + st({v}) + {k}·1) "
            f"with st = {fmt_exp(st_u)}, {fmt_exp(st_v)} must be Θ(1)")


class Contract(Op):
    """h = n^-α · Σ_over u·v; ``rename`` renames dims of the second input first. With k
    infinite dims summed over (TP5 Table 14; TP5 Def. 4.1 and footnote 8):

        s0(h) = −α + s0(u) + s0(v) + k/2                 (independent at init: CLT)
        sd(h) = −α + max(sd(u)+st(v), st(u)+sd(v)) + k   (correlated once trained: LLN)
        g(u) ⊇ −α + g(h) + st(v) + inf(dims v shares with h, not with u)   (and v alike)

    μP keeps h Θ(1) once trained, α = st(u) + st(v) + k: attention's 1/d; SP writes
    1/√d per contracted infinite dim (Vaswani et al.), α = k/2.
    """

    name = "contract"
    fields = frozenset({"over", "rename"})
    constant = True

    def check(self, node: Node, ins: list[tuple[str, ...]], dims: dict[str, Dim],
              err: Err) -> Shaped:
        arity(node, 2, err)
        if not node.over:
            raise err("a contract needs the dims it sums 'over'")
        u, v = ins
        for d in node.over:
            if not (d in u and d in v):
                raise err(f"contracts over '{d}', which both inputs must have (dims "
                          f"{list(u)} and {list(v)})")
        if not node.dims:
            raise err("a contract needs its output dims")
        free = {d for d in (*u, *v) if d not in node.over}
        if set(node.dims) != free or len(set(node.dims)) != len(node.dims):
            raise err(f"output dims {list(node.dims)} must be the inputs' uncontracted dims "
                      f"{sorted(free)} (use 'rename' on the second input for key positions)")
        return Shaped(node)

    def forward(self, sizes: SizesLike, node: Node, ctx: Ctx) -> tuple[Exp, Exp]:
        u, v = node.inputs
        k = sizes.graph.inf(node.over)
        s0 = plus(-ctx.alpha, sizes.s0[u], sizes.s0[v], HALF * k)
        return s0, plus(-ctx.alpha, changed_product(sizes, u, v), k * ONE)

    def backward(self, sizes: SizesLike, node: Node, gh: Exp, ctx: Ctx
                 ) -> list[tuple[str, Exp]]:
        graph = sizes.graph
        (u, v), (du, dv) = node.inputs, graph.operand_dims(node)
        out = []
        for (x, y), (own, other) in zip(((u, v), (v, u)), ((du, dv), (dv, du)), strict=True):
            shared = set(other) & set(node.dims) - set(own)
            out.append((x, plus(-ctx.alpha, gh, sizes.st(y), graph.inf(list(shared)))))
        return out

    def mup_constant(self, sizes: SizesLike, node: Node) -> tuple[Exp, Rule, tuple[str, ...]]:
        u, v = node.inputs
        k = sizes.graph.inf(node.over)
        st_u, st_v = sizes.st(u), sizes.st(v)
        return (st_u + st_v + k, partial(_constant_rule, u, v, k, st_u, st_v),
                (f"size {u}", f"size {v}"))

    def sp_constant(self, graph: Graph, node: Node) -> Exp:
        return HALF * graph.inf(node.over)

    def constant_note(self, mup_exponent: Exp) -> str:
        if mup_exponent != 1:
            return ""
        return (" (TP5 Def. 4.1: q and k are correlated once trained, so qᵀk grows like d "
                "by the LLN)")

    def torch_covers(self, graph: Graph, node: Node) -> tuple[str, ...]:
        plan = attention_plan(graph, node)
        return (plan.scores.name, plan.probs.name) if plan else ()

    def torch_forward(self, node: Node, ctx: TorchCtx) -> list[str]:
        """An einsum times the constant; the value contraction of an attention pattern
        (:func:`attention_plan`) is ``F.scaled_dot_product_attention`` with the scores'
        constant as its scale, written out op by op when ``capture`` asks for the scores
        and probabilities (SDPA never forms them)."""
        plan = attention_plan(ctx.graph, node)
        if plan is None:
            return self.einsum(node, ctx)
        heads, t, e = plan.heads, plan.query, plan.value_dim
        q, kk = plan.scores.inputs
        args = [ctx.value(q, [*heads, t, plan.head_dim]),
                ctx.value(kk, [*heads, t, plan.head_dim]),
                ctx.value(node.inputs[1], [*heads, t, e])]
        scale = ctx.const(plan.scores) or "1.0"
        tail = ctx.arrange("y", [*heads, t, e], node.dims)[1:]
        const = ctx.const(node)
        explicit = [*self.einsum(plan.scores, ctx),
                    *SOFTMAX.torch_forward(plan.probs, ctx), *self.einsum(node, ctx)]
        return ["if capture is None:",
                f"    {ctx.var(node.name)} = F.scaled_dot_product_attention(",
                f"        {', '.join(args)},",
                f"        is_causal={bool(plan.probs.causal)}, scale={scale}){tail}"
                + (f" * {const}" if const else ""),
                "else:  # the same op by op, to record the scores and probabilities",
                *(f"    {line}" for line in explicit)]

    @staticmethod
    def einsum(node: Node, ctx: TorchCtx) -> list[str]:
        u, v = node.inputs
        rename = dict(node.rename)
        u_dims = ctx.graph.node[u].dims
        v_dims = [rename.get(d, d) for d in ctx.graph.node[v].dims]
        letters = subscripts([*u_dims, *v_dims, *node.dims])
        spec = (f"b{''.join(letters[d] for d in u_dims)},b{''.join(letters[d] for d in v_dims)}"
                f"->b{''.join(letters[d] for d in node.dims)}")
        y = f"torch.einsum({spec!r}, {ctx.var(u)}, {ctx.var(v)})"
        const = ctx.const(node)
        return [f"{ctx.var(node.name)} = {y} * {const}" if const
                else f"{ctx.var(node.name)} = {y}"]


def subscripts(dims: list[str]) -> dict[str, str]:
    """An einsum letter per dim: its own first letter when free (``b`` is the batch),
    else the first free one."""
    free = [c for c in string.ascii_letters if c != "b"]
    out: dict[str, str] = {}
    for d in dict.fromkeys(dims):
        if not free:
            raise AbcError(f"a contraction over {len(out) + 1} distinct dims is more than "
                           "einsum's 51 letters")
        c = d[0] if d[0] in free else free[0]
        out[d] = c
        free.remove(c)
    return out


@dataclass(frozen=True)
class AttentionPlan:
    """softmax(c·q kᵀ) v as SDPA reads it: (…heads, query, head_dim) by (…heads, key,
    head_dim) by (…heads, key, value_dim); ``query`` and ``key`` are the positions."""

    scores: Node
    probs: Node
    heads: tuple[str, ...]
    query: str
    key: str
    head_dim: str
    value_dim: str


def attention_plan(graph: Graph, node: Node) -> AttentionPlan | None:
    """The attention pattern ending at ``node`` (examples/gpt.yaml's scores → probs → att,
    and the composite ``attention``): node = contract(probs, v) over the key positions,
    probs = softmax(scores) over them (causal: key ≤ query), scores = contract(q, k) over
    one head dim, the keys renamed query → key in both contractions, scores and probs
    read by nothing else. None when ``node`` is not such an end."""
    if node.op != CONTRACT.name or len(node.over) != 1:
        return None
    probs = graph.node[node.inputs[0]]
    if probs.op != SOFTMAX.name or probs.over != node.over \
            or graph.consumers[probs.name] != (node.name,):
        return None
    scores = graph.node[probs.inputs[0]]
    if scores.op != CONTRACT.name or len(scores.over) != 1 \
            or graph.consumers[scores.name] != (probs.name,):
        return None
    (key,), (head_dim,) = node.over, scores.over
    q, k = (graph.node[x].dims for x in scores.inputs)
    rename = dict(scores.rename)
    k = tuple(rename.get(d, d) for d in k)
    queries = [d for d in q if d not in k]
    if len(queries) != 1 or [d for d in k if d not in q] != [key]:
        return None
    query = queries[0]
    heads = tuple(d for d in q if d not in (query, head_dim))
    v_rename = dict(node.rename)
    v = tuple(v_rename.get(d, d) for d in graph.node[node.inputs[1]].dims)
    rest = [d for d in v if d not in (*heads, key)]
    raw = (graph.node[scores.inputs[1]].dims, graph.node[node.inputs[1]].dims)
    if v_rename.get(query) != key or rename.get(query) != key or len(rest) != 1 \
            or any(query not in r or key in r for r in raw) \
            or len(v) != len(heads) + 2 or head_dim not in k \
            or sorted(scores.dims) != sorted((*heads, query, key)) \
            or sorted(node.dims) != sorted((*heads, query, rest[0])) \
            or probs.causal not in ((), (query, key)):
        return None
    return AttentionPlan(scores, probs, heads, query, key, head_dim, rest[0])


CONTRACT = Contract()
