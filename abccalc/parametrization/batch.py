"""Batch size and training duration: the papers' SDE-based transfer rules (docs/batch.md).

These are not the width/depth calculus of the rest of abccalc: they come from stochastic
differential equation (SDE) approximations of the optimizer and from the AdamW EMA
timescale, and are transcribed here with their sources. From a base run at batch size
B₀ (examples or tokens per step, the same unit for both) and D₀ training tokens to a
target at B₁, D₁, with κ = B₁/B₀ and ρ = D₁/D₀, each hyperparameter is multiplied by
κ^p·ρ^q (exact rational exponents):

Adam and AdamW (Malladi et al. 2022, the square-root scaling rule)::

    lr × κ^½      1 − β₁ × κ      1 − β₂ × κ      eps × κ^−½

SGD (Goyal et al. 2017, the linear scaling rule; its SDE: Li, Malladi, Arora 2021)::

    lr × κ        momentum unchanged

Weight decay λ holds the AdamW EMA timescale fixed (Wang & Aitchison 2024, verified for
batch size at fixed model and data by Power Lines, Bergsma et al. 2025). torch's
AdamW and SGD multiply w by 1 − η·λ each step, an EMA of the updates with timescale
τ_iter = 1/(η·λ) steps; a run of D tokens in batches of B takes S = D/B steps, so in
units of the whole run the timescale is

    τ = τ_iter / S = B / (η·λ·D).

Holding τ fixed gives η·λ ∝ B/D = κ/ρ, so λ ∝ (κ/ρ)/η:

- AdamW, torch's convention (decay η·λ): η ∝ κ^½, so λ × κ/ρ/κ^½ = κ^½·ρ^−1;
- decay independent of the LR (w ← w·(1 − λ) per step, ``decay="independent"``):
  τ_iter = 1/λ, τ = B/(λ·D), so λ × κ·ρ^−1 (for SGD too);
- SGD, torch's convention: η ∝ κ, so λ × κ/ρ/κ = ρ^−1. This is abccalc's extension of
  the τ argument to SGD; the papers state it for AdamW.

A run's step count S = D/B changes by ρ/κ; an LR schedule written in steps (warmup,
decay) stretches by the same factor. Only adam, adamw and sgd have rules here: Lion, Muon
and the other optimizers are refused (no SDE rule transcribed for them).

``rule="completedp"`` (``--batch-rule completedp``) takes Complete(d)P's Table 1 instead
(Mlodozeniec et al. 2025, AdamW only), where every factor is a power of the ratio κ/ρ of
batch size to tokens, that is of the step count S = D/B: a longer run moves the
hyperparameters as a smaller batch does::

    lr × (κ/ρ)^½      1 − β₁, 1 − β₂ × κ/ρ      eps × (κ/ρ)^−½      λ × (κ/ρ)^½

Its λ keeps the timescale τ above fixed under torch's convention (η·λ ∝ κ/ρ), as the
default rules' λ does; at a fixed token count (ρ = 1) the two rule sets coincide.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from abccalc.errors import AbcError

CAP = 10 ** 15  # the largest batch size or token count accepted
# the rule sets of --batch-rule and the optimizers each has rules for
SUPPORTED = {"sde": ("adam", "adamw", "sgd"), "completedp": ("adam", "adamw")}
ZERO = Fraction(0)
TORCH_BETAS = (Fraction(9, 10), Fraction(999, 1000))  # torch.optim.AdamW's defaults
TITLE = "Batch size and training duration (SDE rules, not the width/depth calculus)"

SOURCES = {
    "malladi2022": "Malladi, Lyu, Panigrahi, Arora, On the SDEs and Scaling Rules for "
                   "Adaptive Gradient Algorithms, NeurIPS 2022 (arXiv 2205.10287): the "
                   "square-root scaling rule for Adam",
    "goyal2017": "Goyal et al., Accurate, Large Minibatch SGD, 2017 (arXiv 1706.02677): "
                 "the linear scaling rule; its SDE: Li, Malladi, Arora, On the Validity "
                 "of Modeling SGD with Stochastic Differential Equations, NeurIPS 2021 "
                 "(arXiv 2102.12470)",
    "powerlines2025": "Bergsma et al., Power Lines: Scaling Laws for Weight Decay and "
                      "Batch Size in LLM Pre-training, 2025 (arXiv 2505.13738), and Wang "
                      "& Aitchison, How to set AdamW's weight decay as you scale model and "
                      "dataset size, 2024 (arXiv 2405.13698): the AdamW timescale "
                      "τ = B/(η·λ·D) held fixed (Wang & Aitchison's assumption; Power "
                      "Lines finds that the optimal τ drifts with tokens per parameter, "
                      "which is not applied here)",
    "completedp2025": "Mlodozeniec, Ablin, Béthune, Busbridge, Klein, Ramapuram, Cuturi, "
                      "Completed Hyperparameter Transfer across Modules, Width, Depth, "
                      "Batch and Duration, 2025 (arXiv 2512.22382), Table 1: AdamW's "
                      "hyperparameters as powers of the batch-to-tokens ratio m_B/m_D",
    "abccalc": "abccalc's extension of the AdamW timescale τ = B/(η·λ·D) to SGD (not "
               "stated in the papers)",
}

_NUMBER = re.compile(r"([0-9]{1,40})(?:[eE]([0-9]{1,2}))?")
_BETA = re.compile(r"0?\.[0-9]{1,12}")


@dataclass(frozen=True)
class Pair:
    """A ``BASE:TARGET`` pair of positive integers."""

    base: int
    target: int

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.target, self.base)


def _number(text: str, flag: str, whole: str) -> int:
    m = _NUMBER.fullmatch(text)
    if m is None:
        raise AbcError(f"{flag} {whole}: expected BASE:TARGET, two positive integers "
                       "(digits, or digits with an exponent: 4e9)")
    mantissa, exp = int(m[1]), int(m[2] or 0)
    if mantissa == 0:
        raise AbcError(f"{flag} {whole}: sizes must be positive")
    if exp > 15 or mantissa * 10 ** exp > CAP:
        raise AbcError(f"{flag} {whole}: sizes must be at most 1e15")
    return mantissa * 10 ** exp


def parse_pair(text: str | None, flag: str) -> Pair | None:
    """``BASE:TARGET`` (``256:1024``, ``1e9:4e9``) as a Pair; None for None. Anything
    else is an AbcError naming ``flag``: only ASCII digits with an optional integer
    exponent, each side in [1, 10^15]."""
    if text is None:
        return None
    shown = ascii(text)[1:-1] if len(text) <= 40 else ascii(text[:40])[1:-1] + "..."
    base, sep, target = text.partition(":")
    if not sep or not text.isascii():
        raise AbcError(f"{flag} {shown}: expected BASE:TARGET, two positive integers "
                       "(e.g. 256:1024)")
    return Pair(_number(base, flag, shown), _number(target, flag, shown))


def parse_betas(text: str | None) -> tuple[Fraction, Fraction]:
    """``--betas B1,B2``: Adam's base β₁, β₂, decimals in (0, 1); None: torch's defaults."""
    if text is None:
        return TORCH_BETAS
    parts = text.split(",")
    shown = ascii(text[:40])[1:-1]
    if len(parts) != 2 or not all(_BETA.fullmatch(p.strip()) for p in parts):
        raise AbcError(f"--betas {shown}: expected BETA1,BETA2, two decimals in (0, 1) "
                       "(e.g. 0.9,0.95)")
    out = tuple(Fraction(p.strip()) for p in parts)
    if not all(0 < b < 1 for b in out):
        raise AbcError(f"--betas {shown}: each beta must lie in (0, 1)")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Factor:
    """One hyperparameter's factor κ^kappa·ρ^rho, from ``source`` (a key of SOURCES)."""

    key: str  # the JSON key and the generated module's constant suffix
    label: str
    kappa: Fraction
    rho: Fraction
    source: str

    def rule(self) -> str:
        """``κ^(1/2)·ρ^-1``; ``1`` for no change."""
        parts = [_power(sym, e) for sym, e in (("κ", self.kappa), ("ρ", self.rho)) if e]
        return "·".join(parts) or "1"


def _power(sym: str, e: Fraction) -> str:
    if e == 1:
        return sym
    return f"{sym}^{e}" if e.denominator == 1 else f"{sym}^({e})"


def _rules(optimizer: str, rule: str) -> tuple[Factor, ...]:
    half, one = Fraction(1, 2), Fraction(1)
    if rule == "completedp":
        src = "completedp2025"
        return (Factor("lr", "learning rate", half, -half, src),
                Factor("one_minus_beta1", "1 − β1", one, -one, src),
                Factor("one_minus_beta2", "1 − β2", one, -one, src),
                Factor("eps", "Adam ε", -half, half, src),
                Factor("weight_decay", "AdamW weight decay (torch: decay lr·λ per step)",
                       half, -half, src),
                Factor("independent_weight_decay", "AdamW weight decay independent of lr",
                       one, -one, "powerlines2025"))
    if optimizer == "sgd":
        return (Factor("lr", "learning rate", one, ZERO, "goyal2017"),
                Factor("weight_decay", "weight decay (torch: decay lr·λ per step)",
                       ZERO, -one, "abccalc"),
                Factor("independent_weight_decay", "weight decay independent of lr",
                       one, -one, "abccalc"))
    return (Factor("lr", "learning rate", half, ZERO, "malladi2022"),
            Factor("one_minus_beta1", "1 − β1", one, ZERO, "malladi2022"),
            Factor("one_minus_beta2", "1 − β2", one, ZERO, "malladi2022"),
            Factor("eps", "Adam ε", -half, ZERO, "malladi2022"),
            Factor("weight_decay", "AdamW weight decay (torch: decay lr·λ per step)",
                   half, -one, "powerlines2025"),
            Factor("independent_weight_decay", "AdamW weight decay independent of lr",
                   one, -one, "powerlines2025"))


def _square_root(q: Fraction) -> Fraction | None:
    """√q when q is the square of a rational, else None."""
    n, d = math.isqrt(q.numerator), math.isqrt(q.denominator)
    return Fraction(n, d) if n * n == q.numerator and d * d == q.denominator else None


@dataclass(frozen=True)
class BatchTransfer:
    """The transfer from the base run to the target: ``batch`` and ``tokens`` pairs (a
    missing one is ``base = target``), the optimizer, for Adam the base betas, and the
    rule set (``sde``: Malladi et al., Goyal et al., the AdamW timescale; ``completedp``:
    Complete(d)P Table 1)."""

    optimizer: str
    batch: Pair
    tokens: Pair
    betas: tuple[Fraction, Fraction] | None
    rule: str = "sde"

    @property
    def kappa(self) -> Fraction:
        return self.batch.ratio

    @property
    def rho(self) -> Fraction:
        return self.tokens.ratio

    @property
    def adam(self) -> bool:
        return self.optimizer != "sgd"

    @property
    def factors(self) -> tuple[Factor, ...]:
        return _rules(self.optimizer, self.rule)

    def factor(self, key: str) -> Factor:
        return next(f for f in self.factors if f.key == key)

    def square(self, f: Factor) -> Fraction:
        """The factor's square κ^(2p)·ρ^(2q), exact (every exponent is a multiple of ½)."""
        p, q = 2 * f.kappa, 2 * f.rho
        assert p.denominator == 1 and q.denominator == 1, f
        return self.kappa ** int(p) * self.rho ** int(q)

    def exact(self, f: Factor) -> str:
        """The factor's value, exactly: ``2``, ``1/2``, ``sqrt(2)``, ``sqrt(1/2)``."""
        sq = self.square(f)
        root = _square_root(sq)
        return str(root) if root is not None else f"sqrt({sq})"

    def value(self, f: Factor) -> float:
        sq = self.square(f)
        root = _square_root(sq)
        return float(root) if root is not None else math.sqrt(sq)

    @property
    def steps(self) -> Fraction:
        """The step count's factor: S = D/B, so ρ/κ."""
        return self.rho / self.kappa

    def target_betas(self) -> tuple[Fraction, Fraction] | None:
        """β ← 1 − r·(1 − β) of the base betas, r the factor of 1 − β (κ; Complete(d)P:
        κ/ρ), exact (its exponents are integers); None for SGD."""
        if self.betas is None:
            return None
        f = self.factor("one_minus_beta1")
        assert f.kappa.denominator == f.rho.denominator == 1, f
        r = self.kappa ** int(f.kappa) * self.rho ** int(f.rho)
        return tuple(1 - r * (1 - b) for b in self.betas)  # type: ignore


def transfer(optimizer: str, batch: str | None, tokens: str | None,
             betas: str | None = None, rule: str = "sde") -> BatchTransfer | None:
    """The transfer ``--batch``/``--tokens`` ask for (None when neither is given), for
    the optimizer named on the command line, with the rule set ``rule`` (``sde`` or
    ``completedp``). Lion, Muon and the other optimizers are refused, as are SGD under
    ``completedp``, ``--betas`` or ``--batch-rule completedp`` without the pairs,
    ``--betas`` with SGD, and a target β outside (0, 1)."""
    b, t = parse_pair(batch, "--batch"), parse_pair(tokens, "--tokens")
    if b is None and t is None:
        if betas is not None:
            raise AbcError("--betas: applies with --batch or --tokens (the base run's Adam "
                           "betas, for the square-root scaling rule)")
        if rule != "sde":
            raise AbcError(f"--batch-rule {rule}: applies with --batch or --tokens")
        return None
    name = optimizer.lower()
    if rule not in SUPPORTED:  # click's choice stops this first; a library caller may not
        raise AbcError(f"--batch-rule {rule[:40]!a}: choose sde or completedp")
    if name not in SUPPORTED[rule]:
        if rule == "completedp":
            raise AbcError(f"--batch-rule completedp with --optimizer {name}: Complete(d)P's "
                           "Table 1 gives rules for AdamW only; use adam or adamw, or the "
                           "default --batch-rule sde (docs/batch.md)")
        raise AbcError(f"--batch/--tokens with --optimizer {name}: no SDE scaling rule "
                       "is transcribed for it; abccalc has rules for adam, adamw (Malladi "
                       "et al. 2022) and sgd (Goyal et al. 2017) only (docs/batch.md)")
    if name == "sgd" and betas is not None:
        raise AbcError("--betas: SGD has no betas (its momentum is unchanged by the "
                       "linear scaling rule)")
    out = BatchTransfer(name, b or Pair(1, 1), t or Pair(1, 1),
                        None if name == "sgd" else parse_betas(betas), rule)
    target = out.target_betas()
    if target is not None:
        f = out.factor("one_minus_beta1")
        sde = rule == "sde"
        where = f"--batch {out.batch.base}:{out.batch.target}" + (
            "" if sde else f" --tokens {out.tokens.base}:{out.tokens.target}")
        for i, (base, new) in enumerate(zip(out.betas, target, strict=True), 1):
            if not 0 < new < 1:
                raise AbcError(f"{where}: the {'square-root' if sde else 'Complete(d)P'} "
                               f"rule's beta{i} = 1 - {out.exact(f)}·(1 - {float(base):g}) "
                               f"= {float(new):g} leaves (0, 1); it holds only while "
                               f"{f.rule()}·(1 - beta) < 1: use a smaller "
                               f"{'batch' if sde else 'batch-to-tokens'} ratio"
                               + ("" if betas else " or give the base run's betas with "
                                  "--betas"))
    return out
