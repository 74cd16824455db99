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

Exponents ±∞: −∞ is an exact zero (a value that never changes, the gradient of a node with
no path to the loss) and +∞ a size that grows without settling
(:func:`abccalc.calculus.sizes.propagate` on a diverging run). Products of sizes are sums
of exponents, written with :func:`plus`, where −∞ absorbs (0·∞ = 0: an exact zero stays
zero however large its factor); a quotient of two sizes is written with :func:`minus`. So
no exponent is ever NaN.

Finite exponents are exact :class:`fractions.Fraction` values (sympy stays out of the hot
loop; a Fraction equals the sympy.Rational of the same value); ±∞ are the floats
:data:`NEG_INF` and :data:`POS_INF` (written ``-oo``, ``oo`` where a report prints them).
"""

from __future__ import annotations

from enum import Enum
from fractions import Fraction

from abccalc.errors import AbcError

Exp = Fraction  # or ±∞ (NEG_INF, POS_INF)
ZERO = Fraction(0)
HALF = Fraction(1, 2)
ONE = Fraction(1)
NEG_INF = float("-inf")
POS_INF = float("inf")


def exact(value: object) -> Exp:
    """An exponent from an int, Fraction, sympy Rational or ±∞ (sympy's ``oo`` too)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value in (POS_INF, NEG_INF):
            return value
        raise TypeError(f"an exponent is exact, got the float {value}")
    if getattr(value, "is_infinite", False):  # sympy's oo and -oo
        return POS_INF if value > 0 else NEG_INF
    return Fraction(int(value.p), int(value.q))  # a sympy Rational


def text(e: Exp) -> str:
    """An exponent as reports write it: ``1/2``, ``-1``; ``oo`` and ``-oo`` for ±∞."""
    return ("oo" if e > 0 else "-oo") if e in (POS_INF, NEG_INF) else str(e)


def is_integer(e: Exp) -> bool:
    """Whether ``e`` is a finite integer exponent."""
    return (isinstance(e, Fraction) and e.denominator == 1) or isinstance(e, int)


class Optimizer(str, Enum):
    """Optimizer setups by update class (:mod:`abccalc.calculus.updates`), each with its
    abc-symmetry (TP4 Eq. 5; TP4b Prop. 2.2.3): SGD (raw gradient), Adam (entrywise:
    AdamW, RMSProp, Adagrad, Lion, sign-SGD), LAMB (Frobenius: LAMB, Adafactor) and Muon
    (spectral on hidden matrices, AdamW elsewhere; one member per shape-factor convention)."""

    SGD = "sgd"
    ADAM = "adam"
    LAMB = "lamb"
    MUON = "muon"  # torch.optim.Muon's default ("original", Keller Jordan)
    MUON_SPECTRAL = "muon-spectral"
    MUON_RMS = "muon-match_rms_adamw"

    @property
    def k(self) -> int:
        """The multiplier's weight in the LR invariant k·a + c: SGD (a+θ, c−2θ), Adam and
        Muon (a+θ, c−θ), LAMB (a+θ, c): the trust ratio carries b's θ."""
        return _K.get(self, 1)

    @classmethod
    def parse(cls, name: str, adjust: str = "keller") -> Optimizer:
        """An optimizer name, any case: ``sgd`` (momentum); ``adam``, ``adamw``,
        ``rmsprop``, ``adagrad``, ``lion``, ``signsgd`` (entrywise, TP5 B.3); ``lamb``,
        ``adafactor`` (Frobenius); ``muon`` with its ``adjust`` convention (``keller``,
        ``spectral``, ``match_rms_adamw``). Anything else is an AbcError naming them."""
        if isinstance(name, Optimizer):
            return name
        if not isinstance(name, str):
            raise TypeError(f"optimizer must be a str, got {type(name).__name__}")
        key = name.strip().lower()
        if key == "muon":
            by_adjust = {"keller": cls.MUON, "spectral": cls.MUON_SPECTRAL,
                         "match_rms_adamw": cls.MUON_RMS}
            if adjust not in by_adjust:
                raise AbcError(f"unknown Muon adjustment {adjust!r} (known: keller, "
                               "spectral, match_rms_adamw)")
            return by_adjust[adjust]
        for member in cls:
            if key == member.value:
                return member
        if key in _ALIASES:
            return cls(_ALIASES[key])
        raise AbcError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZER_NAMES)})")


_K = {Optimizer.SGD: 2, Optimizer.LAMB: 0}
_ALIASES = {"momentum": "sgd", "adamw": "adam", "adagrad": "adam", "rmsprop": "adam",
            "lion": "adam", "signsgd": "adam", "adafactor": "lamb"}
OPTIMIZER_NAMES = ("sgd", "adam", "adamw", "lion", "signsgd", "adafactor", "lamb", "muon",
                   "rmsprop", "adagrad")


def fmt_exp(e: Exp) -> str:
    """An exponent as derivations print it: ``-∞`` for an exact zero."""
    return "-∞" if e == NEG_INF else str(e)


def plus(*terms: Exp | int) -> Exp:
    """The exponent of a product of sizes: the sum, −∞ if any factor is an exact zero
    (−∞ absorbs +∞), else +∞ if any factor grows without bound."""
    total = ZERO
    for t in terms:  # only a float is ever ±∞ (a Fraction's == with a float is slow)
        if t.__class__ is float:
            if t == NEG_INF:
                return NEG_INF
        elif not t:
            continue  # adding an exact 0 is the costly part of Fraction arithmetic
        total = total + t if total else t
    return Fraction(total) if total.__class__ is int else total


_HALVES = tuple(Fraction(k, 2) for k in range(16))


def half(k: int) -> Exp:
    """k/2 for a count k of infinite dims (a table lookup: the CLT's √n per dim)."""
    return _HALVES[k] if 0 <= k < 16 else HALF * k


def minus(num: Exp, den: Exp, both_inf: Exp = POS_INF) -> Exp:
    """The exponent of a quotient num/den of sizes. An exact zero stays zero (−∞); when
    both grow without bound (+∞/+∞, a diverged run) the quotient is ``both_inf``: +∞ (it
    may grow) unless the caller knows it is bounded (x̂'s relative change is at most 1)."""
    if num.__class__ is float:
        if num == NEG_INF:
            return NEG_INF
        if den == POS_INF:
            return both_inf
    return num - den


def init_term(init: Exp, k_in: int, s0x: Exp) -> Exp:
    """Size of W₀·x at initialization: CLT over the fan_in (W₀ iid, independent of x)."""
    return plus(-init, half(k_in), s0x)


def w0_dx_term(init: Exp, k_in: int, k_out: int, sdx: Exp, live: bool = True) -> Exp:
    """Size of W₀·Δx. Matrix-like W₀ gives √n per infinite fan_in dim even though Δx is
    correlated with it; a vector-like readout gives n (LLN, TP5 Table 14). That correlation
    comes from the gradient flowing back through W₀; a use with no path to the loss
    (``live`` False) sends none, so Δx is independent of W₀ and the sum is CLT (√n)."""
    return plus(-init, half(k_in) if k_out or not live else k_in, sdx)


def backward_term(init: Exp, k_out: int, g_h: Exp) -> Exp:
    """Size of W₀ᵀ·∂L/∂h: CLT over the infinite fan_out dims."""
    return plus(-init, half(k_out), g_h)


def dw_backward_term(entries: Exp, k_out: int, g_h: Exp) -> Exp:
    """Size of ΔWᵀ·∂L/∂h once trained: ΔW is a sum of outer products with ∂L/∂h, so the
    sum over fan_out is LLN (TP5 Table 14). It dominates W₀ᵀ·∂L/∂h for a weight reading a
    finite-dim activation (after a PCA layer or a bottleneck)."""
    return plus(entries, k_out, g_h)


def gradient_term(a: Exp, g_h: Exp, st_x: Exp, k_batch: int) -> Exp:
    """Size of the entries of ∂L/∂w at one use h = n^-a·w·x once trained:
    n^-a·Σ ∂L/∂h ⊗ x, summed over the use's broadcast dims (the dims of h outside its
    fan_out: batch, tokens, and for a weight shared across an infinite dim, that dim).
    Once trained ∂L/∂h and x are correlated, so each infinite broadcast dim adds n (LLN);
    at init it adds only √n (CLT), which the maximal-update desideratum does not use
    (docs/derivations.md; TP5 App. B.2)."""
    return plus(-a, g_h, st_x, k_batch)
