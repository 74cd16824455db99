"""The Muon width sweep's adaptive LR grid (benchmarks/muon_sweep.py), and a tiny run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
pytest.importorskip("torch")

import muon_sweep  # noqa: E402


def test_a_line_starts_around_its_guess() -> None:
    assert muon_sweep.wanted({}, -5, -14, -1) == [-6, -5, -4]
    assert muon_sweep.wanted({}, -1, -14, -1) == [-2, -1]  # clipped to the grid


def test_a_line_extends_past_the_edge_holding_the_best() -> None:
    # best at the low edge (-6): two more below; a diverged run (None) is worst
    assert muon_sweep.wanted({-6: 1.0, -5: 1.1, -4: None}, -5, -14, -1) == [-8, -7]
    assert muon_sweep.wanted({-6: 1.2, -5: 1.1, -4: 1.0}, -5, -14, -1) == [-3, -2]
    assert muon_sweep.wanted({-6: 1.2, -5: 1.0, -4: 1.1}, -5, -14, -1) == []


def test_settled_needs_both_neighbours() -> None:
    assert muon_sweep.settled({-6: 1.2, -5: 1.0, -4: 1.1}, -14, -1) == -5
    assert muon_sweep.settled({-6: 1.0, -5: 1.1}, -14, -1) is None
    assert muon_sweep.settled({-14: 1.0, -13: 1.1}, -14, -1) == -14  # the grid's end


def test_quick_run_and_merge(tmp_path: Path) -> None:
    """--quick on CPU: every line ends with an interior best (or the grid's end), the
    base width's best LR is run at every width, and merge writes the summary and PNG."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "runs.jsonl"
    muon_sweep.main(["run", "--quick", "--device", "cpu", "--workers", "1",
                     "--setups", "muon-moonlight", "--out", str(out)])
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    for setup in ("muon-moonlight",):
        lines = {w: {r["log2_lr"]: r["val_loss"] for r in runs
                     if r["param"] == setup and r["width"] == w} for w in (16, 32, 64)}
        base = muon_sweep.settled(lines[16], -14, -1)
        assert base is not None
        assert all(base in lines[w] for w in (32, 64))
        assert all(muon_sweep.settled(lines[w], -14, -1) is not None for w in (32, 64))
    muon_sweep.main(["merge", str(out), "-o", str(tmp_path / "m.json")])
    merged = json.loads((tmp_path / "m.json").read_text())
    assert "muon-moonlight" in merged["summary"]
    assert set(merged["summary"]["muon-moonlight"]["best"]) == {"16", "32", "64"}
    assert (tmp_path / "m.png").stat().st_size > 0
