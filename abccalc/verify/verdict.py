"""``abccalc verify``: the symbolic check and the coordinate check of one parametrization.

Per parameter, the symbolic verdict of :func:`abccalc.verify.check.check` (and its fix in the
user's gauge); per activation, the width exponent predicted by the propagation beside the
slope the coordinate check measured (:mod:`abccalc.verify.coordcheck`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abccalc.parametrization.gauges import Parametrization
from abccalc.parametrization.paramsfile import ParamsFile
from abccalc.parametrization.rules import fmt, rule
from abccalc.verify.check import CheckResult, check
from abccalc.verify.coordcheck import THRESHOLD, CoordCheck, agrees
from abccalc.verify.coordcheck import as_dict as coord_dict


@dataclass(frozen=True)
class Verification:
    symbolic: CheckResult
    empirical: CoordCheck

    @property
    def ok(self) -> bool:
        """PASS (docs/verdicts.md): the symbolic check passes, and every activation row is
        ``flat`` (or ``unchanged``) and agrees with its predicted exponent."""
        return self.symbolic.ok and not self.not_flat() and not self.disagreeing()

    def not_flat(self) -> list[str]:
        return [r["name"] for r in self.activation_rows()
                if r["verdict"] not in ("flat", "unchanged")]

    def disagreeing(self) -> list[str]:
        return [r["name"] for r in self.activation_rows() if not r["agrees"]]

    def activation_rows(self) -> list[dict[str, Any]]:
        """Each activation: predicted exponent of its change, measured slope, verdict, and
        whether they agree (:func:`abccalc.verify.coordcheck.agrees`)."""
        out = []
        for s, (_, verdict, slope, pred) in zip(self.empirical.series,
                                               self.empirical.verdicts(), strict=True):
            out.append({"name": s.name, "predicted": None if pred == float("-inf") else pred,
                        "slope": slope, "verdict": verdict,
                        "agrees": agrees(s, self.empirical.widths)})
        return out

    def summary(self) -> str:
        """One line: the verdict and every reason for it."""
        sym = self.symbolic
        parts = ["symbolic check " + ("passes" if sym.ok else
                                      f"finds {sym.count} violation(s)")]
        grows, off = self.not_flat(), self.disagreeing()
        emp = self.empirical
        parts.append(f"coordinate check (|slope| ≤ {THRESHOLD} over widths "
                     f"{', '.join(map(str, emp.widths))}, {emp.steps} steps): " +
                     (f"not flat: {', '.join(grows)}" if grows else "flat"))
        if off:
            parts.append(f"measured ≠ predicted: {', '.join(off)}")
        return f"**{'PASS' if self.ok else 'FAIL'}**: " + "; ".join(parts) + "."


def verify(p: Parametrization, empirical: CoordCheck) -> Verification:
    """Check ``p`` symbolically; pair it with its coordinate check."""
    params = ParamsFile(p.variant, p.abc(), {}, ())
    return Verification(check(p.graph, p.optimizer, params), empirical)


def markdown(v: Verification, p: Parametrization) -> str:
    sym, emp = v.symbolic, v.empirical
    bad = {r.name: r for r in sym.params}
    lines = [f"## verify `{p.graph.name}`: {emp.parametrization}, {p.optimizer.value}", "",
             v.summary(), "",
             "### Parameters", "", "| parameter | verdict | init var | multiplier | LR | fix |",
             "|---|---|---|---|---|---|"]
    for name, r in p.params.items():
        ru = rule(p, r)
        fix = ""
        if name in bad and bad[name].fix is not None:
            f = bad[name].fix
            mult = f.multiplier[r.use.node]
            fix = f"init var {f.init_var}, LR {f.lr}" + (
                f", multiplier {mult}" if mult != fmt(ru.multiplier) else "")
        verdict = "; ".join(bad[name].problems) if name in bad else "μP"
        lines.append(f"| {name} | {verdict} | {fmt(ru.init_var)} | {fmt(ru.multiplier)} | "
                     f"{fmt(ru.lr)} | {fix or '—'} |")
    for k in sym.constants:
        lines.append(f"| constant {k.name} | {k.multiplier} should be {k.mup_multiplier} | "
                     f"— | {k.multiplier} | — | {k.mup_multiplier} |")
    lines += ["", "### Activations", "",
              "| activation | predicted change | measured slope | verdict | agree |",
              "|---|---|---|---|---|"]
    for row in v.activation_rows():
        pred = "—" if row["predicted"] is None else f"n^{row['predicted']:g}"
        lines.append(f"| {row['name']} | {pred} | {row['slope']:+.2f} | {row['verdict']} | "
                     f"{'yes' if row['agrees'] else 'no'} |")
    return "\n".join(lines) + "\n"


def as_dict(v: Verification) -> dict[str, Any]:
    return {"ok": v.ok, "not_flat": v.not_flat(), "disagreeing": v.disagreeing(),
            "symbolic": v.symbolic.to_dict(), "empirical": coord_dict(v.empirical),
            "activations": v.activation_rows()}
