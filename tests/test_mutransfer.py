"""The μTransfer harness: the --quick smoke run writes a valid result; bad input exits 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
pytest.importorskip("torch")
pytest.importorskip("matplotlib")

import mutransfer  # noqa: E402


def call(argv: list[str], capsys) -> tuple[int, str]:
    try:
        mutransfer.main(argv)
    except SystemExit as e:
        return int(e.code), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_quick_run_writes_a_valid_result(tmp_path: Path, capsys) -> None:
    params = "sp,abccalc-table8" + (",mup" if mutransfer.mup_available() else "")
    part = tmp_path / "part.jsonl"
    quick = ["run", "--quick", "--params", params, "--device", "cpu", "--threads", "1"]
    assert call([*quick, "--out", str(part)], capsys)[0] == 0
    out = tmp_path / "result.json"
    assert call(["merge", str(part), "-o", str(out)], capsys)[0] == 0
    data = json.loads(out.read_text())
    assert {"device", "command", "wall_s", "runs"} <= set(data)
    assert data["device"] == "cpu" and data["wall_s"] > 0
    assert len(data["runs"]) == len(params.split(",")) * 3 * 3  # params × widths × LRs
    for r in data["runs"]:
        assert set(r) == {"param", "width", "log2_lr", "seed", "val_loss"}
        assert r["val_loss"] is None or 0 < r["val_loss"] < 10
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # resume: a second run finds every run done and trains nothing
    assert call([*quick, "--out", str(part)], capsys)[0] == 0
    assert len(part.read_text().splitlines()) == len(data["runs"])


@pytest.mark.parametrize(("argv", "why"), [
    (["run", "--params", "sp,nope", "--out", "x.jsonl"], "unknown parametrization 'nope'"),
    (["run", "--log2-lrs=-8:-7", "--out", "x.jsonl"], "at least 3 points"),
    (["run", "--widths", "64,32,128", "--out", "x.jsonl"], "widths must increase"),
])
def test_bad_run_arguments(argv: list[str], why: str, capsys) -> None:
    code, err = call(argv, capsys)
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1


def test_merge_rejects_a_file_not_in_the_format(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": [{"param": "sp", "width": 32}]}))
    code, err = call(["merge", str(bad), "-o", str(tmp_path / "m.json")], capsys)
    assert code == 2 and "not a mutransfer result" in err and "bad.json" in err
    assert not (tmp_path / "m.json").exists()


def test_mup_missing_names_the_extra(monkeypatch, capsys) -> None:
    monkeypatch.setattr(mutransfer, "mup_available", lambda: False)
    code, err = call(["run", "--quick", "--params", "mup", "--out", "x.jsonl"], capsys)
    assert code == 2 and "pip install -e '.[bench]'" in err


def test_summary_of_known_curves() -> None:
    """Optimum shift, base-LR penalty and monotonicity on hand-made curves."""
    runs = [{"param": "sp", "width": w, "log2_lr": lr, "seed": 0,
             "val_loss": 2.0 - 0.1 * i + 0.05 * (lr - best) ** 2}
            for i, (w, best) in enumerate(((32, -6), (64, -7), (128, -8)))
            for lr in range(-10, -3)]
    s = mutransfer.summarize(runs)["sp"]
    assert [s["best"][w]["log2_lr"] for w in ("32", "64", "128")] == [-6, -7, -8]
    assert s["lr_shift_steps"] == 2 and s["best_loss_monotone"]
    assert s["base_lr_penalty"]["128"] == pytest.approx((1.8 + 0.05 * 4) / 1.8 - 1)
