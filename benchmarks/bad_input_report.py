"""Run the bad-input suite (tests/bad_inputs/cases.py) against this checkout and print
the count per outcome (clean / traceback / wrong exit / file left / hang), the slowest
cases, and one line per case that is not clean.

Usage: python benchmarks/bad_input_report.py [--all] [CASE_ID ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bad_inputs.cases import CASES  # noqa: E402
from bad_inputs.runner import CATEGORIES, LIMIT_S, run_case  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", help="run only these cases")
    ap.add_argument("--all", action="store_true", help="print every case, clean ones too")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.ids or c.id in args.ids]
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            results.append((case, run_case(case, Path(tmp))))
    counts = Counter(o.category for _, o in results)
    print(f"bad-input suite: {len(results)} cases\n")
    print("| outcome | cases |\n|---|---|")
    for cat in CATEGORIES:
        print(f"| {cat} | {counts[cat]} |")
    secs = sorted((o.seconds for _, o in results), reverse=True)
    print(f"\nwall time: total {sum(secs):.1f} s, max {secs[0]:.2f} s, "
          f"over 2 s: {sum(s > 2 for s in secs)}, over {LIMIT_S:.0f} s: "
          f"{sum(s > LIMIT_S for s in secs)}\n")
    print("| case | outcome | exit | seconds | why |\n|---|---|---|---|---|")
    for case, o in results:
        if args.all or o.category != "clean":
            print(f"| {case.id} | {o.category} | {o.code} | {o.seconds:.2f} | "
                  f"{o.detail.replace('|', '/')[:160]} |")


if __name__ == "__main__":
    main()
