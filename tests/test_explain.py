"""``abccalc explain`` of a parameter-free constant (issue 12, point 9): the 1/d of
attention, derived from the LLN once q and k are correlated (TP5 Def. 4.1, fn. 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPT = str(ROOT / "examples" / "gpt.yaml")
HEADS = str(ROOT / "examples" / "archs" / "attention_heads.yaml")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_explain_attention_scores_constant(run, optimizer: str) -> None:
    """q·k over the infinite d_head: exponent 1 (1/d_head, not 1/√d_head), by the LLN."""
    code, out, err = run("explain", GPT, "block.0.scores", "--optimizer", optimizer)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[1] == "  result: α = 1: multiplier 1/d_head"
    assert "  multiplier exponent of contract block.0.scores = 1" in lines
    assert "LLN, TP5 Def. 4.1 fn. 8" in out and "sum over 1 infinite dim(s) is n^1" in out
    assert "size block.0.q (linear): s0 = 0 at init, sd = 0 for its change" in out


def test_explain_constant_over_finite_dim_is_one(run) -> None:
    """With n_head infinite and d_head finite (TP5 J.2.1), q·k sums over a finite dim: α = 0."""
    code, out, err = run("explain", HEADS, "block.1.scores")
    assert (code, err) == (0, "")
    assert "  result: α = 0: multiplier 1" in out


def test_explain_unknown_name_lists_constants(run) -> None:
    code, out, err = run("explain", GPT, "block.0.nope")
    assert code == 2 and out == ""
    assert "unknown parameter or constant 'block.0.nope'" in err and "block.0.scores" in err
