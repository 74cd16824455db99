"""The batch-size and training-duration section of ``abccalc table`` (docs/batch.md).

The markdown table gains a section of its own after the usual output, titled as the
papers' SDE-based rules, not the width/depth calculus; the JSON object gains a top-level
``batch_transfer``. Without ``--batch``/``--tokens`` nothing is added, so every other
output is unchanged. CSV and LaTeX have no place for it: the CLI refuses the flags there.
"""

from __future__ import annotations

import json
from fractions import Fraction

from abccalc.parametrization.batch import SOURCES, TITLE, BatchTransfer

FORMATS = ("markdown", "json")


def _num(q: Fraction) -> str:
    return f"{float(q):.6g}"


def _sources(t: BatchTransfer) -> list[str]:
    return list(dict.fromkeys(f.source for f in t.factors))


def as_dict(t: BatchTransfer) -> dict:
    """The JSON ``batch_transfer`` object: each factor as its rule, its exponents of κ
    and ρ, its exact value (a string) and a float, with its source."""
    factors = {f.key: {"label": f.label, "rule": f.rule(), "kappa_exponent": str(f.kappa),
                       "rho_exponent": str(f.rho), "exact": t.exact(f),
                       "value": t.value(f), "source": f.source} for f in t.factors}
    out: dict = {"rules": "the cited papers' SDE-based rules, not the width/depth calculus",
                 "rule": t.rule, "optimizer": t.optimizer,
                 "batch": {"base": t.batch.base, "target": t.batch.target},
                 "tokens": {"base": t.tokens.base, "target": t.tokens.target},
                 "kappa": str(t.kappa), "rho": str(t.rho), "steps": str(t.steps),
                 "factors": factors}
    target = t.target_betas()
    if target is not None:
        out["betas"] = {"base": [str(b) for b in t.betas], "target": [str(b) for b in target],
                        "base_value": [float(b) for b in t.betas],
                        "target_value": [float(b) for b in target]}
    out["sources"] = {k: SOURCES[k] for k in _sources(t)}
    return out


def markdown(t: BatchTransfer) -> str:
    """The markdown section: κ, ρ, one row per hyperparameter, the betas, the sources."""
    refs = {k: i for i, k in enumerate(_sources(t), 1)}
    lines = [f"### {TITLE}", "",
             f"From the base run to the target: batch size {t.batch.base} → "
             f"{t.batch.target} (κ = {t.kappa}), training tokens {t.tokens.base} → "
             f"{t.tokens.target} (ρ = {t.rho}); steps S = D/B × ρ/κ = {t.steps}. These "
             "factors come from the cited papers' SDE approximations of the optimizer and "
             "from the AdamW timescale τ = B/(η·λ·D), not from the width/depth calculus "
             "above; they multiply every parameter group's value alike, on top of its "
             "width (and depth) scale (docs/batch.md).", "",
             "| hyperparameter | rule | factor | value | source |", "|---|---|---|---|---|"]
    for f in t.factors:
        lines.append(f"| {f.label} | {f.rule()} | {t.exact(f)} | {t.value(f):.6g} | "
                     f"[{refs[f.source]}] |")
    target = t.target_betas()
    if target is not None:
        pairs = ", ".join(f"β{i} {_num(b)} → {_num(n)}"
                          for i, (b, n) in enumerate(zip(t.betas, target, strict=True), 1))
        r = t.factor("one_minus_beta1").rule()
        lines += ["", f"Adam betas, β ← 1 − {r}·(1 − β), valid while {r}·(1 − β) < 1 (base "
                  f"betas from --betas, default torch's): {pairs}."]
    lines += ["", "Sources:", *(f"{i}. {SOURCES[k]}." for k, i in refs.items())]
    return "\n".join(lines) + "\n"


def add_to(text: str, fmt: str, t: BatchTransfer | None) -> str:
    """``text`` (a table in ``fmt``) with the batch transfer added; unchanged for None."""
    if t is None:
        return text
    if fmt == "json":
        obj = json.loads(text)
        obj["batch_transfer"] = as_dict(t)
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    return text + "\n" + markdown(t)
