"""The Tensor Programs scaling calculus: exponent rules per op.

Sizes are exponents of width n (TP5 Def. J.1: a vector has Θ(n^s) coordinates when
‖v‖²/n = Θ(n^{2s})): ``s0`` at initialization, ``sd`` for the change after training
steps (−∞ when a value never changes), ``st = max(s0, sd)`` the size during training, and
``g`` the size of ∂L/∂v. A parameter use is W = n^{−a}·w with w ~ N(0, n^{−2b}) and LR
η·n^{−c}; only the invariants of TP4 Eq. (5) / TP5 Lemma J.1 enter the dynamics:

    init = a + b            lr = k·a + c,   k = 2 for SGD, 1 for Adam-like.

Rules (TP4 §3, §5; TP5 App. J and Table 14; TP4b for Adam), for a use h = W·x:

    init forward   −init + ½·inf(fan_in) + s0(x)                       (CLT)
    W₀·Δx          −init + κ·inf(fan_in) + sd(x),  κ = ½ matrix-like, 1 vector-like readout
    ΔW·x (Adam)    −lr + inf(fan_in) + st(x)                            (LLN, ΔW Θ(1) entries)
    ΔW·x (SGD)     −lr + g(h) + st(x) + inf(fan_in) + st(x)             (LLN, ΔW = outer products)
    backward       g(x) ⊇ −init + ½·inf(fan_out) + g(h)                 (CLT over fan_out)
    ΔWᵀ backward   g(x) ⊇ ΔW entries + inf(fan_out) + g(h)              (LLN, once trained)

where inf(dims) counts the infinite dims. Biases and embeddings read the constant 1
(TP5 B.1), gains read the normalized x̂.
"""

from __future__ import annotations

from enum import Enum

import sympy

from abccalc.errors import AbcError

Exp = sympy.Rational
ZERO = sympy.Integer(0)
HALF = sympy.Rational(1, 2)
ONE = sympy.Integer(1)
NEG_INF = sympy.S.NegativeInfinity
POS_INF = sympy.S.Infinity


class Optimizer(str, Enum):
    """Optimizer classes with distinct abc-symmetries (TP4 Eq. 5; TP4b Prop. 2.2.3)."""

    SGD = "sgd"
    ADAM = "adam"

    @property
    def k(self) -> int:
        """The multiplier's weight in the LR invariant: SGD (a+θ, c−2θ), Adam (a+θ, c−θ)."""
        return 2 if self is Optimizer.SGD else 1

    @classmethod
    def parse(cls, name: str) -> Optimizer:
        """``sgd`` or ``adam``, any case; ``adamw`` (and Adagrad/RMSProp, TP5 B.3) behave
        like Adam here. Anything else is an AbcError naming the accepted names."""
        if isinstance(name, Optimizer):
            return name
        if not isinstance(name, str):
            raise TypeError(f"optimizer must be a str, got {type(name).__name__}")
        key = name.strip().lower()
        if key in ("adam", "adamw", "adagrad", "rmsprop"):
            return cls.ADAM
        if key == "sgd":
            return cls.SGD
        raise AbcError(f"unknown optimizer {name!r} (known: sgd, adam; adamw, adagrad and "
                       "rmsprop are Adam-like)")


def init_term(init: Exp, k_in: int, s0x: Exp) -> Exp:
    """Size of W₀·x at initialization: CLT over the fan_in (W₀ iid, independent of x)."""
    return -init + HALF * k_in + s0x


def w0_dx_term(init: Exp, k_in: int, k_out: int, sdx: Exp) -> Exp:
    """Size of W₀·Δx. Matrix-like W₀ gives √n per infinite fan_in dim even though Δx is
    correlated with it; a vector-like readout gives n (LLN, TP5 Table 14)."""
    return -init + (HALF if k_out else ONE) * k_in + sdx


def backward_term(init: Exp, k_out: int, g_h: Exp) -> Exp:
    """Size of W₀ᵀ·∂L/∂h: CLT over the infinite fan_out dims."""
    return -init + HALF * k_out + g_h


def dw_backward_term(entries: Exp, k_out: int, g_h: Exp) -> Exp:
    """Size of ΔWᵀ·∂L/∂h once trained: ΔW is a sum of outer products with ∂L/∂h, so the
    sum over fan_out is LLN (TP5 Table 14). It dominates W₀ᵀ·∂L/∂h for a weight reading a
    finite-dim activation (after a PCA layer or a bottleneck)."""
    return entries + k_out + g_h
