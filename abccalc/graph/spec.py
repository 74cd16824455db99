"""The YAML graph spec: read it into a :class:`GraphBuilder`, write a Graph back out.

The format is documented in ``docs/spec.md``. Reading validates everything and raises
:class:`AbcError` with the file name and the offending key; nothing is half-read.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from abccalc.errors import AbcError
from abccalc.graph.builder import LIST_FIELDS, NODE_FIELDS, GraphBuilder
from abccalc.graph.core import Graph, Node
from abccalc.graph.names import shown, to_name
from abccalc.graph.yamlio import parse_yaml, read_yaml

# spec key -> Node field, where they differ
_KEY_TO_FIELD = {"in": "in_dims"}
_FIELD_TO_KEY = {v: k for k, v in _KEY_TO_FIELD.items()}
_LIST_FIELDS = LIST_FIELDS
_BLOCK_KEYS = {"repeat", "name", "input", "carry", "output", "nodes"}


def read_builder(path: str | Path) -> GraphBuilder:
    """Parse a YAML spec file into a builder (call ``.build()`` for the Graph)."""
    return from_dict(read_yaml(path), str(path))


def load_builder(path: str | Path, overrides: dict[str, str] | None = None) -> GraphBuilder:
    """Read a spec and apply ``--set`` overrides; ``.build()`` gives the Graph."""
    builder = read_builder(path)
    for name, value in (overrides or {}).items():
        builder.set(name, value)
    return builder


def load_graph(path: str | Path, overrides: dict[str, str] | None = None) -> Graph:
    """Read, apply ``--set`` overrides, and build."""
    return load_builder(path, overrides).build()


def parse_builder(text: str, source: str = "<spec>") -> GraphBuilder:
    return from_dict(parse_yaml(text, source), source)


def _bad(source: str, what: str, msg: str) -> AbcError:
    return AbcError(f"{source}: {what}: {msg}")


def _node_kwargs(entry: Any, source: str, where: str) -> tuple[str, str, dict]:
    if not isinstance(entry, dict):
        raise _bad(source, where, "a node must be a mapping with 'name' and 'op'")
    for key in ("name", "op"):
        if not isinstance(entry.get(key), str):
            raise _bad(source, where, f"a node needs a string '{key}'")
    kw: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("name", "op"):
            continue
        fld = _KEY_TO_FIELD.get(key, key)
        if fld not in NODE_FIELDS:
            raise _bad(source, f"node '{entry['name']}'", f"unknown key '{key}'")
        if fld in _LIST_FIELDS:
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _bad(source, f"node '{entry['name']}'", f"'{key}' must be a name or a "
                           "list of names")
        elif fld == "rename":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise _bad(source, f"node '{entry['name']}'", "'rename' must map dim names "
                           "to dim names")
            value = tuple(value.items())
        elif fld == "value":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(source, f"node '{entry['name']}'", "'value' must be a number")
        elif fld == "index":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(source, f"node '{entry['name']}'", "'index' must be an integer")
        elif not isinstance(value, str):
            raise _bad(source, f"node '{entry['name']}'", f"'{key}' must be a name")
        kw[fld] = value
    return entry["name"], entry["op"], kw


def from_dict(data: Any, source: str = "<spec>") -> GraphBuilder:
    """Turn parsed YAML (or an equivalent dict) into a builder."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) \
            or not isinstance(data.get("dims"), dict):
        raise AbcError(f"{source}: not an abccalc graph: expected a mapping with 'dims' "
                       "(a mapping) and 'nodes' (a list)")
    unknown = set(data) - {"graph", "dims", "values", "nodes"}
    if unknown:
        raise AbcError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    name = data["graph"] if "graph" in data else to_name(Path(source).stem)
    if not isinstance(name, str):
        raise AbcError(f"{source}: 'graph' must be a name, got {shown(name)}")
    if not isinstance(data.get("values") or {}, dict):
        raise AbcError(f"{source}: 'values' must be a mapping of names to integers")
    b = GraphBuilder(name, source)
    for name, d in data["dims"].items():
        if isinstance(d, int) and not isinstance(d, bool):
            b.dim(name, size=d)
        elif isinstance(d, dict) and set(d) <= {"size", "base", "of", "times"}:
            b.dim(name, d.get("size"), base=d.get("base"), of=d.get("of"), times=d.get("times"))
        else:
            raise _bad(source, f"dim '{name}'", "expected a size, {size: N}, {base: N} or "
                       "{times: K, of: DIM}")
    for name, v in (data.get("values") or {}).items():
        if isinstance(v, dict) and set(v) == {"base"}:
            b.value(name, base=v["base"])  # an infinite repeat count: depth (docs/depth.md)
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise _bad(source, f"value '{name}'", f"{shown(v)} is not an integer or "
                       "{base: N} (an infinite repeat count)")
        b.value(name, v)
    for i, entry in enumerate(data["nodes"]):
        if isinstance(entry, dict) and "repeat" in entry:
            missing, extra = _BLOCK_KEYS - set(entry), set(entry) - _BLOCK_KEYS
            if missing or extra:
                what = f"missing {sorted(missing)}" if missing else f"unknown {sorted(extra)}"
                raise _bad(source, f"nodes[{i}]", f"a repeat block has keys "
                           f"{sorted(_BLOCK_KEYS)}; {what}")
            for k in ("name", "input", "carry", "output"):
                if not isinstance(entry[k], str):
                    raise _bad(source, f"nodes[{i}]", f"repeat block '{k}' must be a name")
            if not isinstance(entry["nodes"], list):
                raise _bad(source, f"repeat '{entry['name']}'", "'nodes' must be a list")
            block = b.repeat(entry["name"], entry["repeat"], input=entry["input"],
                             carry=entry["carry"], output=entry["output"])
            for j, sub in enumerate(entry["nodes"]):
                name, op, kw = _node_kwargs(sub, source, f"block '{entry['name']}' nodes[{j}]")
                block.node(name, op, **kw)
        else:
            name, op, kw = _node_kwargs(entry, source, f"nodes[{i}]")
            b.node(name, op, **kw)
    return b


def _dim_dict(dim) -> int | dict:
    if dim.of is not None:
        times = dim.times if dim.times.denominator != 1 else int(dim.times)
        return {"times": float(times) if isinstance(times, Fraction) else times, "of": dim.of}
    return {"base": dim.size} if dim.infinite else dim.size


def _node_dict(node: Node) -> dict:
    out: dict[str, Any] = {"name": node.name, "op": node.op}
    for fld in ("inputs", "dims", "weight", "bias", "gain", "in_dims", "over", "vocab", "value",
                "kernel", "rename", "causal", "mode", "along", "parts", "index", "heads"):
        value = getattr(node, fld)
        if fld == "rename" and value:
            out["rename"] = dict(value)
        elif value not in (None, ()):
            out[_FIELD_TO_KEY.get(fld, fld)] = list(value) if isinstance(value, tuple) else value
    return out


def to_dict(graph: Graph) -> dict:
    """The spec of a graph, with repeats expanded: ``from_dict(to_dict(g)).build() == g``."""
    return {
        "graph": graph.name,
        "dims": {name: _dim_dict(d) for name, d in graph.dims.items()},
        "values": dict(graph.values),
        "nodes": [_node_dict(n) for n in graph.nodes],
    }


def dump(graph: Graph) -> str:
    return yaml.safe_dump(to_dict(graph), sort_keys=False, default_flow_style=None, width=100)
