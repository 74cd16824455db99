"""How fast ``abccalc`` imports a real model, side by side with microsoft/mup.

    python benchmarks/import_speed.py [--repeat 3] [--no-mup] [--quick]

A Llama-shaped Hugging Face model (``hf:`` config: hidden 4096, intermediate 11008, 32
heads of 128, vocab 32000; Llama-2-7B's shape) is built on the ``meta`` device, so no
weight memory is allocated. Each measurement runs in a fresh child process, whose time
covers what a user waits for after the libraries are imported, and whose peak memory is
its own VmHWM (read from /proc/self/status at its end; not getrusage, which Linux keeps
across execve, see benchmarks/solve_speed.py):

1. abccalc: ``load_model`` (trace at hidden 4096 and 8192) + ``solve`` + ``parametrize`` +
   ``codegen.generate``, at 32 and 64 layers. Goals (issue 14): < 10 s and < 2 GB at 32
   layers; t(64)/t(32) ≤ 2.3.
2. mup: what a mup user runs to get per-parameter scaling on the same model (its
   ``lm_head`` made a ``MuReadout``, which mup requires): build base (hidden 256) and
   delta (512) models on ``meta`` and ``set_base_shapes`` on the target (hidden 4096,
   built beforehand and not timed, whereas abccalc builds its models inside its time).

Best of ``--repeat`` runs; the load average is printed with the numbers (compare numbers
from one run only). ``--quick``: 2 and 4 layers at hidden 256 (for CI and a CPU check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
         "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
         "vocab_size": 32000, "max_position_embeddings": 4096}
QUICK = {"hidden_size": 256, "intermediate_size": 688, "num_attention_heads": 4,
         "num_key_value_heads": 4, "head_dim": 64, "vocab_size": 1000}


def _hwm_mib() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def child_abccalc(config: str) -> dict:
    """import + solve + codegen in this process (libraries imported first, untimed)."""
    from abccalc.importer.model import hide_broken_torchvision

    hide_broken_torchvision()
    import transformers.models.llama.modeling_llama  # noqa: F401

    from abccalc.calculus.solver import solve
    from abccalc.emit.codegen import generate
    from abccalc.importer.load import load_model
    from abccalc.parametrization.gauges import parametrize

    t = time.perf_counter()
    imported = load_model(f"hf:{config}")
    code = generate(parametrize(solve(imported.graph, "adam"), "table8"))
    elapsed = time.perf_counter() - t
    return {"seconds": elapsed, "params": len(imported.graph.params),
            "nodes": len(imported.graph.nodes), "code_lines": code.count("\n"),
            "unseen": len(imported.unseen)}


def child_mup(config: str) -> dict:
    """mup's step: base and delta models on meta, set_base_shapes on the target."""
    from abccalc.importer.model import hide_broken_torchvision

    hide_broken_torchvision()
    import mup
    import torch
    import transformers

    data = json.loads(Path(config).read_text())
    model_type = data.pop("model_type")

    def build(hidden: int, inter: int, head_dim: int):
        cfg = transformers.AutoConfig.for_model(model_type, **{
            **data, "hidden_size": hidden, "intermediate_size": inter, "head_dim": head_dim})
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(cfg)
            # what a mup user changes: the readout becomes a MuReadout (mup asserts it)
            model.lm_head = mup.MuReadout(hidden, cfg.vocab_size, bias=False)
        return model

    h, i, d = data["hidden_size"], data["intermediate_size"], data["head_dim"]
    target = build(h, i, d)
    t = time.perf_counter()
    base = build(h // 16, i // 16, d // 16)
    delta = build(h // 8, i // 8, d // 8)
    mup.set_base_shapes(target, base, delta=delta, rescale_params=False)
    return {"seconds": time.perf_counter() - t,
            "params": sum(1 for _ in target.parameters())}


def run_child(kind: str, config: str) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); "
            f"sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import import_speed as b; r = b.child_{kind}({config!r}); "
            "r['peak_mib'] = b._hwm_mib(); print(json.dumps(r))")
    done = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def best(kind: str, config: str, repeat: int) -> dict:
    runs = [run_child(kind, config) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mup", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 and 4 layers at hidden 256")
    args = ap.parse_args()
    shape = {**LLAMA, **(QUICK if args.quick else {})}
    depths = (2, 4) if args.quick else (32, 64)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores; Llama shape hidden {shape['hidden_size']}, "
          f"intermediate {shape['intermediate_size']}, {shape['num_attention_heads']} heads "
          f"of {shape['head_dim']}, vocab {shape['vocab_size']} (meta device)\n")
    print("| layers | tool | time (s) | peak RSS (MiB) | parameters | nodes |")
    print("|---:|---|---:|---:|---:|---:|")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in depths:
            config = str(Path(tmp) / f"llama{n}.json")
            Path(config).write_text(json.dumps({**shape, "num_hidden_layers": n}))
            r = best("abccalc", config, args.repeat)
            times[n] = r["seconds"]
            print(f"| {n} | abccalc import + solve + codegen | {r['seconds']:.2f} | "
                  f"{r['peak_mib']:.0f} | {r['params']} | {r['nodes']} |", flush=True)
            if not args.no_mup:
                m = best("mup", config, args.repeat)
                print(f"| {n} | mup set_base_shapes (base, delta built) | {m['seconds']:.2f} "
                      f"| {m['peak_mib']:.0f} | {m['params']} | – |", flush=True)
    lo, hi = depths
    print(f"\nt({hi})/t({lo}) = {times[hi] / times[lo]:.2f} (goal ≤ 2.3)")


if __name__ == "__main__":
    main()
