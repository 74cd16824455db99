"""Properties of the solver on random small graphs (hypothesis, derandomized).

A graph: one finite input x → a random DAG of linear layers between a few dims (finite and
infinite), elementwise ops, adds and multiplies of same-dims nodes, layernorms → every leaf
read out by a linear into the finite d_out → summed → output. Every node reaches the output,
so every gradient is defined.
"""

from __future__ import annotations

import copy

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from abccalc import parametrize, solve
from abccalc.graph.spec import from_dict, to_dict
from abccalc.parametrization.gauges import VARIANTS

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)

DIMS = {
    "d_in": 3,
    "d_out": 2,
    "fa": 4,
    "fb": 5,
    "w": {"base": 8},
    "w2": {"times": 2, "of": "w"},
}
INFINITE = ("w", "w2")
ELEMENTWISE = ("relu", "tanh", "gelu", "identity", "sigmoid", "silu")


@st.composite
def specs(draw) -> dict:
    nodes: list[dict] = [{"name": "x", "op": "input", "dims": ["d_in"]}]
    dims_of = {"x": "d_in"}  # every activation here has a single dim
    consumed: set[str] = set()
    counter = iter(range(1000))

    def fresh(prefix: str) -> str:
        return f"{prefix}{next(counter)}"

    def add(node: dict, dim: str) -> None:
        nodes.append(node)
        dims_of[node["name"]] = dim
        consumed.update(node.get("inputs", []))

    # the first layer always reads x, into one of the infinite dims (an input weight)
    dim = draw(st.sampled_from(INFINITE))
    node = {"name": fresh("n"), "op": "linear", "inputs": ["x"], "dims": [dim],
            "weight": fresh("W")}
    if draw(st.booleans()):
        node["bias"] = fresh("b")
    add(node, dim)
    n_steps = draw(st.integers(1, 7))
    for _ in range(n_steps):
        pool = [n for n in dims_of if n != "x"]
        kind = draw(st.sampled_from(("linear", "linear", "elementwise", "add", "multiply",
                                     "layernorm")))
        src = draw(st.sampled_from(pool))
        name = fresh("n")
        if kind in ("add", "multiply"):
            partners = [n for n in pool if n != src and dims_of[n] == dims_of[src]]
            if partners:
                other = draw(st.sampled_from(partners))
                add({"name": name, "op": kind, "inputs": [src, other]}, dims_of[src])
                continue
            kind = "elementwise"
        if kind == "layernorm" and dims_of[src] in INFINITE:
            node = {"name": name, "op": "layernorm", "inputs": [src], "over": [dims_of[src]]}
            if draw(st.booleans()):
                node["gain"] = fresh("g")
            if draw(st.booleans()):
                node["bias"] = fresh("b")
            add(node, dims_of[src])
        elif kind == "linear":
            out = draw(st.sampled_from(("fa", "fb", "d_out", *INFINITE)))
            node = {"name": name, "op": "linear", "inputs": [src], "dims": [out],
                    "weight": fresh("W")}
            if draw(st.booleans()):
                node["bias"] = fresh("b")
            add(node, out)
        else:
            add({"name": name, "op": draw(st.sampled_from(ELEMENTWISE)), "inputs": [src]},
                dims_of[src])
    leaves = [n for n in dims_of if n not in consumed]
    reads = []
    for leaf in leaves:
        r = fresh("r")
        add({"name": r, "op": "linear", "inputs": [leaf], "dims": ["d_out"],
             "weight": fresh("W")}, "d_out")
        reads.append(r)
    if len(reads) > 1:
        add({"name": "f", "op": "add", "inputs": reads}, "d_out")
        reads = ["f"]
    nodes.append({"name": "out", "op": "output", "inputs": reads})
    return {"graph": "random", "dims": copy.deepcopy(DIMS), "values": {}, "nodes": nodes}


def build(spec: dict):
    return from_dict(copy.deepcopy(spec)).build()


def solution(g, opt: str):
    an = solve(g, opt)
    return an.invariants, an.alpha


def exponents(g, opt: str) -> dict:
    """(a, b, c) per parameter in every variant."""
    an = solve(g, opt)
    return {v: {n: (r.a_by_use, r.b, r.c) for n, r in parametrize(an, v).params.items()}
            for v in VARIANTS}


def test_strategy_makes_interesting_graphs() -> None:
    """The strategy reaches the roles and ops the properties are about."""
    seen_ops: set[str] = set()
    seen_roles: set[str] = set()

    @SETTINGS
    @given(specs())
    def collect(spec):
        g = build(spec)
        seen_ops.update(n.op for n in g.nodes)
        an = solve(g, "adam")
        seen_roles.update(i.role.value for i in an.invariants.values())

    collect()
    assert {"linear", "add", "multiply", "layernorm", "output"} <= seen_ops
    assert seen_roles == {"input", "hidden", "output", "scalar"}


@SETTINGS
@given(spec=specs(), data=st.data())
def test_solution_independent_of_declaration_order(spec: dict, data) -> None:
    g = build(spec)
    shuffled = dict(spec, nodes=data.draw(st.permutations(spec["nodes"])))
    g2 = build(shuffled)
    assert set(g2.params) == set(g.params)
    for opt in ("sgd", "adam"):
        assert solution(g2, opt) == solution(g, opt)
        assert exponents(g2, opt) == exponents(g, opt)


@SETTINGS
@given(spec=specs(), data=st.data())
def test_inserting_elementwise_changes_no_exponent(spec: dict, data) -> None:
    g = build(spec)
    # an edge (producer → consumer); the identity/tanh goes on that edge only
    edges = [(i, n["name"]) for n in spec["nodes"] for i in n.get("inputs", [])]
    src, dst = data.draw(st.sampled_from(edges))
    op = data.draw(st.sampled_from(("identity", "tanh", "relu")))
    nodes = copy.deepcopy(spec["nodes"])
    for n in nodes:
        if n["name"] == dst:
            n["inputs"] = ["inserted" if i == src else i for i in n["inputs"]]
    nodes.append({"name": "inserted", "op": op, "inputs": [src]})
    g2 = build(dict(spec, nodes=nodes))
    for opt in ("sgd", "adam"):
        inv, alpha = solution(g, opt)
        inv2, alpha2 = solution(g2, opt)
        assert alpha2 == alpha
        assert {k: (v.init, v.lr, v.role) for k, v in inv2.items()} == \
            {k: (v.init, v.lr, v.role) for k, v in inv.items()}
        assert exponents(g2, opt) == exponents(g, opt)


@SETTINGS
@given(spec=specs())
def test_spec_round_trip(spec: dict) -> None:
    g = build(spec)
    d = to_dict(g)
    assert from_dict(copy.deepcopy(d)).build() == g
    assert to_dict(from_dict(copy.deepcopy(d)).build()) == d
    assert to_dict(build(spec)) == d


@SETTINGS
@given(spec=specs())
def test_variants_share_invariants(spec: dict) -> None:
    g = build(spec)
    for opt, k in (("sgd", 2), ("adam", 1)):
        an = solve(g, opt)
        per_variant = {}
        for variant in VARIANTS:
            p = parametrize(an, variant)  # no tied parameters: every gauge solves
            inv = {}
            for name, r in p.params.items():
                assert isinstance(r.b, sympy.Rational) and isinstance(r.c, sympy.Rational)
                for use_key, a in r.a_by_use.items():
                    assert isinstance(a, sympy.Rational)
                    inv[use_key] = (a + r.b, k * a + r.c)
                    assert inv[use_key] == (an.invariants[use_key].init,
                                            an.invariants[use_key].lr), (variant, name)
            if variant == "table3":
                assert all(a == 0 for r in p.params.values() for a in r.a_by_use.values())
            if variant == "unit":
                assert all(r.b == 0 for r in p.params.values())
            per_variant[variant] = inv
        first = per_variant["table3"]
        assert all(v == first for v in per_variant.values())
