"""A repeated block solved once (abccalc.calculus.repeats): the solver's results with the
copy on and off are identical, exponents, sizes and derivation text alike."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abccalc.calculus.repeats import twins
from abccalc.calculus.sizes import Sizes
from abccalc.calculus.solver import Analysis, solve
from abccalc.emit.explain import explain
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph
from abccalc.graph.spec import load_graph
from abccalc.parametrization.gauges import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_graphs import build, random_spec

ROOT = Path(__file__).resolve().parent.parent


def _same(a: Analysis, b: Analysis) -> None:
    assert a.invariants == b.invariants
    assert a.alpha == b.alpha
    assert list(a.trace.items()) == list(b.trace.items())  # same steps, names, order
    for s in ("s0", "sd", "g"):
        assert getattr(a.sizes, s) == getattr(b.sizes, s)
    assert a.dead_ends == b.dead_ends


@pytest.mark.parametrize("n_layer", range(1, 9))
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_gpt_same_with_and_without_reuse(n_layer: int, opt: str) -> None:
    graph = load_graph(ROOT / "examples/gpt.yaml", {"n_layer": str(n_layer)})
    _same(solve(graph, opt), solve(graph, opt, reuse=False))


@pytest.mark.parametrize("arch", ["llama", "vit", "mixer", "gpt_tied", "attention_heads"])
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_archs_same_with_and_without_reuse(arch: str, opt: str) -> None:
    graph = load_graph(ROOT / f"examples/archs/{arch}.yaml", {})
    _same(solve(graph, opt), solve(graph, opt, reuse=False))


def test_gpt_blocks_are_twins_and_explain_names_each_layer() -> None:
    """Every node of layers 1..5 has its twin one layer down; the copied derivation of
    layer 5 names layer 5's nodes."""
    graph = load_graph(ROOT / "examples/gpt.yaml", {"n_layer": "6"})
    tw = twins(graph, Sizes(graph, Optimizer.ADAM))
    assert graph.repeats == (("block", 6),)
    assert tw["block.5.q"] == "block.4.q" and "block.0.q" not in tw
    assert len(tw) == 5 * 14
    step = solve(graph, "adam").trace["init block.5.W_q@block.5.q"]
    assert step.what == "a + b of block.5.W_q at node block.5.q"
    assert step.deps == ("size block.5.ln1",)
    text = explain(parametrize(solve(graph, "adam"), "table8"), "block.5.W_q")
    assert "st(block.5.ln1)" in text
    assert text == explain(parametrize(solve(graph, "adam", reuse=False), "table8"),
                           "block.5.W_q")


def _widening() -> Graph:
    """A block whose carry widens: iteration 0 reads the finite d_in, iteration 1 the
    infinite width, so the linear's fan_in differs and iteration 1 has no twin there."""
    b = GraphBuilder("widen")
    b.dim("d_in", size=3).dim("width", base=8).dim("d_out", size=1)
    b.node("x", "input", dims=["d_in"])
    blk = b.repeat("blk", 3, input="x", carry="c", output="h")
    blk.node("h", "linear", inputs=["c"], dims=["width"], weight="W")
    b.node("f", "linear", inputs=["blk"], dims=["d_out"], weight="V")
    b.node("y", "output", inputs=["f"])
    return b.build()


def test_structure_change_is_not_a_twin() -> None:
    graph = _widening()
    tw = twins(graph, Sizes(graph, Optimizer.SGD))
    assert tw == {"blk.2.h": "blk.1.h"}
    for opt in ("adam", "sgd"):
        a = solve(graph, opt)
        _same(a, solve(graph, opt, reuse=False))
        # hand-derived: blk.0 reads the finite d_in (input-like, a+b = 0), blk.1 and
        # blk.2 the infinite width (hidden, a+b = 1/2)
        assert [a.invariants[(f"blk.{i}.h", f"blk.{i}.W")].init for i in range(3)] == \
            [0, 0.5, 0.5]


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_graphs_same_with_and_without_reuse(data: st.DataObject) -> None:
    """The random graphs of tests/random_graphs.py with their block repeated 1-5 times."""
    spec = random_spec(_Draw(data))
    count = data.draw(st.integers(1, 5))
    for item in spec["items"]:
        if "repeat" in item:
            item["repeat"]["count"] = count
    graph = build(spec)
    for opt in ("adam", "sgd"):
        try:
            a = solve(graph, opt)
        except AbcError as e:
            with pytest.raises(AbcError, match=str(e).split(":")[0]):
                solve(graph, opt, reuse=False)
            continue
        _same(a, solve(graph, opt, reuse=False))


class _Draw:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))
