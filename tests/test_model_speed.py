"""benchmarks/model_speed.py: a tiny CPU run of every model it compares (the generated
GPT with fused sibling linears and without, the hand-written GPT of the spec's own
structure and the fused-QKV one), with the losses checked equal before timing, and the
keys of its rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
pytest.importorskip("torch")

import model_speed  # noqa: E402


def test_tiny_cpu_run_rows(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    rows = model_speed.main(["--device", "cpu", "--widths", "32", "--n-layer", "1",
                             "--batch", "2", "--ctx", "16", "--rounds", "1", "--steps", "1",
                             "--warmup", "1", "--json", str(out)])
    record = json.loads(out.read_text())
    assert record["rows"] == rows and record["device"] == "cpu"
    assert record["config"] == "n_layer 1, batch 2 x 16 tokens, median of 1 x 1 steps"
    assert record["command"].startswith("python benchmarks/model_speed.py --device cpu")
    gpt, fused = rows
    assert (gpt["spec"], fused["spec"]) == ("gpt", "fused")
    for key in ("generated_ms", "generated_unfused_ms", "hand_same_ms", "hand_ms"):
        assert gpt[key] > 0, key
    assert "generated_unfused_ms" not in fused and "hand_same_ms" not in fused
    for row, same in ((gpt, "hand_same_ms"), (fused, "hand_ms")):
        assert row["ratio_ms_same"] == pytest.approx(row["generated_ms"] / row[same])
        assert row["ratio_ms_fused"] == pytest.approx(row["generated_ms"] / row["hand_ms"])
        assert row["ratio_gib_same"] is None and row["ratio_gib_fused"] is None  # no CUDA


def test_hand_written_gpts_hold_the_generated_weights() -> None:
    """The hand-written GPT of separate q, k, v takes the generated names one to one; the
    fused one stacks q, k, v into its qkv."""
    assert model_speed.hand_name("block.1.q.weight", fused_qkv=False) == "blocks.1.q.weight"
    assert model_speed.hand_name("block.1.q.weight") == "blocks.1.qkv.weight"
    same = model_speed.HandGPT(32, 1, ctx=16, fused_qkv=False)
    assert {"blocks.0.q.weight", "blocks.0.k.bias"} <= dict(same.named_parameters()).keys()
    assert not hasattr(same.blocks[0], "qkv")
