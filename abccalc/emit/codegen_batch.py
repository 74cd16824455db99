"""The generated module's batch-size and training-duration constants (docs/batch.md).

With ``--batch``/``--tokens`` the module gets the base and target batch sizes and token
counts, one ``BATCH_*_FACTOR`` per hyperparameter (the cited papers' SDE-based rules,
:mod:`abccalc.parametrization.batch`, with the citation in a comment) and ``batch_hyper``,
which ``param_groups`` applies to its base values before the width scales. Without the
flags nothing here reaches the text, so every other module is unchanged.
"""

from __future__ import annotations

import textwrap
from fractions import Fraction

from abccalc.parametrization.batch import SOURCES, BatchTransfer, Factor

# the line of param_groups after which the base values are moved to the target run
ANCHOR = '    base = {"lr": lr, "weight_decay": weight_decay, **hyper}\n'
APPLY = ("    base = batch_hyper(base, decay)  # batch size and duration: BATCH_BASE -> "
         "BATCH\n")

DOC = """
Batch size and training duration (docs/batch.md of abccalc). These factors are the cited
papers' SDE-based rules, not the width/depth calculus of the rest of this module: from a
base run at batch size BATCH_BASE and TOKENS_BASE training tokens to this one, with
kappa = BATCH / BATCH_BASE and rho = TOKENS / TOKENS_BASE, param_groups first moves its
base values with batch_hyper (lr, weight_decay{adam_doc}),
then applies the width scales. Pass the base run's values; lr_scale stays the width scale
alone, so check_lr_scales returns the base lr times BATCH_LR_FACTOR. Steps D/B change by
rho / kappa: stretch an LR schedule written in steps (warmup, decay) by it.
"""

SECTION = '''
# -- batch size and training duration (abccalc docs/batch.md) ----------------------------
# The cited papers' SDE-based rules, not the width/depth calculus: from the base run
# (BATCH_BASE per step, TOKENS_BASE tokens) to this one, kappa = BATCH / BATCH_BASE,
# rho = TOKENS / TOKENS_BASE.
{comments}
BATCH_BASE = {batch_base}
BATCH = {batch}
TOKENS_BASE = {tokens_base}
TOKENS = {tokens}
BATCH_KAPPA = BATCH / BATCH_BASE  # {kappa}
TOKENS_RHO = TOKENS / TOKENS_BASE  # {rho}
{factors}
{betas}

def batch_hyper(base: dict, decay: str) -> dict:
    """param_groups' base values moved from the base run to this one (the factors
    above); decay is param_groups' "torch" or "independent"."""
    out = dict(base)
    out["lr"] = base["lr"] * BATCH_LR_FACTOR
    out["weight_decay"] = base["weight_decay"] * (
        BATCH_WEIGHT_DECAY_FACTOR if decay == "torch"
        else BATCH_INDEPENDENT_WEIGHT_DECAY_FACTOR)
{adam}    return out
'''

BETAS = '''BATCH_BASE_BETAS = {betas}  # the base run's Adam betas (abccalc --betas)


def batch_betas(betas: tuple[float, float] = BATCH_BASE_BETAS) -> tuple[float, ...]:
    """beta <- 1 - BATCH_ONE_MINUS_BETA_FACTOR * (1 - beta) for each beta; ValueError
    where one leaves (0, 1) (the rule holds only while the factor * (1 - beta) < 1)."""
    out = tuple(1.0 - BATCH_ONE_MINUS_BETA_FACTOR * (1.0 - b) for b in betas)
    if not all(0.0 < b < 1.0 for b in out):
        raise ValueError(f"betas {{betas}} at 1 - beta factor "
                         f"{{BATCH_ONE_MINUS_BETA_FACTOR}} give {{out}}, outside (0, 1): "
                         "the scaling rule does not apply")
    return out

'''

ADAM = '''    if "eps" in base:
        out["eps"] = base["eps"] * BATCH_EPS_FACTOR
    elif BATCH_EPS_FACTOR != 1:
        raise TypeError("param_groups: pass eps=, which the batch factor scales")
    out["betas"] = batch_betas(base.get("betas", BATCH_BASE_BETAS))
'''

# Greek and the product dot of the rules and citations, spelled for an ASCII module
ASCII = str.maketrans({"κ": "kappa", "ρ": "rho", "τ": "tau", "η": "lr", "λ": "lambda",
                       "·": " * ", "é": "e"})


def _exponent(e: Fraction) -> str:
    return str(e.numerator) if e.denominator == 1 else repr(float(e))


def _expr(f: Factor) -> str:
    """Python code of kappa^p * rho^q."""
    terms = [sym if e == 1 else f"{sym} ** {_exponent(e)}"
             for sym, e in (("BATCH_KAPPA", f.kappa), ("TOKENS_RHO", f.rho)) if e]
    return " * ".join(terms) or "1.0"


def _constant(key: str) -> str:
    """The constant's name after BATCH_: one 1 - beta factor for both betas."""
    return "ONE_MINUS_BETA" if key == "one_minus_beta1" else key.upper()


def _comments(t: BatchTransfer) -> str:
    by_source: dict[str, list[str]] = {}
    for f in t.factors:
        if f.key != "one_minus_beta2":  # one constant for both betas
            key = "1 - beta" if f.key == "one_minus_beta1" else f.key
            by_source.setdefault(f.source, []).append(f"{key} x {f.rule()}")
    if not t.adam:
        by_source["goyal2017"].append("momentum unchanged")
    out = []
    for source, items in by_source.items():
        out += [*textwrap.wrap(f"{', '.join(items)}:".translate(ASCII), 90,
                               initial_indent="# ", subsequent_indent="# "),
                *textwrap.wrap(f"{SOURCES[source].translate(ASCII)}.", 90,
                               initial_indent="#   ", subsequent_indent="#   ",
                               break_on_hyphens=False)]
    return "\n".join(out)


def batch_source(t: BatchTransfer | None) -> str:
    """The batch section of the generated module (empty for None)."""
    if t is None:
        return ""
    factors = [f"BATCH_{_constant(f.key)}_FACTOR = {_expr(f)}  # = {t.exact(f)}"
               for f in t.factors if f.key != "one_minus_beta2"]
    betas = "" if t.betas is None else "\n" + BETAS.format(
        betas=repr(tuple(float(b) for b in t.betas))).rstrip("\n") + "\n"
    return SECTION.format(comments=_comments(t), batch_base=t.batch.base,
                          batch=t.batch.target, tokens_base=t.tokens.base,
                          tokens=t.tokens.target, kappa=t.kappa, rho=t.rho,
                          factors="\n".join(factors), betas=betas,
                          adam=ADAM if t.adam else "")


def batch_doc(t: BatchTransfer | None) -> str:
    """The module docstring's paragraph on the batch factors (empty for None)."""
    if t is None:
        return ""
    return DOC.format(adam_doc=", eps and betas" if t.adam else "")


def apply(functions: str, t: BatchTransfer | None) -> str:
    """The module's functions with param_groups applying ``batch_hyper`` (unchanged for
    None)."""
    if t is None:
        return functions
    if functions.count(ANCHOR) != 1:  # a change to param_groups' text, not user input
        raise RuntimeError("codegen_batch: param_groups' base line moved")
    return functions.replace(ANCHOR, ANCHOR + APPLY)
