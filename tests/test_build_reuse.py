"""A node checked once for all its copies (GraphBuilder.build with ``reuse``): the Graph is
the one that checking every node gives, node for node, and so are the errors; the classes
of nodes the checks find (Graph.classes) split no class that the Graph finds itself, and
solving with either gives the same results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from abccalc.errors import AbcError
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph, topological_order
from abccalc.graph.spec import load_builder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_graphs import SeededDraw, builder, random_spec
from test_memo import _same as _same_analysis

from abccalc.calculus.solver import solve

ROOT = Path(__file__).resolve().parent.parent


def _same(a: Graph, b: Graph) -> None:
    """Equal graphs, node by node and parameter by parameter, in the same order; and the
    order and node map the build primed are the ones a Graph computes itself."""
    assert a.nodes == b.nodes
    assert list(a.params.items()) == list(b.params.items())
    assert a == b and a.repeats == b.repeats
    for g in (a, b):
        fresh = _fresh(g)
        assert list(g.node.items()) == list(fresh.node.items())
        assert g.order == fresh.order == tuple(
            g.node[n] for n in topological_order({n.name: n.inputs for n in g.nodes}))
        found: dict[int, set[int]] = {}  # a class the checks found -> the Graph's own
        for name, c in g.classes.items():
            found.setdefault(c, set()).add(fresh.classes[name])
        assert all(len(v) == 1 for v in found.values())


def _fresh(g: Graph) -> Graph:
    """The same graph with nothing the build filled in (order, classes: computed anew)."""
    return Graph(g.name, g.dims, g.nodes, g.params, g.values, g.source, g.repeats)


def _solved_alike(g: Graph) -> None:
    """Solving with the build's classes and with the Graph's own gives the same results."""
    for opt in ("adam", "sgd"):
        try:
            a = solve(g, opt)
        except AbcError as e:
            with pytest.raises(AbcError, match=str(e).split(":")[0]):
                solve(_fresh(g), opt)
            continue
        _same_analysis(a, solve(_fresh(g), opt))


@pytest.mark.parametrize("n_layer", range(1, 9))
@pytest.mark.parametrize("spec", ["gpt.yaml", "archs/llama.yaml", "archs/vit.yaml"])
def test_examples_same_with_and_without_reuse(spec: str, n_layer: int) -> None:
    """gpt with 1..8 layers (and two archs whose count is also n_layer)."""
    b = load_builder(ROOT / "examples" / spec, {"n_layer": str(n_layer)})
    _same(b.build(), b.build(reuse=False))
    if n_layer in (1, 2, 5):
        _solved_alike(b.build())


def test_gpt_classes() -> None:
    """A gpt block's nodes differ from the same nodes of every other layer only by names
    (layer 0's ln1 and r1 read emb, later layers' the previous r2: an add of the same
    dims). Within a layer, q, k and v (linears of ln1 to (ctx, n_head, d_head)), ln1 and
    ln2 (layernorms of (ctx, d_model) with gain and bias) and r1 and r2 (adds of two
    distinct (ctx, d_model) inputs) differ only by names too, and o and proj do not
    (their inputs' dims differ): 14 nodes in 10 classes."""
    g = load_builder(ROOT / "examples/gpt.yaml", {"n_layer": "4"}).build()
    local = [n.name[len("block.0."):] for n in g.nodes if n.name.startswith("block.0.")]
    assert len(local) == 14
    for x in local:
        assert len({g.classes[f"block.{i}.{x}"] for i in range(4)}) == 1, x
    c = {x: g.classes[f"block.2.{x}"] for x in local}
    assert c["q"] == c["k"] == c["v"] and c["ln1"] == c["ln2"] and c["r1"] == c["r2"]
    assert c["o"] != c["proj"]
    assert len(set(c.values())) == 10
    fresh = _fresh(g).classes  # the Graph's own classes: the same partition here
    f = {x: fresh[f"block.2.{x}"] for x in local}
    assert {(x, y) for x in local for y in local if c[x] == c[y]} == \
        {(x, y) for x in local for y in local if f[x] == f[y]}


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


@pytest.mark.parametrize("seed", range(60))
def test_random_graphs_same_with_and_without_reuse(seed: int) -> None:
    """The random graphs of tests/random_graphs.py (seeded), their block repeated 1-5
    times."""
    draw = SeededDraw(seed)
    spec, count = random_spec(draw), draw.int(1, 5)
    for block in (item["repeat"] for item in spec["items"] if "repeat" in item):
        block["count"] = count
    _same(builder(spec).build(), builder(spec).build(reuse=False))
    _solved_alike(builder(spec).build())
