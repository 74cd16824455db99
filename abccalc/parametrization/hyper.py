"""Adam ε and weight decay λ per tensor, in width and depth (docs/depth.md §3, §4).

Both are written as the LR is, relative to the base model: ε = ε_base·n^−eps·L^−eps_depth,
λ = λ_base·n^−wd·L^−wd_depth.

**ε.** Adam divides the gradient by √v + ε; ε is negligible (the derivations assume it,
TP5 B.3) only when it scales like the typical entry of that tensor's gradient. At a use
h = n^−a·w·x that entry is n^−a·Σ ∂L/∂h ⊗ x over the broadcast dims
(:func:`abccalc.exponents.gradient_term`, from the backward pass's g(h) and the operand's
size; the largest use of a tied tensor), so eps = −(that exponent). In depth, a tensor in
a branch gets ∂L/∂w through the multiplier L^−α: eps_depth = α there, 0 outside. TP5 B.3's
"like 1/fan_in" agrees for hidden and output weights but not where fan_in is finite
(input weights, biases, gains, embeddings): their gradient is still ∂L/∂h = Θ(1/n).

**λ.** Decoupled decay in torch's AdamW convention shrinks w by lr·λ per step, a timescale
τ = 1/(lr·λ) steps. Keeping τ fixed across width and depth means λ ∝ 1/lr: wd = −c and
wd_depth = −c_depth (mup's MuAdamW, CompleteP's λ·m_N). With "independent" decay (w
shrinks by λ·schedule(t) per step, no lr) τ is 1/λ: wd = wd_depth = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from abccalc.calculus.sizes import broadcast_dims, key
from abccalc.exponents import NEG_INF, ZERO, Exp, Optimizer, gradient_term
from abccalc.parametrization.gauges import Parametrization, ParamRule


@dataclass(frozen=True)
class Hyper:
    """One parameter's depth exponents (a, b, c of L) and its ε and λ exponents."""

    a_depth: Exp
    b_depth: Exp
    c_depth: Exp
    eps: Exp
    eps_depth: Exp
    wd: Exp
    wd_depth: Exp
    branch: str | None = None


def grad_exponent(p: Parametrization, r: ParamRule) -> Exp:
    """Width exponent of the typical entry of ∂L/∂w once trained: the largest over the
    tensor's live uses of n^−a·g(h)·st(x)·n^(broadcast dims) (LLN)."""
    sizes = p.analysis.sizes
    graph = p.graph
    terms = [gradient_term(r.a_exp[key(u)], sizes.g.get(u.node, NEG_INF),
                           max(sizes.operand(graph.node[u.node], u)), broadcast_dims(graph, u))
             for u in r.uses if u.node not in sizes.dead]
    return max(terms, default=NEG_INF)


def hyper(p: Parametrization, r: ParamRule, decay: str = "torch") -> Hyper:
    """ε and λ exponents of ``r`` (module docstring); a tensor that never trains gets 0."""
    d = p.depth.params[r.name]
    adam = p.optimizer is Optimizer.ADAM
    grad = grad_exponent(p, r)
    eps = -grad if adam and grad != NEG_INF else ZERO
    eps_depth = p.depth.alpha if adam and d.branch else ZERO
    torch = decay == "torch" and grad != NEG_INF
    return Hyper(d.a, d.b, d.c, eps, eps_depth, -r.c_exp if torch else ZERO,
                 -d.c if torch else ZERO, d.branch)
