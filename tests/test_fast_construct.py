"""Objects made without ``__init__`` on hot paths equal the ones ``__init__`` makes:
parametrize's ParamRules (field by field, types included, and by repr) and a build's
parameter uses and a spec's nodes."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.graph.builder import Block
from abccalc.graph.core import Kind, Node, Param, Use, new_use
from abccalc.graph.spec import load_builder, load_graph
from abccalc.parametrization.gauges import VARIANTS, Conflict, ParamRule, parametrize

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("examples/archs/*.yaml")])


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_param_rules_equal_those_init_makes(path: Path, opt: str) -> None:
    analysis = solve(load_graph(path), opt)
    for variant in VARIANTS:
        try:
            p = parametrize(analysis, variant)
        except Conflict:
            continue
        for r in p.params.values():
            values = [getattr(r, f.name) for f in fields(ParamRule)]
            made = ParamRule(*values)
            assert r == made and repr(r) == repr(made)
            assert list(r.__dict__) == list(made.__dict__)
            assert [type(v) for v in values] == [type(getattr(made, f.name))
                                                 for f in fields(ParamRule)]


def test_new_use_equals_the_use_init_makes() -> None:
    args = ("block.3.q", "block.3.W_q", Kind.WEIGHT, ("d_model",), ("d_head", "n_head"))
    made, fast = Use(*args), new_use(*args)
    assert fast == made and hash(fast) == hash(made) and repr(fast) == repr(made)
    assert list(fast.__dict__) == list(made.__dict__)
    with pytest.raises(FrozenInstanceError):
        fast.node = "x"  # type: ignore[misc]


def test_built_uses_and_params_equal_those_init_makes() -> None:
    graph = load_graph(ROOT / "examples/gpt.yaml", {"n_layer": "4"})
    for param in graph.params.values():
        again = Param(param.name, param.shape, param.uses)
        assert param == again and hash(param) == hash(again) and repr(param) == repr(again)
        assert list(param.__dict__) == list(again.__dict__)
        for u in param.uses:
            again = Use(u.node, u.param, u.kind, u.fan_in, u.fan_out)
            assert u == again and list(u.__dict__) == list(again.__dict__)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_spec_nodes_equal_those_init_makes(path: Path) -> None:
    builder = load_builder(path)
    nodes = [n for item in builder._items
             for n in (item.nodes if isinstance(item, Block) else [item])]
    assert nodes
    for n in nodes:
        made = Node(**{f.name: getattr(n, f.name) for f in fields(Node)})
        assert n == made and repr(n) == repr(made) and list(n.__dict__) == list(made.__dict__)


def test_a_node_field_node_lacks_is_still_a_type_error() -> None:
    with pytest.raises(TypeError, match="nope"):
        Block("b", 2, input="x", carry="x", output="y").node("y", "relu", nope=1)
