"""Contraction of two activations over shared dims, times a free constant n^-α
(attention scores qᵀk, attention-weighted values)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from abccalc.exponents import HALF, ONE, Exp, fmt_exp, plus
from abccalc.graph.core import Dim, Node
from abccalc.graph.ops.base import Ctx, Err, Op, Shaped, SizesLike, arity
from abccalc.graph.ops.multiply import changed_product

if TYPE_CHECKING:
    from abccalc.graph.core import Graph


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
    same_dims = False

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

    def mup_constant(self, sizes: SizesLike, node: Node) -> tuple[Exp, str, tuple[str, ...]]:
        u, v = node.inputs
        k = sizes.graph.inf(node.over)
        rule = (f"Θ(1) once trained (LLN, TP5 Def. 4.1 fn. 8): {u} and {v} are correlated, "
                f"so the sum over {k} infinite dim(s) is n^{k}: n^(-α + st({u}) + st({v}) + "
                f"{k}·1) with st = {fmt_exp(sizes.st(u))}, {fmt_exp(sizes.st(v))} must be "
                "Θ(1)")
        return sizes.st(u) + sizes.st(v) + k, rule, (f"size {u}", f"size {v}")

    def sp_constant(self, graph: Graph, node: Node) -> Exp:
        return HALF * graph.inf(node.over)

    def constant_note(self, mup_exponent: Exp) -> str:
        if mup_exponent != 1:
            return ""
        return (" (TP5 Def. 4.1: q and k are correlated once trained, so qᵀk grows like d "
                "by the LLN)")

    torch_forward = "y = self._contract(n, xs, ins)"
    torch_methods = '''
    def _contract(self, n: dict, xs: list[torch.Tensor], ins: list[list[str]]
                  ) -> torch.Tensor:
        rename = dict(n.get("rename", []))
        u_dims, v_dims = ins[0], [rename.get(d, d) for d in ins[1]]
        axis = {d: 1 + i for i, d in enumerate(dict.fromkeys(u_dims + v_dims + n["dims"]))}
        y = torch.einsum(xs[0], [0, *(axis[d] for d in u_dims)],
                         xs[1], [0, *(axis[d] for d in v_dims)],
                         [0, *(axis[d] for d in n["dims"])])
        return y * self.const[n["name"]]
'''


CONTRACT = Contract()
