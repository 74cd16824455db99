"""Muon width sweep: with abccalc's μP, does Muon's best learning rate stay best when wider?

The byte-level GPT of benchmarks/mutransfer.py (same data, schedule and training loop) at
widths 64 → 1024, three setups, one swept LR η each (log2 grid, factors of 2):

    muon-mup        abccalc's generated μP code for Muon (`abccalc codegen --optimizer
                    muon`, Table 8: init, multipliers, `optimizers()`): torch.optim.Muon
                    (adjust_lr_fn "original", Keller Jordan's max(1, fan_out/fan_in)^½)
                    on the hidden matrices at the derived LR η·m^-c (c = 0), AdamW at
                    η·2^ADAM_OFFSET on the rest
    muon-moonlight  no μP: PyTorch's default init (SP; `abccalc codegen --optimizer muon
                    --muon-adjust match_rms_adamw --params sp`, one LR for all): Muon with
                    Moonlight's "match_rms_adamw" (0.2·max(fan_out, fan_in)^½) on the same
                    matrices and AdamW on the rest, both at η (that convention's point)
    adamw-mup       abccalc's Table 8 μP with AdamW everywhere (the reference)

Weight decay is 0 everywhere (torch.optim.Muon's default is 0.1) so only the LR moves.
The LR grid is adaptive, per (setup, width): three points around where the setup's
derivation puts the optimum (:data:`GUESS`, :data:`SLOPE`), extended by two beyond
whichever edge holds the best loss until the best is interior; then each width also runs
the base width's best LR (the transfer penalty). Runs go to a pool of worker processes
sharing the one GPU, longest (widest) first, AdamW fused on CUDA (fewer kernels); each
finished run is appended to ``--out`` as one JSON line, so a cut-off sweep resumes where
it stopped.

    python benchmarks/muon_sweep.py run --quick --out /tmp/q.jsonl        # CPU smoke test
    python benchmarks/muon_sweep.py run --workers 14 --deadline-s 450 --out runs/muon.jsonl
    python benchmarks/muon_sweep.py merge runs/muon.jsonl -o docs/results/muon_gpu.json

``merge`` writes ``{"device", "command", "wall_s", "runs", "summary"}`` (per setup: best
log2 LR and loss per width, how many grid steps the optimum moves, the base width's LR
penalty per width, whether the best loss falls with width) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import inspect
import json
import math
import multiprocessing
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutransfer as mt

ROOT = mt.ROOT
SETUPS = ("muon-mup", "muon-moonlight", "adamw-mup")
# Where each line's search starts (it then runs until its best is interior): log2 LR at
# the base width, moved by SLOPE·log2(width/base), what each setup's derivation predicts
# (μP: no move; match_rms_adamw without μP: the LR must shrink like n^-½).
GUESS = {"muon-mup": -5, "muon-moonlight": -6, "adamw-mup": -6}
SLOPE = {"muon-mup": 0.0, "muon-moonlight": -0.5, "adamw-mup": 0.0}
# the generated module of each setup: (parametrization, codegen --optimizer)
MODEL = {"muon-mup": ("abccalc-table8", "muon:keller"),
         "muon-moonlight": ("sp", "muon:match_rms_adamw"),
         "adamw-mup": ("abccalc-table8", "adam")}


def fail(msg: str) -> SystemExit:
    print(f"muon_sweep: error: {msg}", file=sys.stderr)
    return SystemExit(2)


def setups_arg(text: str) -> list[str]:
    names = text.split(",")
    for name in names:
        if name not in SETUPS:
            raise fail(f"--setups: unknown setup '{name}' (known: {', '.join(SETUPS)})")
    return names


def check_torch(torch) -> None:
    """torch.optim.Muon with the adjust_lr_fn names used here (torch >= 2.9)."""
    muon = getattr(torch.optim, "Muon", None)
    if muon is None or "adjust_lr_fn" not in inspect.signature(muon).parameters:
        raise fail(f"torch {torch.__version__} has no torch.optim.Muon(adjust_lr_fn=...)")


# -- one run (in a worker process) --------------------------------------------------------
_CACHE: dict = {}


def _module(path: str):
    if path not in _CACHE:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _CACHE[path] = module
    return _CACHE[path]


def build(torch, setup: str, width: int, lr: float, cfg, paths: dict) -> tuple:
    """(model, [optimizers]) of ``setup`` at ``width`` and base LR ``lr``."""
    gen = _module(paths[MODEL[setup]])
    model = gen.Model({"d_model": width, "d_head": width // cfg.heads})
    if MODEL[setup][0] != "sp":  # σ as PyTorch's defaults, as mutransfer's abccalc-table8
        gen.init_(model, sigmas={"hidden": 3 ** -0.5, "output": 3 ** -0.5})
    model.to(cfg.device)  # before the optimizers: a fused AdamW may check the device
    fused = {"fused": True} if cfg.device == "cuda" else {}  # fewer kernels per step
    if setup == "adamw-mup":
        return model, [torch.optim.AdamW(gen.param_groups(model, lr, eps=1e-8),
                                         weight_decay=0.0, **fused)]
    # the generated Muon + AdamW groups; Moonlight's AdamW shares Muon's LR
    adam_lr = lr * 2.0 ** cfg.adam_offset if setup == "muon-mup" else lr
    return model, [torch.optim.Muon(gen.muon_param_groups(model, lr), lr=lr,
                                    weight_decay=0.0, adjust_lr_fn=gen.MUON_ADJUST_LR_FN),
                   torch.optim.AdamW(gen.adamw_param_groups(model, adam_lr), lr=adam_lr,
                                     weight_decay=0.0, **fused)]


def job(cfg: argparse.Namespace, paths: dict, setup: str, width: int, log2_lr: int,
        seed: int) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    if "data" not in _CACHE:
        _CACHE["data"] = mt.splits(torch, mt.corpus())
    t0 = time.time()
    torch.manual_seed(seed)
    model, opts = build(torch, setup, width, 2.0 ** log2_lr, cfg, paths)
    val, last = mt.fit(torch, model, opts, cfg, _CACHE["data"], seed)
    return {"param": setup, "width": width, "log2_lr": log2_lr, "seed": seed,
            "val_loss": val, "train_loss": last, "steps": cfg.steps, "device": cfg.device,
            "start": t0, "end": time.time(), "host": os.uname().nodename}


# -- the adaptive grid ----------------------------------------------------------------------
def wanted(tried: dict[int, float | None], guess: int, lo: int, hi: int) -> list[int]:
    """The next log2 LRs of one (setup, width) line: three around ``guess`` first; then,
    while the best loss sits on an edge of what was tried, two more beyond it (a run that
    diverged counts as worst); nothing once the best is interior (or at the grid's end)."""
    if not tried:
        return [x for x in (guess - 1, guess, guess + 1) if lo <= x <= hi]
    score = {x: v if v is not None else float("inf") for x, v in tried.items()}
    best = min(score, key=lambda x: (score[x], x))
    out = [x for x in (best - 1, best + 1) if lo <= x <= hi and x not in tried]
    if best == min(tried):
        out += [x for x in (best - 1, best - 2) if lo <= x <= hi and x not in tried]
    if best == max(tried):
        out += [x for x in (best + 1, best + 2) if lo <= x <= hi and x not in tried]
    return sorted(set(out))


def settled(tried: dict[int, float | None], lo: int, hi: int) -> int | None:
    """The best log2 LR of a line once it is interior (or at the grid's end), else None."""
    done = {x: v for x, v in tried.items() if v is not None}
    if not done:
        return None
    best = min(done, key=lambda x: (done[x], x))
    ok_lo = best - 1 in tried or best == lo
    ok_hi = best + 1 in tried or best == hi
    return best if ok_lo and ok_hi else None


def guess(cfg, setup: str, width: int) -> int:
    """The centre of a line's first three points (:data:`GUESS`), inside the grid."""
    g = GUESS[setup] + round(SLOPE[setup] * math.log2(width / cfg.widths[0]))
    return min(max(g, cfg.lo + 1), cfg.hi - 1)


def todo(cfg, results: dict, running: set) -> list[tuple]:
    """Runs to start now, widest first: the next points of each line with none running,
    then the base width's best LR at every other width."""
    out = []
    for s in cfg.setups:
        lines = {w: {lr: v for (q, ww, lr), v in results.items() if q == s and ww == w}
                 for w in cfg.widths}
        for w in cfg.widths:  # a line waits for its running points before it extends
            if not any(k[:2] == (s, w) for k in running):
                out += [(s, w, lr) for lr in wanted(lines[w], guess(cfg, s, w), cfg.lo,
                                                   cfg.hi)]
        base = settled(lines[cfg.widths[0]], cfg.lo, cfg.hi)
        if base is not None:
            out += [(s, w, base) for w in cfg.widths[1:] if base not in lines[w]]
    fresh = {k for k in out if k not in running}
    return sorted(fresh, key=lambda k: (-k[1], SETUPS.index(k[0]), k[2]))


def run(cfg: argparse.Namespace) -> None:
    import torch

    check_torch(torch)
    cfg.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" \
        else cfg.device
    out = Path(cfg.out)
    results: dict = {}
    if out.exists():
        for r in mt.read_runs(out):
            if r["seed"] == cfg.seed:
                results[(r["param"], r["width"], r["log2_lr"])] = r["val_loss"]
    paths = {}
    cache: dict = {}
    for key in sorted({MODEL[s] for s in cfg.setups}):
        paths[key] = mt.generated(key[0], cfg.widths[0], cfg, cache, key[1]).__file__
    command = " ".join(shlex.quote(a) for a in sys.argv)
    start = time.time()
    took: dict[int, float] = {}  # longest run seen per width
    print(f"{len(results)} runs already in {out}; {cfg.workers} workers on {cfg.device}",
          flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(cfg.workers, mp_context=ctx) as pool:
        running: dict = {}
        skipped: set = set()
        failed: set = set()  # runs that raised: reported, retried by the next call
        while True:
            for key in todo(cfg, results, set(running.values())):
                if len(running) >= cfg.workers:
                    break
                if key in failed:
                    continue
                elapsed = time.time() - start
                if cfg.deadline_s and elapsed + took.get(key[1], 0) > cfg.deadline_s:
                    skipped.add(key)
                    continue
                fut = pool.submit(job, cfg, paths, *key, cfg.seed)
                running[fut] = key
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                key = running.pop(fut)
                try:
                    record = fut.result()
                except Exception as e:  # one bad run (OOM, ...) must not end the sweep
                    failed.add(key)
                    print(f"{key}: failed: {type(e).__name__}: {e}", flush=True)
                    continue
                record["command"] = command
                took[key[1]] = max(took.get(key[1], 0), record["end"] - record["start"])
                results[key] = record["val_loss"]
                with out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{key[0]} width={key[1]} log2_lr={key[2]} "
                      f"val_loss={record['val_loss']} ({record['end'] - record['start']:.0f}s;"
                      f" elapsed {time.time() - start:.0f}s)", flush=True)
    if failed:
        print(f"{len(failed)} run(s) failed (rerun to retry): {sorted(failed)}", flush=True)
    left = sorted(k for k in skipped if k not in results)
    if left:
        print(f"deadline: {len(left)} run(s) not started (rerun the same command to resume):"
              f" {left}", flush=True)
    print(f"done in {time.time() - start:.0f}s", flush=True)


def merge(cfg: argparse.Namespace) -> None:
    runs = [r for path in cfg.files for r in mt.read_runs(Path(path))]
    if not runs:
        raise fail("merge: no runs in the given files")
    merged = {
        "device": ", ".join(sorted({r.get("device", "?") for r in runs})),
        "command": "\n".join(sorted({r["command"] for r in runs if "command" in r})),
        "wall_s": round(max(r["end"] for r in runs) - min(r["start"] for r in runs), 1)
        if all("start" in r for r in runs) else None,
        "runs": [{k: r[k] for k in ("param", "width", "log2_lr", "seed", "val_loss")}
                 for r in sorted(runs, key=lambda r: (SETUPS.index(r["param"])
                                                      if r["param"] in SETUPS else 9,
                                                      r["width"], r["log2_lr"], r["seed"]))],
    }
    summary = mt.summarize(merged["runs"])
    summary.pop("abccalc_vs_mup", None)
    merged["summary"] = summary
    path = Path(cfg.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1) + "\n")
    mt.plot(merged, path.with_suffix(".png"), order=SETUPS, title="Muon width sweep")
    print(mt.summary_text({**summary, "abccalc_vs_mup": {}}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train, appending one JSON line per run")
    r.add_argument("--setups", type=setups_arg, default=list(SETUPS))
    r.add_argument("--widths", type=mt.widths_arg, default=[64, 256, 1024],
                   help="d_model values; the first is the base width")
    r.add_argument("--grid", default="-14:-1", help="LO:HI, the log2 LRs a line may reach")
    r.add_argument("--adam-offset", type=int, default=-1,
                   help="muon-mup: log2 of AdamW's LR over Muon's (default: -1)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--steps", type=int, default=1500)
    r.add_argument("--warmup", type=int, default=None, help="default: steps/10")
    r.add_argument("--layers", type=int, default=4)
    r.add_argument("--heads", type=int, default=4)
    r.add_argument("--ctx", type=int, default=128)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--eval-batches", type=int, default=16)
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    r.add_argument("--workers", type=int, default=14, help="parallel training processes")
    r.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    r.add_argument("--deadline-s", type=float, default=0,
                   help="start no run that would end after this many seconds (0: none)")
    r.add_argument("--quick", action="store_true",
                   help="tiny CPU smoke run: widths 16,32,64, 2 layers, 15 steps, 2 workers")
    r.add_argument("--out", required=True, help="JSON-lines file to append runs to")
    m = sub.add_parser("merge", help="join run files into the result JSON and PNG")
    m.add_argument("files", nargs="+")
    m.add_argument("-o", "--output", required=True)
    cfg = ap.parse_args(argv)
    if cfg.cmd == "merge":
        return merge(cfg)
    lo, sep, hi = cfg.grid.partition(":")
    try:
        cfg.lo, cfg.hi = int(lo), int(hi)
    except ValueError:
        raise fail(f"--grid {cfg.grid}: expected LO:HI integers") from None
    if not sep or cfg.hi - cfg.lo < 2:
        raise fail(f"--grid {cfg.grid}: expected LO:HI with at least 3 points")
    if cfg.quick:
        cfg.widths, cfg.steps, cfg.ctx, cfg.batch, cfg.eval_batches = [16, 32, 64], 15, 32, 4, 2
        cfg.layers, cfg.heads, cfg.workers = 2, 2, min(cfg.workers, 2)
    for w in cfg.widths:
        if w % cfg.heads:
            raise fail(f"--widths: {w} is not a multiple of --heads {cfg.heads}")
    cfg.warmup = cfg.warmup if cfg.warmup is not None else max(1, cfg.steps // 10)
    run(cfg)


if __name__ == "__main__":
    main()
