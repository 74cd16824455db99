"""A node checked once for all its copies (GraphBuilder.build with ``reuse``): the Graph is
the one that checking every node gives, node for node, and so are the errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abccalc.errors import AbcError
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph, topological_order
from abccalc.graph.spec import load_builder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_graphs import builder, random_spec
from test_memo import _Draw

ROOT = Path(__file__).resolve().parent.parent


def _same(a: Graph, b: Graph) -> None:
    """Equal graphs, node by node and parameter by parameter, in the same order; and the
    order and node map the build primed are the ones a Graph computes itself."""
    assert a.nodes == b.nodes
    assert list(a.params.items()) == list(b.params.items())
    assert a == b and a.repeats == b.repeats
    for g in (a, b):
        fresh = Graph(g.name, g.dims, g.nodes, g.params, g.values, g.source, g.repeats)
        assert list(g.node.items()) == list(fresh.node.items())
        assert g.order == fresh.order == tuple(
            g.node[n] for n in topological_order({n.name: n.inputs for n in g.nodes}))


@pytest.mark.parametrize("n_layer", range(1, 9))
@pytest.mark.parametrize("spec", ["gpt.yaml", "archs/llama.yaml", "archs/vit.yaml"])
def test_examples_same_with_and_without_reuse(spec: str, n_layer: int) -> None:
    """gpt with 1..8 layers (and two archs whose count is also n_layer)."""
    b = load_builder(ROOT / "examples" / spec, {"n_layer": str(n_layer)})
    _same(b.build(), b.build(reuse=False))


def test_copies_are_renamed_checks() -> None:
    """Layer 7's q of a gpt is layer 0's checked q with layer 7's names (its in_dims, which
    the check fills in, included)."""
    g = load_builder(ROOT / "examples/gpt.yaml", {"n_layer": "8"}).build()
    q0, q7 = g.node["block.0.q"], g.node["block.7.q"]
    assert (q7.inputs, q7.weight, q7.bias) == (("block.7.ln1",), "block.7.W_q", "block.7.b_q")
    assert q7.in_dims == q0.in_dims == ("d_model",)  # filled in by the check
    # W_q maps d_model to the (n_head, d_head) of each position; ctx is not one of its dims
    (use,) = g.params["block.7.W_q"].uses
    assert (use.node, use.fan_in, use.fan_out) == ("block.7.q", ("d_model",),
                                                  ("n_head", "d_head"))


def _mismatch(output: str) -> GraphBuilder:
    """A block adding its carry to the fixed input x. With output ``s`` each iteration
    reads x's dims (iteration 0 adds x to itself: its inputs coincide, the others' do
    not); with output ``w`` iteration 1 reads the block's width, which its add refuses (a
    check a copy must not skip)."""
    b = GraphBuilder("mismatch")
    b.dim("d_in", size=3).dim("width", base=8)
    b.node("x", "input", dims=["d_in"])
    blk = b.repeat("blk", 3, input="x", carry="c", output=output)
    blk.node("s", "add", inputs=["c", "x"])
    blk.node("w", "linear", inputs=["s"], dims=["width"], weight="V")
    b.node("f", "linear", inputs=["blk"], dims=["d_in"], weight="W")
    b.node("y", "output", inputs=["f"])
    return b


def test_errors_same_with_and_without_reuse() -> None:
    b = _mismatch("s")
    _same(b.build(), b.build(reuse=False))
    b = _mismatch("w")
    with pytest.raises(AbcError) as full:
        b.build(reuse=False)
    with pytest.raises(AbcError) as reused:
        b.build()
    assert str(reused.value) == str(full.value)
    assert "node 'blk.1.s': inputs have different dims" in str(full.value)


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
    _same(builder(spec).build(), builder(spec).build(reuse=False))
