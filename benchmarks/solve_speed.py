"""How fast abccalc turns a graph into μP, by depth, and side by side with microsoft/mup.

    python benchmarks/solve_speed.py [--repeat 3] [--no-mup] [--clock wall|cpu]

Every number is the best of ``--repeat`` runs, all measured in this one run (the machine's
load average is printed with them: compare numbers from one run only). ``--clock cpu``
times the CPU this process (or the CLI child) used instead of the wall clock: on a shared,
loaded machine it is the steadier of the two (it leaves out time spent waiting for a
core). Each timed run
starts after ``gc.collect()``, for abccalc and mup alike, so that no run pays for the
garbage of the one before; the collector stays on during the run (``timeit`` turns it
off; here a full pass that a run's own allocations trigger is part of its time).

1. Start-up (issue #13): ``abccalc --help`` and ``abccalc table examples/gpt.yaml`` as
   whole processes. Goals: ≤ 0.15 s and ≤ 0.3 s.
2. Depth scaling (issue #3): parse + solve + render of examples/gpt.yaml at n_layer 12…192,
   in-process and as a whole ``abccalc table`` CLI call (process start-up included).
   Goals: 96 layers under 0.5 s in-process and 1 s as a CLI call; t(192)/t(96) ≤ 2.3.
3. Against mup (issues #8, #13), at n_layer 12, 48, 96: abccalc ``load_graph`` + ``solve`` +
   ``parametrize`` + ``codegen.generate`` in-process; mup: what a mup user adds to get
   per-parameter scaling, i.e. build the base (width 64) and delta (128) models and
   ``set_base_shapes`` on the (already built) target model (256). Goal (issue #13): abccalc
   at least 2× faster than mup at each depth, with t(192)/t(96) ≤ 2.1. Also the whole
   ``abccalc codegen --model`` CLI call, and abccalc's peak memory (the CLI process's own
   peak RSS, VmHWM) at n_layer 96.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's abccalc, not an installed one (the CLI
# calls run ``python -m abccalc`` in ROOT, so both sides measure the same code)

from abccalc.calculus.solver import solve  # noqa: E402
from abccalc.emit.codegen import generate  # noqa: E402
from abccalc.emit.render import markdown  # noqa: E402
from abccalc.graph.spec import load_graph  # noqa: E402
from abccalc.parametrization.gauges import parametrize  # noqa: E402

GPT = ROOT / "examples" / "gpt.yaml"
DEPTHS = (12, 24, 48, 96, 192)
MUP_DEPTHS = (12, 48, 96)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCK["wall"]


def best(f, repeat: int, child: bool = False) -> float:
    """The least time of ``repeat`` calls of ``f`` (with ``--clock cpu`` and ``child``, the
    CPU time of the child processes it ran)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        now = _children_cpu if child and clock is CLOCK["cpu"] else clock
        t = now()
        f()
        times.append(now() - t)
    return min(times)


def table_in_process(n_layer: int) -> int:
    graph = load_graph(GPT, {"n_layer": str(n_layer)})
    markdown(parametrize(solve(graph, "adam"), "table3"))
    return len(graph.params)


def codegen_in_process(n_layer: int) -> None:
    """The issue-13 path: load_graph + solve + parametrize + codegen.generate."""
    graph = load_graph(GPT, {"n_layer": str(n_layer)})
    generate(parametrize(solve(graph, "adam"), "table8"))


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "abccalc", *args], check=True, cwd=ROOT,
                   capture_output=True)


def mup_user_path(n_layer: int, repeat: int) -> float:
    """Best time of a mup user's own step: build base (64) and delta (128) models, then
    ``set_base_shapes`` on a target (256) built beforehand (its build is not counted:
    an abccalc user builds the model too)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import mup
    import mup_gpt

    kw = {"vocab": 256, "ctx": 64, "n_layer": n_layer, "n_head": 4, "d_head0": 16}
    target = mup_gpt.MupGPT(256, **kw)

    def step() -> None:
        base, delta = mup_gpt.MupGPT(64, **kw), mup_gpt.MupGPT(128, **kw)
        mup.set_base_shapes(target, base, delta=delta, rescale_params=False)

    return best(step, repeat)


def peak_rss_mib(*args: str) -> float:
    """Peak resident set size of one CLI call: the child's own VmHWM, read from
    /proc/self/status at its end. Not getrusage: Linux keeps ru_maxrss across execve, so
    a child forked from this process (with torch loaded) would report the parent's peak;
    VmHWM belongs to the address space that execve creates (kB)."""
    probe = ("import sys\n"
             "from cli import main\n"
             f"sys.argv = ['abccalc', *{list(args)!r}]\n"
             "try:\n    main()\nfinally:\n"
             "    hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')]\n"
             "    print(hwm[0].split()[1], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT,
                          capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mup", action="store_true", help="skip the comparison with mup")
    ap.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                    help="wall-clock time, or the CPU time used (steadier under load)")
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    r = args.repeat
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores; {args.clock} clock\n")

    print("## start-up: whole CLI processes")
    t_help = best(lambda: cli("--help"), r, child=True)
    t_table = best(lambda: cli("table", str(GPT)), r, child=True)
    print(f"abccalc --help: {t_help:.3f} s (goal ≤ 0.15)")
    print(f"abccalc table examples/gpt.yaml: {t_table:.3f} s (goal ≤ 0.3)\n")

    print("## abccalc table: parse + solve + render, by depth")
    print(f"{'n_layer':>7} {'params':>7} {'in-process s':>13} {'CLI s':>7}")
    t_in = {}
    for depth in DEPTHS:
        n_params = table_in_process(depth)
        t_in[depth] = best(lambda d=depth: table_in_process(d), r)
        t_cli = best(lambda d=depth: cli("table", str(GPT), "--set", f"n_layer={d}"), r,
                     child=True)
        print(f"{depth:>7} {n_params:>7} {t_in[depth]:>13.3f} {t_cli:>7.3f}")
    print(f"t(192)/t(96) = {t_in[192] / t_in[96]:.2f}")

    if args.no_mup:
        return
    print("\n## per-parameter scaling: abccalc load_graph + solve + parametrize + generate "
          f"vs mup base + delta + set_base_shapes (best of {r})")
    print(f"{'n_layer':>7} {'abccalc s':>10} {'mup s':>7} {'mup/abccalc':>12} "
          f"{'codegen --model CLI s':>22}")
    out = Path(tempfile.mkdtemp()) / "mup_gpt.py"
    t_ab = {}
    for depth in (*MUP_DEPTHS, 192):  # all of abccalc first: torch's heap (mup) not yet in
        codegen_in_process(depth)      # this process, whose garbage collector would walk it
        t_ab[depth] = best(lambda d=depth: codegen_in_process(d), r)
    for depth in MUP_DEPTHS:
        t_mup = mup_user_path(depth, r)
        t_cli = best(lambda d=depth: cli("codegen", str(GPT), "--optimizer", "adam",
                                         "--variant", "table8", "--model", "--force",
                                         "-o", str(out), "--set", f"n_layer={d}"), r,
                     child=True)
        print(f"{depth:>7} {t_ab[depth]:>10.3f} {t_mup:>7.3f} {t_mup / t_ab[depth]:>12.2f} "
              f"{t_cli:>22.3f}")
    print(f"abccalc t(192) = {t_ab[192]:.3f} s; t(192)/t(96) = {t_ab[192] / t_ab[96]:.2f}")
    rss = peak_rss_mib("codegen", str(GPT), "--optimizer", "adam", "--model", "--force",
                       "-o", str(out), "--set", "n_layer=96")
    print(f"\nabccalc codegen peak memory at n_layer 96: {rss:.0f} MiB (VmHWM of the CLI process)")


if __name__ == "__main__":
    main()
