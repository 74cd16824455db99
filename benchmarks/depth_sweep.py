"""Depth transfer sweep: does the best learning rate at depth 2 stay best at depth 16?

A GPT from examples/gpt.yaml at fixed width (d_model 128, 4 heads), byte-level, on the
data of benchmarks/mutransfer.py (the standard library's .py files) and with its training
loop (Adam, warmup then cosine, bf16 autocast on a GPU), at every (parametrization,
depth, log2 LR, seed). Each parametrization is the code ``abccalc codegen --model``
writes, with per-group Adam ε from its ``param_groups``:

* ``completep``: n_layer infinite with base 2 (``--base n_layer=2``), ``--depth-alpha 1``:
  every residual branch × (L/2)^-1, LR, ε and decay with their depth factors.
* ``depthmup``: the same with ``--depth-alpha 1/2`` (Depth-μP, TP6): branches × (L/2)^-½,
  and LR, ε and decay inside the blocks with their α = ½ depth factors.
* ``mup``: width-only μP (n_layer a plain count: no branch multipliers).
* ``completep_qk``, ``mup_qk`` (not run unless named in ``--params``): the same on
  benchmarks/gpt_qknorm.yaml, which adds QK-LayerNorm, the control for attention-logit
  growth (Wortsman et al. 2023) as the cause of the depth-16 cliff of docs/depth.md §9.

The default recipe is Adam β2 = 0.95, global gradient-norm clipping at 1.0 and warmup over
30% of the steps (``--beta2``, ``--clip``, ``--warmup``); each run records them. The first
sweep (docs/results/depth_gpu.json) used β2 = 0.999, no clipping and 10% warmup.

    python benchmarks/depth_sweep.py run --out runs/depth            # the GPU sweep
    python benchmarks/depth_sweep.py run --quick --out /tmp/depth    # CPU smoke test
    python benchmarks/depth_sweep.py merge runs/depth/*.jsonl -o docs/results/depth_gpu.json

``run`` starts ``--procs`` worker processes on the one device, each appending one JSON
line per finished run to ``<out>/runs_<k>.jsonl``; runs already in ``<out>`` are skipped,
so a sweep cut off resumes, and no worker starts a run after ``--budget-s``. ``merge``
writes ``{"device", "command", "wall_s", "runs", "summary"}`` and a PNG beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutransfer

ROOT = mutransfer.ROOT
PARAMS = ("completep", "depthmup", "mup", "completep_qk", "mup_qk")
DEFAULT_PARAMS = PARAMS[:3]
# --depth-alpha of the depth-scaled arms
ALPHA = {"completep": "1", "depthmup": "1/2", "completep_qk": "1"}
QK_NORM = Path(__file__).resolve().parent / "gpt_qknorm.yaml"
LABELS = {"completep": "CompleteP (α = 1), generated", "depthmup": "Depth-μP (α = ½), generated",
          "mup": "width-only μP", "completep_qk": "CompleteP, QK-LayerNorm",
          "mup_qk": "width-only μP, QK-LayerNorm"}
BASE_DEPTH = 2
KEYS = ("param", "depth", "log2_lr", "seed")


def fail(msg: str) -> SystemExit:
    print(f"depth_sweep: error: {msg}", file=sys.stderr)
    return SystemExit(2)


def depths_arg(text: str) -> list[int]:
    depths = mutransfer.ints(text, "--depths")
    if depths[0] != BASE_DEPTH or any(b <= a for a, b in itertools.pairwise(depths)):
        raise fail(f"--depths {text}: increasing depths starting at the base {BASE_DEPTH}")
    return depths


# -- models -------------------------------------------------------------------------------
def generated(param: str, depth: int, cfg: argparse.Namespace, cache: dict):
    """The module ``abccalc codegen --model`` writes for ``param`` at ``depth``, written
    once into ``<out>/gen`` (by ``run`` before it starts the workers) and imported."""
    if (param, depth) in cache:
        return cache[param, depth]
    folder = Path(cfg.out) / "gen" if getattr(cfg, "out", None) else Path(tempfile.mkdtemp())
    out = folder / f"gpt_{param}_{depth}_w{cfg.width}_h{cfg.heads}_c{cfg.ctx}.py"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        graph = QK_NORM if param.endswith("_qk") else mutransfer.GPT
        cmd = [sys.executable, "-m", "abccalc", "codegen", str(graph), "--optimizer",
               "adam", "--variant", "table8", "--model", "-o", str(out), "--force",
               "--base", f"d_model={cfg.width}", "--base", f"d_head={cfg.width // cfg.heads}",
               "--set", f"n_layer={depth}", "--set", f"n_head={cfg.heads}",
               "--set", f"ctx={cfg.ctx}", "--set", f"ctx_k={cfg.ctx}"]
        if param in ALPHA:
            cmd += ["--base", f"n_layer={BASE_DEPTH}", "--depth-alpha", ALPHA[param]]
        subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    spec = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cache[param, depth] = module
    return module


def train(torch, param: str, depth: int, log2_lr: int, seed: int, cfg, data, cache) -> dict:
    gen = generated(param, depth, cfg, cache)
    torch.manual_seed(seed)
    model = gen.Model({"d_model": cfg.width, "d_head": cfg.width // cfg.heads})
    # PyTorch's default variance 1/(3 fan_in) for linear weights at the base width, as in
    # benchmarks/mutransfer.py's abccalc-table8
    gen.init_(model, sigmas={"hidden": 3 ** -0.5, "output": 3 ** -0.5})
    opt = torch.optim.AdamW(gen.param_groups(model, 2.0 ** log2_lr, eps=1e-8,
                                             weight_decay=0.0), betas=(0.9, cfg.beta2))
    val, last = mutransfer.fit(torch, model, [opt], cfg, data, seed)
    return {"param": param, "depth": depth, "log2_lr": log2_lr, "seed": seed,
            "val_loss": val, "train_loss": last,
            "branch_multiplier": getattr(gen, "BRANCH_MULTIPLIER", 1.0),
            "beta2": cfg.beta2, "clip": cfg.clip, "warmup": cfg.warmup}


# -- run ----------------------------------------------------------------------------------
def done_runs(out: Path) -> set[tuple]:
    done = set()
    for path in sorted(out.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done.add(tuple(r[k] for k in KEYS))
    return done


def worker(cfg: argparse.Namespace) -> None:
    """Train this worker's share of the runs left, appending each as it finishes."""
    import torch

    torch.set_num_threads(cfg.threads)
    cfg.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" \
        else cfg.device
    out = Path(cfg.out)
    k, n = cfg.worker
    todo = todo_runs(cfg, done_runs(out))[k::n]
    data = mutransfer.splits(torch, mutransfer.corpus())
    cache: dict = {}
    path = out / f"runs_{k}.jsonl"
    for i, (p, depth, lr, seed) in enumerate(todo, 1):
        if time.time() - cfg.started > cfg.budget_s:
            print(f"worker {k}: budget of {cfg.budget_s} s spent, {len(todo) - i + 1} runs "
                  "left for the next call", flush=True)
            return
        t0 = time.time()
        record = train(torch, p, depth, lr, seed, cfg, data, cache)
        record.update(steps=cfg.steps, device=cfg.device, command=cfg.command, start=t0,
                      end=time.time(), host=os.uname().nodename)
        if cfg.device == "cuda":
            record["card"] = torch.cuda.get_device_name()
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"worker {k} [{i}/{len(todo)}] {p} depth={depth} log2_lr={lr} seed={seed} "
              f"val_loss={record['val_loss']} ({time.time() - t0:.1f} s)", flush=True)


def todo_runs(cfg: argparse.Namespace, done: set[tuple]) -> list[tuple]:
    """Runs not yet done, deepest first (the longest), so the workers finish together."""
    runs = [(p, d, lr, s) for d in sorted(cfg.depths, reverse=True) for lr in cfg.log2_lrs
            for p in cfg.params for s in cfg.seeds if (p, d, lr, s) not in done]
    return runs


def run(cfg: argparse.Namespace, argv: list[str]) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    left = todo_runs(cfg, done_runs(out))
    print(f"{len(left)} runs to go in {cfg.procs} processes", flush=True)
    if not left:
        return
    for p, depth in sorted({(p, d) for p, d, _, _ in left}):  # each module written once
        generated(p, depth, cfg, {})
    if cfg.procs == 1:
        cfg.worker = (0, 1)
        return worker(cfg)
    procs = []
    for k in range(cfg.procs):
        cmd = [sys.executable, __file__, *argv, "--worker", f"{k}/{cfg.procs}",
               "--started", str(cfg.started)]
        log = (out / f"log_{k}.txt").open("a")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    rc = max(p.wait() for p in procs)
    for k in range(cfg.procs):
        tail = (out / f"log_{k}.txt").read_text().splitlines()[-1:]
        print(f"worker {k}: {tail[0] if tail else '(no output)'}")
    if rc:
        raise fail(f"a worker failed (exit {rc}); see {out}/log_*.txt")


# -- merge --------------------------------------------------------------------------------
def read_runs(path: Path) -> list[dict]:
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise fail(f"{path}: not a depth_sweep run file: {e}") from None
    if not all(isinstance(r, dict) and {*KEYS, "val_loss"} <= set(r) for r in rows):
        raise fail(f"{path}: every run needs {', '.join(KEYS)} and val_loss")
    return rows


def summarize(runs: list[dict]) -> dict:
    """Per parametrization: best log2 LR per depth (and whether it is inside the grid),
    how many grid steps it moves, the penalty at each depth of the base depth's best LR,
    and whether the best loss decreases with depth."""
    avg: dict[tuple, list[float]] = {}
    for r in runs:
        if r["val_loss"] is not None:
            avg.setdefault((r["param"], r["depth"], r["log2_lr"]), []).append(r["val_loss"])
    mean = {k: sum(v) / len(v) for k, v in avg.items()}
    out = {}
    for p in [q for q in PARAMS if any(k[0] == q for k in mean)]:
        depths = sorted({d for (q, d, _) in mean if q == p})
        best = {}
        for d in depths:
            lrs = {lr: v for (q, dd, lr), v in mean.items() if q == p and dd == d}
            lr = min(lrs, key=lrs.get)
            best[d] = {"log2_lr": lr, "val_loss": lrs[lr],
                       "interior": min(lrs) < lr < max(lrs)}
        base_lr = best[depths[0]]["log2_lr"]
        penalty = {d: mean[(p, d, base_lr)] / best[d]["val_loss"] - 1
                   if (p, d, base_lr) in mean else None for d in depths}
        shifts = [best[d]["log2_lr"] for d in depths]
        losses = [best[d]["val_loss"] for d in depths]
        out[p] = {"best": {str(d): best[d] for d in depths},
                  "optimum_moves_steps": max(shifts) - min(shifts),
                  "base_lr_penalty": {str(d): penalty[d] for d in depths},
                  "base_lr_penalty_deepest": penalty[depths[-1]],
                  "best_loss_monotone": all(b < a for a, b in itertools.pairwise(losses))}
    return out


def summary_text(s: dict) -> str:
    lines = []
    for p, v in s.items():
        best = ", ".join(f"{d}: {b['log2_lr']} ({b['val_loss']:.3f})"
                         + ("" if b["interior"] else " [edge]") for d, b in v["best"].items())
        pen = v["base_lr_penalty_deepest"]
        lines += [f"{p}: best log2 LR (loss) by depth: {best}",
                  f"  optimum moves {v['optimum_moves_steps']} grid step(s); base-depth LR "
                  f"penalty at the deepest: "
                  + (f"{pen * 100:+.1f}%" if pen is not None else "—")
                  + f"; best loss monotone in depth: {v['best_loss_monotone']}"]
    return "\n".join(lines)


def merge(cfg: argparse.Namespace) -> None:
    runs = [r for path in cfg.files for r in read_runs(Path(path))]
    if not runs:
        raise fail("merge: no runs in the given files")
    merged = mutransfer.merged_runs(runs, KEYS)
    merged["summary"] = summarize(merged["runs"])
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    mutransfer.plot(merged, out.with_suffix(".png"), "depth", PARAMS, LABELS,
                    "Depth transfer at a fixed width", 1.0)
    print(summary_text(merged["summary"]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train in parallel processes, one JSON line per run")
    r.add_argument("--params", type=lambda t: mutransfer.params_arg(t, PARAMS),
                   default=list(DEFAULT_PARAMS))
    r.add_argument("--depths", type=depths_arg, default=[2, 4, 8, 16])
    r.add_argument("--log2-lrs", type=mutransfer.lrs_arg, default=list(range(-10, -3)))
    r.add_argument("--seeds", type=lambda t: mutransfer.ints(t, "--seeds"), default=[0])
    r.add_argument("--width", type=int, default=128, help="d_model (the base width too)")
    r.add_argument("--heads", type=int, default=4)
    r.add_argument("--steps", type=int, default=1000)
    r.add_argument("--warmup", type=int, default=None, help="default: 3/10 of the steps")
    r.add_argument("--beta2", type=float, default=0.95, help="Adam β2")
    r.add_argument("--clip", type=float, default=1.0,
                   help="clip the global gradient norm to this (0: no clipping)")
    r.add_argument("--ctx", type=int, default=128)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--eval-batches", type=int, default=16)
    r.add_argument("--procs", type=int, default=12, help="worker processes on the device")
    r.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    r.add_argument("--budget-s", type=float, default=480.0,
                   help="no worker starts a run after this many seconds")
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    r.add_argument("--quick", action="store_true", help="tiny CPU smoke run (< 2 min)")
    r.add_argument("--out", required=True, help="folder of the run files")
    r.add_argument("--worker", type=lambda t: tuple(int(x) for x in t.split("/")),
                   help=argparse.SUPPRESS)
    r.add_argument("--started", type=float, default=None, help=argparse.SUPPRESS)
    m = sub.add_parser("merge", help="join run files into the result JSON and PNG")
    m.add_argument("files", nargs="+")
    m.add_argument("-o", "--output", required=True)
    cfg = ap.parse_args(argv)
    if cfg.cmd == "merge":
        return merge(cfg)
    if cfg.quick:
        cfg.depths, cfg.log2_lrs, cfg.steps, cfg.ctx, cfg.batch = [2, 4], [-8, -6, -4], 10, \
            16, 4
        cfg.width, cfg.heads, cfg.eval_batches = 16, 2, 2
        cfg.procs = min(cfg.procs, 2)
    if cfg.width % cfg.heads:
        raise fail(f"--width {cfg.width} is not a multiple of --heads {cfg.heads}")
    if cfg.procs < 1:
        raise fail("--procs must be at least 1")
    cfg.warmup = cfg.warmup if cfg.warmup is not None else max(1, cfg.steps * 3 // 10)
    cfg.started = cfg.started or time.time()
    cfg.command = " ".join(shlex.quote(a) for a in ["depth_sweep.py", *argv])
    if cfg.worker is not None:
        return worker(cfg)
    run(cfg, [a for a in argv])


if __name__ == "__main__":
    main()
