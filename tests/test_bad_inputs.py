"""The bad-input suite of issue 12: every malformed, hostile or oversized input ends in
exit 2 with one line ``abccalc: error: …`` naming the item at fault, no traceback, no
stray or half-written file, no injected code run, within seconds; the valid inputs among
the cases succeed. The cases and their classification are in ``tests/bad_inputs/``;
``benchmarks/bad_input_report.py`` prints the counts per outcome.
"""

from __future__ import annotations

import pytest
from bad_inputs.cases import CASES
from bad_inputs.runner import Case, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.category == "clean", (
        f"{outcome.category}: {outcome.detail}\nexit {outcome.code}, "
        f"{outcome.seconds:.2f} s\nstdout: {outcome.stdout[-600:]}\n"
        f"stderr: {outcome.stderr[-1500:]}")


def test_enough_cases() -> None:
    """The issue asks for at least 80 cases."""
    assert len(CASES) >= 80
