"""Time parse + solve + render of examples/gpt.yaml at growing depth.

    python benchmarks/solve_speed.py [--repeat 3]

Prints, per n_layer, the best in-process time, the parameter count, and the time of the
whole ``abccalc table`` CLI call (process start-up included). Goals (issue #3): 96 layers
under 0.5 s in-process and under 1 s as a CLI call; t(192)/t(96) ≤ 2.3.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from abccalc.parametrization import parametrize
from abccalc.render import markdown
from abccalc.solver import solve
from abccalc.spec import load_graph

GPT = Path(__file__).resolve().parent.parent / "examples" / "gpt.yaml"
DEPTHS = (12, 24, 48, 96, 192)


def in_process(n_layer: int) -> tuple[float, int]:
    t = time.perf_counter()
    graph = load_graph(GPT, {"n_layer": str(n_layer)})
    markdown(parametrize(solve(graph, "adam"), "table3"))
    return time.perf_counter() - t, len(graph.params)


def cli_call(n_layer: int) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "abccalc", "table", str(GPT), "--set",
                    f"n_layer={n_layer}"], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'n_layer':>7} {'params':>7} {'in-process s':>13} {'CLI s':>7}")
    best = {}
    for depth in DEPTHS:
        runs = [in_process(depth) for _ in range(args.repeat)]
        best[depth] = min(t for t, _ in runs)
        cli = min(cli_call(depth) for _ in range(args.repeat))
        print(f"{depth:>7} {runs[0][1]:>7} {best[depth]:>13.3f} {cli:>7.3f}")
    print(f"t(192)/t(96) = {best[192] / best[96]:.2f}")


if __name__ == "__main__":
    main()
