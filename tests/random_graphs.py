"""Random valid graphs for the property tests (tests/test_random_graphs.py).

:func:`random_spec` writes a graph as plain data (dims, then items: nodes and at most one
repeated block) from a ``Draw``, so the same generator serves hypothesis (which shrinks
it) and a seeded ``random.Random`` (for the cross-process determinism check). It covers
finite and infinite dims (and a multiple), linear (with and without bias, over one or
several dims), embedding, elementwise ops with reordered dims, add, multiply, norms with
any of gain/bias, scale, a causal-or-not attention head (contract/softmax), repeats of
0-2 iterations, tied weights (a readout tied to its embedding, a linear reused), and dead
ends (activations nothing reads, parameters that reach no output).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph

ELEMENTWISE = ("relu", "gelu", "tanh", "silu", "identity", "sigmoid")


class Draw(Protocol):
    def int(self, lo: int, hi: int) -> int: ...


class SeededDraw:
    """A ``Draw`` from ``random.Random(seed)``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


def _choice(draw: Draw, seq: Sequence[Any]) -> Any:
    return seq[draw.int(0, len(seq) - 1)]


def _perm(draw: Draw, dims: list[str]) -> list[str]:
    """Either the dims as they are or a random reordering of them."""
    if draw.int(0, 2):
        return list(dims)
    rest, out = list(dims), []
    while rest:
        out.append(rest.pop(draw.int(0, len(rest) - 1)))
    return out


class _Spec:
    def __init__(self, draw: Draw) -> None:
        self.draw = draw
        self.acts: dict[str, list[str]] = {}  # activation -> dims
        self.nodes: list[dict] = []
        self.params = 0
        self.weights: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}
        self.infinite: list[str] = []
        self.finite: list[str] = []
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def param(self, prefix: str) -> str:
        self.params += 1
        return f"{prefix}{self.params}"

    def add(self, node: dict, dims: list[str]) -> str:
        self.nodes.append(node)
        self.acts[node["name"]] = dims
        return node["name"]


def random_spec(draw: Draw) -> dict:
    """A valid graph as data: ``{"name", "dims": {name: kwargs}, "items": [...]}``, each
    item a node dict or ``{"repeat": kwargs, "nodes": [...]}``."""
    s = _Spec(draw)
    dims: dict[str, dict] = {"t": {"size": 3}, "t_k": {"size": 3}, "v": {"size": 5},
                             "f": {"size": 2}, "o": {"size": 2}}
    s.finite = ["f", "o"]
    dims["n"] = {"base": _choice(draw, (4, 6, 8))}
    s.infinite = ["n"]
    if draw.int(0, 1):
        dims["h"] = {"base": _choice(draw, (2, 4))}
        s.infinite.append("h")
    if draw.int(0, 1):
        dims["m"] = {"of": "n", "times": 2}
        s.infinite.append("m")
    x = s.add({"name": "x", "op": "input", "dims": ["t", "f"]}, ["t", "f"])
    emb = None
    if draw.int(0, 1):
        s.add({"name": "ids", "op": "input", "dims": ["t"]}, ["t"])
        emb = s.add({"name": "emb", "op": "embedding", "inputs": ["ids"], "vocab": "v",
                     "dims": _perm(draw, ["t", "n"]), "weight": "E"}, [])
        s.acts[emb] = s.nodes[-1]["dims"]
        s.weights[(("v",), ("n",))] = "E"
    first = _linear(s, x, [_choice(draw, s.infinite)])
    items: list[dict] = []
    current = first if emb is None or draw.int(0, 1) else emb
    for _ in range(draw.int(1, 6)):
        current = _step(s, current)
    items.extend(s.nodes)
    s.nodes = []
    if draw.int(0, 1):
        items.append(_block(s, current))
        current = "blk"
    for _ in range(draw.int(0, 2)):
        current = _step(s, current)
    # readout: every infinite dim of the last activation is contracted
    dims_now = s.acts[current]
    inf = [d for d in dims_now if d in s.infinite] or dims_now[-1:]
    out_dims = [d for d in dims_now if d not in inf]
    tied = emb is not None and inf == ["n"] and draw.int(0, 1)
    readout = {"name": "readout", "op": "linear", "inputs": [current], "in_dims": inf,
               "dims": [*out_dims, "v" if tied else "o"],
               "weight": "E" if tied else s.param("W")}
    if draw.int(0, 1):
        readout["bias"] = s.param("b")
    s.add(readout, readout["dims"])
    s.add({"name": "y", "op": "output", "inputs": ["readout"]}, readout["dims"])
    items.extend(s.nodes)
    return {"name": "rand", "dims": dims, "items": items}


def _linear(s: _Spec, src: str, out: list[str], **extra: Any) -> str:
    """A linear from ``src`` contracting its last dim (or all its infinite dims) into
    ``out``; the weight is new or, when one of the same layout exists, sometimes tied."""
    draw = s.draw
    have = s.acts[src]
    inf = [d for d in have if d in s.infinite]
    in_dims = inf if inf and len(inf) > 1 and draw.int(0, 1) else [have[-1]]
    batch = [d for d in have if d not in in_dims]
    out = [d for d in out if d not in batch] or [
        d for d in (*s.infinite, *s.finite) if d not in batch][:1]
    key = (tuple(out), tuple(in_dims))
    weight = s.weights.get(key) if draw.int(0, 2) == 0 else None
    if weight is None:
        weight = s.param("W")
        s.weights.setdefault(key, weight)
    node = {"name": s.name("lin"), "op": "linear", "inputs": [src], "in_dims": in_dims,
            "dims": _perm(draw, [*batch, *out]), "weight": weight, **extra}
    if draw.int(0, 1):
        node["bias"] = s.param("b")
    return s.add(node, node["dims"])


def _step(s: _Spec, cur: str) -> str:
    """One more op on ``cur`` (or on an earlier activation, leaving ``cur`` a dead end)."""
    draw = s.draw
    if draw.int(0, 5) == 0:  # a dead end: something reads cur, nothing reads it
        _linear(s, cur, [_choice(draw, s.infinite)])
    dims = s.acts[cur]
    kind = draw.int(0, 7)
    if kind == 0:
        return _linear(s, cur, [_choice(draw, (*s.infinite, "f"))])
    if kind == 1:
        op = _choice(draw, ELEMENTWISE)
        node = {"name": s.name(op[:3]), "op": op, "inputs": [cur], "dims": _perm(draw, dims)}
        return s.add(node, node["dims"])
    if kind in (2, 3):
        other = _linear(s, cur, [d for d in dims if d in s.infinite] or ["n"])
        same = [a for a, d in s.acts.items() if sorted(d) == sorted(s.acts[other])
                and a != other]
        partner = _choice(draw, same) if same else other
        op = "add" if kind == 2 else "multiply"
        node = {"name": s.name(op[:3]), "op": op, "inputs": [partner, other],
                "dims": _perm(draw, s.acts[partner])}
        return s.add(node, node["dims"])
    if kind == 4:
        op = _choice(draw, ("layernorm", "rmsnorm"))
        node = {"name": s.name(op[:2]), "op": op, "inputs": [cur],
                "over": [_choice(draw, dims)]}
        if draw.int(0, 1):
            node["gain"] = s.param("g")
        if draw.int(0, 1):
            node["bias"] = s.param("b")
        return s.add(node, dims)
    if kind == 5:
        node = {"name": s.name("sc"), "op": "scale", "inputs": [cur]}
        if draw.int(0, 1):
            node["value"] = 0.5
        return s.add(node, dims)
    if kind == 6 and dims and "t" in dims and "n" in dims and len(dims) == 2:
        return _attention(s, cur)
    return _linear(s, cur, ["n"])


def _attention(s: _Spec, cur: str) -> str:
    """One head: q, k, v map [t, n] to [t, head]; scores contract the head dim (their
    constant is over an infinite dim: the attention scale); a softmax over key positions,
    causal or not, weighs v."""
    draw = s.draw
    head = "h" if "h" in s.infinite else "n"
    qkv = []
    for _ in range(3):
        node = {"name": s.name("lin"), "op": "linear", "inputs": [cur], "in_dims": ["n"],
                "dims": ["t", head], "weight": s.param("W")}
        qkv.append(s.add(node, ["t", head]))
    q, k, v = qkv
    scores = s.add({"name": s.name("scores"), "op": "contract", "inputs": [q, k],
                    "rename": {"t": "t_k"}, "over": [head], "dims": ["t", "t_k"]},
                   ["t", "t_k"])
    soft = {"name": s.name("probs"), "op": "softmax", "inputs": [scores], "over": ["t_k"]}
    if draw.int(0, 1):
        soft["causal"] = ["t", "t_k"]
    probs = s.add(soft, ["t", "t_k"])
    return s.add({"name": s.name("att"), "op": "contract", "inputs": [probs, v],
                  "rename": {"t": "t_k"}, "over": ["t_k"], "dims": ["t", head]},
                 ["t", head])


def _block(s: _Spec, cur: str) -> dict:
    """A residual block repeated 0-2 times: carry -> linear (its last dim to itself) ->
    elementwise -> add the carry."""
    draw = s.draw
    dims = s.acts[cur]
    d = dims[-1]
    nodes = [
        {"name": "lin", "op": "linear", "inputs": ["c"], "in_dims": [d], "dims": list(dims),
         "weight": "W"},
        {"name": "act", "op": _choice(draw, ELEMENTWISE), "inputs": ["lin"]},
        {"name": "res", "op": "add", "inputs": ["c", "act"], "dims": _perm(draw, dims)},
    ]
    if draw.int(0, 1):
        nodes[0]["bias"] = "b"
    s.acts["blk"] = nodes[-1]["dims"]
    return {"repeat": {"name": "blk", "count": draw.int(0, 2), "input": cur, "carry": "c",
                       "output": "res"}, "nodes": nodes}


def build(spec: dict, reverse: bool = False) -> Graph:
    """The graph of ``spec``, its dims and nodes declared in order or reversed."""
    return builder(spec, reverse).build()


def builder(spec: dict, reverse: bool = False) -> GraphBuilder:
    """The builder of ``spec`` (:func:`build` builds it)."""
    b = GraphBuilder(spec["name"])
    dims = list(spec["dims"].items())
    for name, kw in reversed(dims) if reverse else dims:
        b.dim(name, **kw)
    items = spec["items"][::-1] if reverse else spec["items"]
    for item in items:
        if "repeat" in item:
            block = b.repeat(**item["repeat"])
            for node in item["nodes"][::-1] if reverse else item["nodes"]:
                block.node(**_kw(node))
        else:
            b.node(**_kw(item))
    return b


def _kw(node: dict) -> dict:
    return dict(node)
