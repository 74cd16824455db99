"""μTransfer sweep: does the best learning rate of a narrow model stay best when wider?

A byte-level language model from examples/gpt.yaml, trained on the .py files of this
Python's standard library (read at run time, sorted, concatenated; the last 10% of the
bytes are the validation split), with Adam, linear warmup then cosine decay, at every
(parametrization, width, log2 LR, seed). Every width trains on the same token stream.

    python benchmarks/mutransfer.py run --params sp,abccalc-table8 --widths 32,64,128,256 \\
        --log2-lrs=-10:-4 --seeds 0,1 --steps 400 --out runs/part1.jsonl
    python benchmarks/mutransfer.py merge runs/*.jsonl -o docs/results/mutransfer_cpu.json
    python benchmarks/mutransfer.py run --quick --out /tmp/quick.jsonl   # < 1 min smoke test

Each finished run is appended to ``--out`` as one JSON line at once, so a sweep that is
cut off resumes where it stopped; split a sweep by parametrization, width or LR into
several commands and ``merge`` their files. The merged JSON is
``{"device", "command", "wall_s", "runs": [{"param", "width", "log2_lr", "seed",
"val_loss"}], "summary"}``, with a TP5 Figure 1-style PNG beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
PARAMS = ("sp", "abccalc-table8", "abccalc-table3", "mup")
VOCAB = 256


def fail(msg: str) -> SystemExit:
    """Print a one-line error; the caller raises the returned exit (status 2)."""
    print(f"mutransfer: error: {msg}", file=sys.stderr)
    return SystemExit(2)


def mup_available() -> bool:
    return importlib.util.find_spec("mup") is not None


# -- arguments --------------------------------------------------------------------------
def ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise fail(f"{what} {text}: expected comma-separated integers") from None
    return values


def widths_arg(text: str) -> list[int]:
    widths = ints(text, "--widths")
    if any(b <= a for a, b in itertools.pairwise(widths)):
        raise fail(f"--widths {text}: widths must increase")
    return widths


def lrs_arg(text: str) -> list[int]:
    """``-10:-4`` (every integer, i.e. ×2 steps) or ``-10,-8,-6``."""
    if ":" in text:
        lo, _, hi = text.partition(":")
        try:
            grid = list(range(int(lo), int(hi) + 1))
        except ValueError:
            raise fail(f"--log2-lrs {text}: expected LO:HI or a comma list") from None
    else:
        grid = ints(text, "--log2-lrs")
    if len(grid) < 3:
        raise fail(f"--log2-lrs {text}: an LR grid needs at least 3 points to show a minimum")
    return grid


def params_arg(text: str, known: tuple[str, ...] = PARAMS) -> list[str]:
    names = text.split(",")
    for name in names:
        if name not in known:
            raise fail(f"--params: unknown parametrization '{name}' (known: "
                       f"{', '.join(known)})")
    return names


# -- data -------------------------------------------------------------------------------
def corpus() -> bytes:
    """The standard library's .py files (site-packages excluded), sorted, concatenated."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    return b"".join(p.read_bytes() for p in files)


def splits(torch, data: bytes):
    cut = int(len(data) * 0.9)
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    return t[:cut], t[cut:]


def batches(torch, stream, n: int, batch: int, ctx: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        starts = torch.randint(0, len(stream) - ctx - 1, (batch,), generator=g)
        x = torch.stack([stream[s:s + ctx + 1] for s in starts.tolist()])
        yield x[:, :-1], x[:, 1:]


# -- models -----------------------------------------------------------------------------
def generated(param: str, base: int, cfg: argparse.Namespace, cache: dict,
              optimizer: str = "adam"):
    """The module written by ``abccalc codegen --model`` for this parametrization, for
    ``optimizer`` (``muon:ADJUST`` passes ``--muon-adjust ADJUST``)."""
    if (param, optimizer) in cache:
        return cache[(param, optimizer)]
    variant = param.removeprefix("abccalc-") if param != "sp" else "table8"
    name, _, adjust = optimizer.partition(":")
    out = Path(tempfile.mkdtemp()) / f"gpt_{param.replace('-', '_')}_{name}.py"
    cmd = [sys.executable, "-m", "abccalc", "codegen", str(GPT), "--optimizer", name,
           *(["--muon-adjust", adjust] if adjust else []),
           "--variant", variant, "--model", "-o", str(out),
           "--base", f"d_model={base}", "--base", f"d_head={base // cfg.heads}",
           "--set", f"n_layer={cfg.layers}", "--set", f"n_head={cfg.heads}",
           "--set", f"ctx={cfg.ctx}", "--set", f"ctx_k={cfg.ctx}"]
    if param == "sp":
        cmd += ["--params", "sp"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    spec = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cache[(param, optimizer)] = module
    return module


def make(torch, param: str, width: int, base: int, lr: float, cfg, cache: dict):
    """(model, optimizer) at ``width``; SP keeps PyTorch's default init and one LR."""
    if param == "mup":
        sys.path.insert(0, str(Path(__file__).parent))
        import mup_gpt

        model = mup_gpt.build(width, base, vocab=VOCAB, ctx=cfg.ctx, n_layer=cfg.layers,
                              n_head=cfg.heads, d_head0=base // cfg.heads)
        return model, mup_gpt.optimizer(model, lr)
    gen = generated(param, base, cfg, cache)
    model = gen.Model({"d_model": width, "d_head": width // cfg.heads})
    if param == "sp":  # PyTorch defaults: modules keep their reset_parameters() init
        return model, torch.optim.Adam(model.parameters(), lr=lr)
    # σ as in PyTorch's defaults, which SP and mup's model keep: linear weights
    # (hidden, output) variance 1/(3 fan_in), embeddings N(0, 1); abccalc-table3 keeps
    # init_'s own σ = 1 as a contrast
    sigmas = {"hidden": 3 ** -0.5, "output": 3 ** -0.5} if param == "abccalc-table8" else None
    gen.init_(model, sigmas=sigmas)
    return model, torch.optim.Adam(gen.param_groups(model, lr, eps=1e-8))


def schedule(torch, opt, steps: int, warmup: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit(torch, model, opts: list, cfg, data, seed: int) -> tuple[float | None, float | None]:
    """Train ``model`` with every optimizer in ``opts`` stepping together (warmup, cosine),
    then (validation loss, last train loss); None where not finite."""
    train_s, val_s = data
    device = cfg.device
    model.to(device)
    scheds = [schedule(torch, opt, cfg.steps, cfg.warmup) for opt in opts]
    positions = torch.arange(cfg.ctx, device=device).expand(cfg.batch, cfg.ctx)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    loss = torch.tensor(float("nan"))
    for x, y in batches(torch, train_s, cfg.steps, cfg.batch, cfg.ctx, 1000 + seed):
        with amp:
            logits = model(tokens=x.to(device), positions=positions)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB),
                                                     y.to(device).reshape(-1))
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if getattr(cfg, "clip", None):
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        for opt, sched in zip(opts, scheds, strict=True):
            opt.step()
            sched.step()
        if not torch.isfinite(loss):
            break
    total, count = 0.0, 0
    with torch.no_grad(), amp:
        for x, y in batches(torch, val_s, cfg.eval_batches, cfg.batch, cfg.ctx, 7):
            logits = model(tokens=x.to(device), positions=positions)
            total += torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, VOCAB), y.to(device).reshape(-1)).item()
            count += 1
    val = total / count
    return (val if math.isfinite(val) else None,
            loss.item() if torch.isfinite(loss) else None)


def train(torch, param, width, log2_lr, seed, cfg, data, cache) -> dict:
    torch.manual_seed(seed)
    model, opt = make(torch, param, width, cfg.widths[0], 2.0 ** log2_lr, cfg, cache)
    val, last = fit(torch, model, [opt], cfg, data, seed)
    return {"param": param, "width": width, "log2_lr": log2_lr, "seed": seed,
            "val_loss": val, "train_loss": last}


def run(cfg: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    cfg.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" \
        else cfg.device
    out = Path(cfg.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["param"], r["width"], r["log2_lr"], r["seed"]))
    todo = [(p, w, lr, s) for p in cfg.params for w in cfg.widths for lr in cfg.log2_lrs
            for s in cfg.seeds if (p, w, lr, s) not in done]
    print(f"{len(done)} runs already in {out}, {len(todo)} to go on {cfg.device}",
          flush=True)
    data = splits(torch, corpus())
    cache: dict = {}
    command = " ".join(shlex.quote(a) for a in sys.argv)
    start = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, (p, w, lr, s) in enumerate(todo, 1):
        t0 = time.time()
        record = train(torch, p, w, lr, s, cfg, data, cache)
        record.update(steps=cfg.steps, device=cfg.device, command=command,
                      start=t0, end=time.time(), host=os.uname().nodename)
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")
        elapsed = time.time() - start
        eta = elapsed / i * (len(todo) - i)
        print(f"[{i}/{len(todo)}] {p} width={w} log2_lr={lr} seed={s} "
              f"val_loss={record['val_loss']} ({time.time() - t0:.1f}s; elapsed "
              f"{elapsed / 60:.1f} min, ~{eta / 60:.1f} min left)", flush=True)


# -- merge and summary ------------------------------------------------------------------
RUN_KEYS = {"param", "width", "log2_lr", "seed", "val_loss"}


def read_runs(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except OSError as e:
        raise fail(f"{path}: cannot read: {e.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            runs = data["runs"] if isinstance(data, dict) else None
        else:
            runs = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise fail(f"{path}: not a mutransfer result (JSON lines of runs, or a JSON "
                   "object with 'runs')") from None
    if not isinstance(runs, list) or not all(
            isinstance(r, dict) and RUN_KEYS <= set(r) for r in runs):
        raise fail(f"{path}: not a mutransfer result: every run needs "
                   f"{', '.join(sorted(RUN_KEYS))}")
    return runs


def summarize(runs: list[dict]) -> dict:
    """Per parametrization: best log2 LR per width and its shift, the penalty of using
    the base width's best LR, monotone best loss; abccalc vs mup against seed noise."""
    out: dict = {}
    params = sorted({r["param"] for r in runs}, key=lambda p: (p not in PARAMS,
                                                              PARAMS.index(p)
                                                              if p in PARAMS else 0))
    mean: dict = {}
    for r in runs:
        if r["val_loss"] is not None:
            mean.setdefault((r["param"], r["width"], r["log2_lr"]), []).append(r["val_loss"])
    avg = {k: sum(v) / len(v) for k, v in mean.items()}
    for p in params:
        widths = sorted({w for (q, w, _) in avg if q == p})
        best = {}
        for w in widths:
            lrs = {lr: loss for (q, ww, lr), loss in avg.items() if q == p and ww == w}
            lr = min(lrs, key=lrs.get)
            grid = sorted(lrs)
            best[w] = {"log2_lr": lr, "val_loss": lrs[lr],
                       "interior": grid[0] < lr < grid[-1]}
        base_lr = best[widths[0]]["log2_lr"]
        penalty = {w: (avg[(p, w, base_lr)] / best[w]["val_loss"] - 1)
                   if (p, w, base_lr) in avg else None for w in widths}
        losses = [best[w]["val_loss"] for w in widths]
        shifts = [best[w]["log2_lr"] for w in widths]
        out[p] = {"best": {str(w): best[w] for w in widths},
                  "lr_shift_steps": max(shifts) - min(shifts),
                  "base_lr_penalty": {str(w): penalty[w] for w in widths},
                  "max_penalty": max((v for v in penalty.values() if v is not None),
                                     default=None),
                  "best_loss_monotone": all(b < a for a, b in itertools.pairwise(losses))}
    seeds: dict = {}
    for r in runs:
        if r["val_loss"] is not None:
            seeds.setdefault((r["param"], r["width"], r["log2_lr"]), {})[r["seed"]] = \
                r["val_loss"]
    noise = [max(v.values()) - min(v.values()) for v in seeds.values() if len(v) > 1]
    cmp = {}
    for p in params:
        if p.startswith("abccalc") and "mup" in params:
            diffs = [abs(avg[k] - avg[("mup", *k[1:])]) for k in avg
                     if k[0] == p and ("mup", *k[1:]) in avg]
            near = [abs(avg[k] - avg[("mup", *k[1:])]) for k in avg
                    if k[0] == p and ("mup", *k[1:]) in avg
                    and abs(k[2] - out["mup"]["best"][str(k[1])]["log2_lr"]) <= 1]
            cmp[p] = {"max_abs_diff_vs_mup": max(diffs, default=None),
                      "max_abs_diff_vs_mup_near_optimum": max(near, default=None)}
    out["abccalc_vs_mup"] = cmp
    out["seed_noise"] = {"max": max(noise, default=None),
                         "median": sorted(noise)[len(noise) // 2] if noise else None}
    return out


def summary_text(s: dict) -> str:
    lines = []
    for p, v in s.items():
        if p in ("abccalc_vs_mup", "seed_noise"):
            continue
        best = ", ".join(f"{w}: {b['log2_lr']} ({b['val_loss']:.3f})"
                         for w, b in v["best"].items())
        pen = ", ".join(f"{w}: {x * 100:+.1f}%" if x is not None else f"{w}: —"
                        for w, x in v["base_lr_penalty"].items())
        lines += [f"{p}: best log2 LR (loss) by width: {best}",
                  f"  optimum moves {v['lr_shift_steps']} grid step(s); base-width LR "
                  f"penalty: {pen}; best loss monotone in width: {v['best_loss_monotone']}"]
    for p, v in s["abccalc_vs_mup"].items():
        near = v["max_abs_diff_vs_mup_near_optimum"]
        lines.append(f"{p} vs mup: max |Δloss| {v['max_abs_diff_vs_mup']:.3f} overall, "
                     f"{near:.3f} within one step of mup's optimum")
    n = s["seed_noise"]
    if n["max"] is not None:
        lines.append(f"seed-to-seed noise: max {n['max']:.3f}, median {n['median']:.3f}")
    return "\n".join(lines)


def plot(merged: dict, path: Path, axis: str = "width", order: tuple[str, ...] = PARAMS,
         titles: dict[str, str] | None = None, title: str = "μTransfer",
         span: float = 1.5) -> None:
    """One panel per parametrization (in ``order``): validation loss against log2 LR, one
    curve per value of ``axis`` (width here, depth in benchmarks/depth_sweep.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in merged["runs"] if r["val_loss"] is not None]
    params = [p for p in order if any(r["param"] == p for r in runs)]
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.6), sharey=True)
    axes = [axes] if len(params) == 1 else axes
    values = sorted({r[axis] for r in runs})
    cmap = plt.get_cmap("viridis")
    for ax, p in zip(axes, params, strict=True):
        for i, v in enumerate(values):
            pts: dict = {}
            for r in runs:
                if r["param"] == p and r[axis] == v:
                    pts.setdefault(r["log2_lr"], []).append(r["val_loss"])
            xs = sorted(pts)
            ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], marker="o", ms=3,
                    color=cmap(i / max(1, len(values) - 1)), label=f"{axis} {v}")
        ax.set_title((titles or {}).get(p, p))
        ax.set_xlabel("log2 learning rate")
    axes[0].set_ylabel("validation loss")
    finite = [r["val_loss"] for r in runs]
    lo = min(finite)
    axes[0].set_ylim(lo - 0.05, min(max(finite), lo + span))
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"{title} ({merged['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merged_runs(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """The merged result without its summary: device (with the card, where the runs name
    it), commands, wall time (first start to last end) and the runs, each cut to ``keys`` +
    val_loss and sorted by ``keys``."""
    starts = [r["start"] for r in runs if "start" in r]
    ends = [r["end"] for r in runs if "end" in r]
    return {
        "device": ", ".join(sorted({r.get("device", "?") + (f" ({r['card']})" if "card" in r
                                                            else "") for r in runs})),
        "command": "\n".join(sorted({r["command"] for r in runs if "command" in r})),
        "wall_s": round(max(ends) - min(starts), 1) if starts else None,
        "runs": [{k: r[k] for k in (*keys, "val_loss")}
                 for r in sorted(runs, key=lambda r: tuple(r[k] for k in keys))],
    }


def merge(cfg: argparse.Namespace) -> None:
    runs = [r for path in cfg.files for r in read_runs(Path(path))]
    if not runs:
        raise fail("merge: no runs in the given files")
    merged = merged_runs(runs, ("param", "width", "log2_lr", "seed"))
    merged["summary"] = summarize(merged["runs"])
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    plot(merged, out.with_suffix(".png"))
    print(summary_text(merged["summary"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and append one JSON line per run")
    r.add_argument("--params", type=params_arg, default=list(PARAMS))
    r.add_argument("--widths", type=widths_arg, default=[32, 64, 128, 256],
                   help="d_model values; the first is the base width")
    r.add_argument("--log2-lrs", type=lrs_arg, default=list(range(-10, -3)))
    r.add_argument("--seeds", type=lambda t: ints(t, "--seeds"), default=[0])
    r.add_argument("--steps", type=int, default=400)
    r.add_argument("--warmup", type=int, default=None, help="default: steps/10")
    r.add_argument("--layers", type=int, default=2)
    r.add_argument("--heads", type=int, default=2)
    r.add_argument("--ctx", type=int, default=64)
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--eval-batches", type=int, default=16)
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    r.add_argument("--quick", action="store_true",
                   help="tiny smoke run (< 1 min on a CPU): widths 16,32,64, 3 LRs, 20 steps")
    r.add_argument("--out", required=True, help="JSON-lines file to append runs to")
    m = sub.add_parser("merge", help="join run files into the result JSON and PNG")
    m.add_argument("files", nargs="+")
    m.add_argument("-o", "--output", required=True)
    cfg = ap.parse_args(argv)
    if cfg.cmd == "merge":
        return merge(cfg)
    if cfg.quick:
        cfg.widths, cfg.log2_lrs, cfg.steps, cfg.ctx, cfg.batch = [16, 32, 64], [-8, -6, -4], \
            20, 32, 4
        cfg.eval_batches = 2
    for w in cfg.widths:
        if w % cfg.heads:
            raise fail(f"--widths: {w} is not a multiple of --heads {cfg.heads}")
    if "mup" in cfg.params and not mup_available():
        raise fail("the 'mup' parametrization needs microsoft/mup: pip install -e '.[bench]'")
    cfg.warmup = cfg.warmup if cfg.warmup is not None else max(1, cfg.steps // 10)
    run(cfg)


if __name__ == "__main__":
    main()
