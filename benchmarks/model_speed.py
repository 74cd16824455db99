"""Training-step time and peak memory of the generated GPT ``Model`` against a hand-written
nanoGPT-style GPT of the same shape (issue 15, point 2).

    python benchmarks/model_speed.py --device cuda            # one GPU
    OMP_NUM_THREADS=1 python benchmarks/model_speed.py --device cpu --quick   # smoke run

The generated model is ``abccalc codegen --model`` (μP, Adam, TP5 Table 8) of
examples/gpt.yaml (``gpt``: separate q, k, v projections, which the generated forward
computes as one matmul, ``fused_linear``) and of benchmarks/gpt_fused_qkv.yaml
(``fused``: one QKV projection cut by slices, nanoGPT's structure), at n_layer 4, ctx
128, n_head 4; the hand-written one is the same function written as a person would: a
fused QKV ``Linear``, ``F.scaled_dot_product_attention`` with μP's 1/d scale (= 1/√d at
the base head size), ``nn.LayerNorm``, a 4x GELU MLP and an untied readout with
MuReadout's 1/m multiplier. For ``gpt`` two more models run in the same rounds: the
hand-written GPT of the spec's own structure (``hand_same``: three q, k, v ``Linear``s,
as the state_dict keeps them) and the generated code without sibling fusion
(``generated_unfused``: ``generate(..., fuse=False)``, one matmul per projection). Each
row's ``ratio_ms_same`` / ``ratio_gib_same`` compare the generated model with the
hand-written one of the same structure (for ``fused``, the fused one),
``ratio_ms_fused`` / ``ratio_gib_fused`` with the fused one (``hand_ms``, ``hand_gib``).
Before timing, each hand-written model is loaded with the generated model's weights and
every loss must agree (so all time the same function), and it gets the generated
``param_groups``' learning rates.

One training step is forward + cross-entropy + backward + ``torch.optim.AdamW.step()``
(bf16 autocast on CUDA, fp32 on CPU). Timing is interleaved: in each of ``--rounds``
rounds every model runs ``--steps`` steps after ``--warmup`` steps of its own, so a clock
or thermal drift hits both alike; the table gives the median step time over all rounds
(wall time on CUDA; on CPU the process's CPU time, robust to other load on the machine:
run it with OMP_NUM_THREADS=1).
Peak memory (CUDA) is each model's own: the allocator's peak from building it through
its warmup steps, over what was allocated before it (the other model, idle, is constant).
``--compile SPECS`` repeats it under ``torch.compile`` (inductor; default on CUDA: fused).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SPECS = {"gpt": ROOT / "examples" / "gpt.yaml",  # q, k, v: three projections
         "fused": ROOT / "benchmarks" / "gpt_fused_qkv.yaml"}  # one, cut by slices
N_HEAD = 4  # examples/gpt.yaml's finite head count
BASE = {"d_model": 64, "d_head": 16}  # its base widths
EPS = 1e-8  # AdamW's default base eps; the generated groups scale it with width


def generated_module(spec: str, n_layer: int, ctx: int, tmp: Path, fuse: bool = True
                     ) -> ModuleType:
    """``abccalc codegen --model`` of the spec (``fuse=False``: sibling linears as separate
    calls), imported from a file (so that torch.compile can read its source). Imports this
    checkout's abccalc, not an installed one."""
    sys.path.insert(0, str(ROOT))
    from abccalc.emit.codegen import generate, load_parametrization
    from abccalc.graph.spec import load_graph

    graph = load_graph(SPECS[spec], {"n_layer": str(n_layer), "ctx": str(ctx)})
    name = f"generated_{spec}" + ("" if fuse else "_unfused")
    path = tmp / f"{name}.py"
    path.write_text(generate(load_parametrization(graph, "adam", "table8"), model=True,
                             fuse=fuse))
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    loader.loader.exec_module(module)
    return module


class Block(nn.Module):
    """Pre-LN block: x + attn(ln1(x)), then x + mlp(ln2(x)); q, k, v from one fused QKV
    ``Linear`` or (``fused_qkv=False``) three."""

    def __init__(self, d_model: int, n_head: int, scale: float, fused_qkv: bool = True
                 ) -> None:
        super().__init__()
        self.n_head, self.scale = n_head, scale
        self.ln1 = nn.LayerNorm(d_model)
        if fused_qkv:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        else:
            self.q = nn.Linear(d_model, d_model)
            self.k = nn.Linear(d_model, d_model)
            self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.ln1(x)
        if hasattr(self, "qkv"):
            q, k, v = self.qkv(h).split(d, dim=-1)
        else:
            q, k, v = self.q(h), self.k(h), self.v(h)
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class HandGPT(nn.Module):
    """nanoGPT-style GPT with μP's two forward changes: attention scale 1/d_head (equal
    to 1/√d_head at the base d_head) and the readout multiplier 1/m, m = d_model/base."""

    def __init__(self, d_model: int, n_layer: int, *, vocab: int = 256, ctx: int = 128,
                 fused_qkv: bool = True) -> None:
        super().__init__()
        d_head = d_model // N_HEAD
        scale = math.sqrt(BASE["d_head"]) / d_head
        self.readout_mult = BASE["d_model"] / d_model
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(ctx, d_model)
        self.blocks = nn.ModuleList(Block(d_model, N_HEAD, scale, fused_qkv)
                                    for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.logits = nn.Linear(d_model, vocab, bias=False)

    def forward(self, positions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x)
        return self.logits(self.ln_f(x)) * self.readout_mult


def hand_name(name: str, fused_qkv: bool = True) -> str:
    """The hand-written model's parameter holding (or, for q, k, v into a fused QKV,
    holding a third of) the generated model's parameter ``name``: ``block.2.q.weight`` ->
    ``blocks.2.qkv.weight`` (``blocks.2.q.weight`` with ``fused_qkv=False``)."""
    parts = name.split(".")
    if parts[0] == "block":
        parts[0] = "blocks"
        if parts[2] in ("q", "k", "v") and fused_qkv:
            parts[2] = "qkv"
    return ".".join(parts)


def copy_weights(gen: nn.Module, hand: HandGPT) -> None:
    """Load the generated model's parameters into the hand-written one: separate q, k, v
    stacked into the fused QKV (or copied to its separate q, k, v); a fused QKV of
    per-head [q | k | v] rows (the spec's d_qkv slices) regrouped to nanoGPT's [all q |
    all k | all v]."""
    fused_qkv = hasattr(hand.blocks[0], "qkv")
    mine = dict(hand.named_parameters())
    stacked: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for name, p in gen.named_parameters():
            target = hand_name(name, fused_qkv)
            if name.split(".")[2:3] in (["q"], ["k"], ["v"]) and name.startswith("block.") \
                    and fused_qkv:
                stacked.setdefault(target, {})[name.split(".")[2]] = p
            elif ".qkv." in name:  # (n_head, 3, d_head, ...) rows -> (3, n_head, d_head, ...)
                mine[target].copy_(p.unflatten(0, (N_HEAD, 3, -1)).transpose(0, 1)
                                   .reshape(p.shape))
            else:
                mine[target].copy_(p)
        for target, qkv in stacked.items():
            mine[target].copy_(torch.cat([qkv["q"], qkv["k"], qkv["v"]]))


def hand_groups(gen_module: ModuleType, gen: nn.Module, hand: HandGPT, lr: float
                ) -> list[dict]:
    """The generated ``param_groups``' learning rates and Adam eps on the hand-written
    parameters (q, k and v share them, which the fused QKV needs)."""
    fused_qkv = hasattr(hand.blocks[0], "qkv")
    by_id = {id(p): n for n, p in gen.named_parameters()}
    mine = dict(hand.named_parameters())
    hyper_of: dict[str, tuple[float, float]] = {}
    for g in gen_module.param_groups(gen, lr, eps=EPS):
        for p in g["params"]:
            target = hand_name(by_id[id(p)], fused_qkv)
            if hyper_of.setdefault(target, (g["lr"], g["eps"])) != (g["lr"], g["eps"]):
                raise SystemExit(f"{target}: q, k, v have different learning rates or eps")
    groups: dict[tuple[float, float], list] = {}
    for name, hyper in hyper_of.items():
        groups.setdefault(hyper, []).append(mine[name])
    return [{"params": ps, "lr": g_lr, "eps": g_eps} for (g_lr, g_eps), ps in groups.items()]


def make_step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple, device: str
              ) -> Callable[[], torch.Tensor]:
    positions, tokens, targets = batch
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def step() -> torch.Tensor:
        with torch.autocast(device, dtype=dtype, enabled=device == "cuda"):
            logits = model(positions=positions, tokens=tokens)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# The models of a row, in the order each round runs them: the generated code (fused
# siblings), the generated code without sibling fusion, the hand-written GPT of the spec's
# structure (separate q, k, v) and the fused-QKV hand-written GPT. The middle two only
# where they differ from their neighbours (spec gpt).
KINDS = ("generated", "generated_unfused", "hand_same", "hand")


def build(kind: str, gens: dict[str, ModuleType], d_model: int, n_layer: int, ctx: int,
          device: str, lr: float, compiled: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model ``kind`` (:data:`KINDS`), μP-initialized with seed 0 (a hand-written one
    from the generated one's weights), and its AdamW. ``gens``: the generated module with
    (``generated``) and without (``generated_unfused``) sibling fusion."""
    torch.manual_seed(0)
    gen_module = gens[kind] if kind in gens else gens["generated"]
    gen = gen_module.Model({"d_model": d_model, "d_head": d_model // N_HEAD})
    gen_module.init_(gen)
    if kind in gens:
        model = gen.to(device)
        groups = gen_module.param_groups(model, lr, eps=EPS)
    else:  # built and loaded on the CPU, so that only it reaches the device
        model = HandGPT(d_model, n_layer, ctx=ctx, fused_qkv=kind == "hand")
        copy_weights(gen, model)
        model.to(device)  # keeps the Parameter objects: hand_groups may name them
        groups = hand_groups(gen_module, gen, model, lr)
    opt = torch.optim.AdamW(groups, lr=lr, foreach=True)  # CUDA's default, on CPU too
    return (torch.compile(model) if compiled else model), opt


def batch_of(batch: int, ctx: int, device: str) -> tuple:
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 256, (batch, ctx), generator=g).to(device)
    targets = torch.randint(0, 256, (batch, ctx), generator=g).to(device)
    positions = torch.arange(ctx).expand(batch, ctx).to(device)
    return positions, tokens, targets


def kinds_of(gens: dict[str, ModuleType]) -> list[str]:
    """The models a row runs: all four when the spec has separate q, k, v (its generated
    code has a fused and an unfused form), else the generated and the fused hand-written
    one (the spec's own structure)."""
    if "generated_unfused" in gens:
        return list(KINDS)
    return ["generated", "hand"]


def check_same_function(gens: dict[str, ModuleType], d_model: int, n_layer: int, ctx: int,
                        device: str) -> float:
    """The largest relative difference of each model's fp32 loss on one batch from the
    fused hand-written one's (same weights)."""
    data = batch_of(2, ctx, device)
    losses = {}
    for kind in kinds_of(gens):
        model, _ = build(kind, gens, d_model, n_layer, ctx, device, 1e-3, False)
        with torch.no_grad():
            logits = model(positions=data[0], tokens=data[1])
        losses[kind] = F.cross_entropy(logits.flatten(0, 1), data[2].flatten()).item()
    diff = max(abs(v - losses["hand"]) / abs(losses["hand"]) for v in losses.values())
    if diff > 1e-4:
        raise SystemExit(f"d_model {d_model}: losses differ, {losses}: not the same model")
    return diff


def time_row(gens: dict[str, ModuleType], args, d_model: int, compiled: bool) -> dict:
    """Every model's median step time, interleaved, and (CUDA) each one's peak memory: the
    allocator's peak from building it through its warmup steps (weights, gradients, Adam
    state, activations; compiled: its compilation), over what was allocated before it.
    Compiled: the generated (fused siblings) and both hand-written models."""
    data = batch_of(args.batch, args.ctx, args.device)
    cuda = args.device == "cuda"
    row: dict = {"d_model": d_model, "compiled": compiled}
    steps = {}
    for kind in kinds_of(gens):
        if compiled and kind == "generated_unfused":
            continue
        if cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        model, opt = build(kind, gens, d_model, args.n_layer, args.ctx, args.device,
                           args.lr, compiled)
        steps[kind] = make_step(model, opt, data, args.device)
        for _ in range(args.warmup):  # compiles here, when compiled
            steps[kind]()
        if cuda:
            sync(args.device)
            row[f"{kind}_gib"] = (torch.cuda.max_memory_allocated() - base) / 2**30
    # CPU: the process's CPU time, which other processes on a shared machine do not add to
    clock = time.perf_counter if cuda else time.process_time
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for kind, step in steps.items():
            sync(args.device)
            for _ in range(args.steps):
                t0 = clock()
                step()
                sync(args.device)
                times[kind].append(clock() - t0)
    for kind in steps:
        row[f"{kind}_ms"] = 1e3 * statistics.median(times[kind])
    return with_ratios(row)


def with_ratios(row: dict) -> dict:
    """``ratio_ms_same``/``ratio_gib_same``: generated over the hand-written model of the
    spec's structure (``hand_same``, or ``hand`` where the spec fuses QKV itself);
    ``ratio_ms_fused``/``ratio_gib_fused``: over the fused hand-written one (``hand``).
    Memory ratios are None without a CUDA measurement."""
    same = "hand_same" if "hand_same_ms" in row else "hand"
    for unit in ("ms", "gib"):
        gen = row.get(f"generated_{unit}")
        for key, hand in (("same", same), ("fused", "hand")):
            ref = row.get(f"{hand}_{unit}")
            row[f"ratio_{unit}_{key}"] = gen / ref if gen is not None and ref else None
    return row


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table(rows: list[dict]) -> str:
    """Time and memory of each model and the generated one's ratios (``same``: against
    the hand-written GPT of the spec's structure; ``fused``: against the fused-QKV one);
    ``unfused``: the generated code without sibling fusion."""
    out = ["| spec | d_model | mode | generated ms | unfused ms | hand same ms | "
           "hand fused ms | ratio same | ratio fused | generated GiB | unfused GiB | "
           "hand same GiB | hand fused GiB | ratio same | ratio fused |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        same = "hand_same" if "hand_same_ms" in r else "hand"
        cells = [r["spec"], str(r["d_model"]), "compiled" if r["compiled"] else "eager",
                 *(_num(r.get(f"{k}_ms"), ".2f")
                   for k in ("generated", "generated_unfused", same, "hand")),
                 _num(r["ratio_ms_same"], ".3f"), _num(r["ratio_ms_fused"], ".3f"),
                 *(_num(r.get(f"{k}_gib"), ".2f")
                   for k in ("generated", "generated_unfused", same, "hand")),
                 _num(r["ratio_gib_same"], ".3f"), _num(r["ratio_gib_fused"], ".3f")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    ap.add_argument("--quick", action="store_true",
                    help="tiny CPU run: d_model 32 and 64, 2 layers, batch 2 x 32")
    ap.add_argument("--specs", default="gpt,fused",
                    help="gpt: examples/gpt.yaml (separate q, k, v); fused: "
                         "benchmarks/gpt_fused_qkv.yaml (one QKV projection, as nanoGPT)")
    ap.add_argument("--widths", default="256,1024", help="d_model values (default 256,1024)")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per model per round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--compile", default=None, metavar="SPECS",
                    help="also time torch.compile (inductor) of the models for these specs "
                         "('' for none; default: fused on CUDA, none on CPU)")
    ap.add_argument("--json", help="also write the rows, with the device, torch version, "
                    "config and command, to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.widths, args.n_layer, args.batch, args.ctx = "32,64", 2, 2, 32
        args.rounds, args.steps, args.warmup = 3, 3, 2
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device; use --device cpu")
    specs = [x for x in args.specs.split(",") if x]
    compiled = args.compile if args.compile is not None else (
        "fused" if args.device == "cuda" else "")
    compiled = [x for x in compiled.split(",") if x]
    unknown = sorted(set(specs + compiled) - set(SPECS))
    if unknown:
        raise SystemExit(f"unknown spec {unknown}: choose from {sorted(SPECS)}")
    widths = [int(w) for w in args.widths.split(",")]
    card = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    config = (f"n_layer {args.n_layer}, batch {args.batch} x {args.ctx} tokens, median of "
              f"{args.rounds} x {args.steps} steps")
    print(f"torch {torch.__version__}, {card}, {config}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in dict.fromkeys(specs + compiled):
            gens = {"generated": generated_module(spec, args.n_layer, args.ctx, Path(tmp))}
            unfused = generated_module(spec, args.n_layer, args.ctx, Path(tmp), fuse=False)
            if "fused_linear" in inspect.getsource(gens["generated"]):
                gens["generated_unfused"] = unfused
            for d_model in widths:
                diff = check_same_function(gens, d_model, args.n_layer, args.ctx,
                                           args.device)
                print(f"{spec}, d_model {d_model}: same loss (largest relative difference "
                      f"{diff:.1e}, {', '.join(kinds_of(gens))})")
                modes = [c for c in (False, True) if (spec in compiled if c else spec in specs)]
                for mode in modes:
                    t0 = time.perf_counter()
                    rows.append({"spec": spec, **time_row(gens, args, d_model, mode)})
                    print(f"  {'compiled' if mode else 'eager'}: "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
    print(table(rows))
    if args.json:
        command = shlex.join(["python", "benchmarks/model_speed.py",
                              *(sys.argv[1:] if argv is None else argv)])
        record = {"device": card, "torch": torch.__version__, "config": config,
                  "command": command, "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
