"""The op units (issue 13): the registry, and that nothing outside graph/ops names an op."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from abccalc.calculus.solver import solve
from abccalc.exponents import HALF, ONE, ZERO
from abccalc.graph.core import Node
from abccalc.graph.ops import OPS
from abccalc.graph.spec import load_graph

ROOT = Path(__file__).resolve().parent.parent
NODE_FIELDS = {f.name for f in fields(Node)}


def test_registry_keys_are_unit_names_and_fields_are_node_fields():
    for name, unit in OPS.items():
        assert unit.name == name
        assert unit.fields <= NODE_FIELDS - {"name", "op", "inputs", "dims"}, name


def test_no_op_name_tested_outside_the_units():
    """The solver, propagation, presets, classify, check and codegen ask the unit."""
    pattern = re.compile(r"""\bop (==|!=) ["'][a-z]|\bop (not )?in \(["'][a-z]""")
    for path in (ROOT / "abccalc").rglob("*.py"):
        if "graph/ops" in path.as_posix():
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "OPS" not in line:
                assert not pattern.search(line), f"{path}:{i}: {line.strip()}"


def test_constants_and_their_sp_baseline():
    """GPT's attention: scores = qᵀk over d_head (infinite) gets SP's 1/√d (α = ½) and
    μP's 1/d (α = 1: q and k are Θ(1) and correlated once trained, LLN over d_head,
    TP5 Def. 4.1); att = probs·v over the finite ctx_k gets α = 0 in both."""
    graph = load_graph(ROOT / "examples" / "gpt.yaml")
    analysis = solve(graph, "adam")
    constants = [n for n in graph.order if OPS[n.op].constant]
    scores = [n for n in constants if n.name.endswith(".scores")]
    att = [n for n in constants if n.name.endswith(".att")]
    assert scores and att and len(scores) + len(att) == len(constants)
    for n in scores:
        assert (OPS[n.op].sp_constant(graph, n), analysis.alpha[n.name]) == (HALF, ONE)
    for n in att:
        assert (OPS[n.op].sp_constant(graph, n), analysis.alpha[n.name]) == (ZERO, ZERO)
