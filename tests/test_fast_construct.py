"""Objects made without ``__init__`` on hot paths equal the ones ``__init__`` makes:
parametrize's ParamRules (field by field, types included, and by repr)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.graph.spec import load_graph
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
