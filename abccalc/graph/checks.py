"""The op units' checks of a build's nodes, each run once for all of a node's name-only copies.

A build asks each node's op unit (``abccalc/graph/ops/``) three things: whether the node's
fields are ones it takes (:func:`check_fields`), the node's checked form and parameter uses
(:func:`shape_nodes`), and, for a composite, its primitive nodes (:func:`expand_composites`).

With ``reuse``, a node that differs from one checked before only by names (``name``,
``inputs``, ``weight``, ``bias``, ``gain``: the fields a repeat block renames) takes that
node's result with its own names, through a *recipe*: the fields the check filled in and
each parameter use, the parameter named by its position (weight, bias or gain). The reuse
is exact: an op's check reads names only to copy them into its result and its messages
(the op-unit contract, ``docs/contributing_ops.md``), and the key the recipe is found under
holds everything else it may read (the other fields, the inputs' dims, which inputs and
which parameters are the same name), so the replayed result is the one the check would
give, and a node whose check would raise never finds a recipe (its first copy raised and
ended the build). A result that holds any other name than the node's own gives no recipe:
such a node is checked every time. Nodes that share a recipe are of one class
(:attr:`abccalc.graph.core.Graph.classes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from abccalc.errors import AbcError
from abccalc.graph.core import NAMED_FIELDS, Dim, Node, Use, new_use, unnamed_fields
from abccalc.graph.ops import OPS
from abccalc.graph.ops.base import Op, Shaped

Err = Callable[[str, str], AbcError]  # (what, message): GraphBuilder.err
Uses = dict[str, list[tuple[Use, tuple[str, ...]]]]
Recipe = tuple[dict, tuple[tuple[int, Any, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]]
OPTIONAL = sorted(f.name for f in fields(Node) if f.name not in ("name", "op", "inputs", "dims"))


def check_fields(n: Node, dims: dict[str, Dim], err: Err) -> None:
    """Refuse an unknown op, a field the op does not take or an unknown dim. It reads no
    name but the node's own (for its messages), so a build runs it once per distinct
    :func:`~abccalc.graph.core.unnamed_fields` with ``reuse``."""
    if n.op not in OPS:
        raise err(f"node '{n.name}'", f"unknown op '{n.op}' (known: "
                  f"{', '.join(sorted(OPS))})")
    stray = [f for f in OPTIONAL if getattr(n, f) not in (None, ())
             and f not in OPS[n.op].fields]
    if stray:
        key = {"in_dims": "in"}.get(stray[0], stray[0])
        raise err(f"node '{n.name}'", f"op '{n.op}' takes no '{key}'")
    for d in (*n.dims, *n.in_dims, *n.over, *n.kernel, *n.causal, *n.parts, *n.heads,
              *(x for pair in n.rename for x in pair),
              *(x for x in (n.vocab, n.along) if x)):
        if d not in dims:
            raise err(f"node '{n.name}'", f"unknown dim '{d}'")


def _coincide(node: Node) -> tuple:
    """Which of the node's inputs, and which of its parameters, are the same name, and
    which parameters it has: all that an op's check may read of names."""
    ins, w, b, g = node.inputs, node.weight, node.bias, node.gain
    same = None if len(ins) < 2 or (len(ins) == 2 and ins[0] != ins[1]) else \
        tuple(ins.index(i) for i in ins)
    return same, w is None, b is None, g is None, w == b, w == g, b == g


def _recipe(node: Node, result: Shaped) -> Recipe | None:
    """What ``node``'s check changed, with names as positions: the fields it filled in
    (never a name) and each use as (which of weight/bias/gain, kind, fan_in, fan_out,
    shape); None when the result holds a name other than the node's own."""
    d, r = node.__dict__, result.node.__dict__
    if any(r[f] != d[f] for f in NAMED_FIELDS):
        return None
    params = (node.weight, node.bias, node.gain)
    made = []
    for use, shape in result.uses:
        if use.node != node.name or use.param not in params:
            return None
        made.append((params.index(use.param), use.kind, use.fan_in, use.fan_out, shape))
    return {k: v for k, v in r.items() if v is not d[k]}, tuple(made)


def _replay(node: Node, recipe: Recipe) -> tuple[Node, tuple[tuple[Use, tuple[str, ...]], ...]]:
    """The check's result for ``node`` from the recipe of a node that differs only by names
    (and whose inputs have the same dims): that result's node and uses (a
    :class:`Shaped`'s fields) with ``node``'s names."""
    changes, made = recipe
    shaped = node._copy(changes) if changes else node
    if not made:
        return shaped, ()
    params = (node.weight, node.bias, node.gain)
    return shaped, tuple((new_use(node.name, params[j], kind, fan_in, fan_out), shape)
                         for j, kind, fan_in, fan_out, shape in made)


def shape_nodes(names: dict[str, Node], order: list[str], dims: dict[str, Dim], err: Err,
          reuse: bool = True) -> tuple[dict[str, Node], Uses, dict[str, int]]:
    """Each node's checked form (its dims filled in), every parameter's uses and, with
    ``reuse``, each node's class (:attr:`Graph.classes`), checking the nodes in ``order``.

    With ``reuse``, a node that differs from one checked before only by names (op and
    other fields equal, its inputs of the same dims, the same of its inputs and of its
    parameters coinciding) takes that node's result with its own names (the module
    docstring says why this is the result a check gives), and the two are of one class.
    In a repeat block each iteration whose inputs have the dims of the previous one's is
    such a copy."""
    shaped: dict[str, Node] = {}
    uses: Uses = {}
    memo: dict[tuple, tuple[Recipe | None, int]] = {}  # -> (recipe, class)
    classes: dict[str, int] = {}
    for name in order:
        n = names[name]
        raw = [shaped[i].dims for i in n.inputs]
        ins = raw
        if n.rename and ins:
            ins = [*raw[:-1], tuple(dict(n.rename).get(d, d) for d in raw[-1])]
        key = hit = None
        if reuse:
            key = (unnamed_fields(n), tuple(raw), _coincide(n))
            hit = memo.get(key)
        if hit is not None and hit[0] is not None:
            shaped[name], made = _replay(n, hit[0])
        else:
            node_err = lambda msg, n=n: err(f"node '{n.name}'", msg)  # noqa: E731
            result = OPS[n.op].check(n, ins, dims, node_err)
            if reuse and hit is None:
                recipe = _recipe(n, result)  # None: a class of its own, checked again
                hit = memo[key] = (recipe, len(memo) if recipe is not None else -1)
            shaped[name], made = result.node, result.uses
        if reuse:
            classes[name] = hit[1] if hit[1] >= 0 else -1 - len(classes)
        for use, shape in made:
            if use.param in names or use.param in dims:
                raise err(f"parameter '{use.param}'", "duplicate name (also a node or dim)")
            uses.setdefault(use.param, []).append((use, shape))
    return shaped, uses, classes


def expand_composites(nodes: list[Node], shaped: dict[str, Node], dims: dict[str, Dim],
                      err: Err) -> list[Node] | None:
    """Each composite (an ``attention``) replaced by its primitive nodes, named
    ``<node>.<part>`` with the last keeping the node's name (docs/spec.md §4.1); None
    when the graph has no composite."""
    out: list[Node] = []
    found = False
    for n in nodes:
        unit = OPS[n.op]
        if type(unit).expand is Op.expand:  # a primitive op: nothing to expand
            out.append(n)
            continue
        node_err = lambda msg, n=n: err(f"node '{n.name}'", msg)  # noqa: E731
        parts = unit.expand(shaped[n.name], [shaped[i].dims for i in n.inputs], dims,
                            node_err)
        if parts is None:
            out.append(n)
            continue
        found = True
        taken = [p.name for p in parts[:-1] if p.name in shaped]
        if taken:
            raise node_err(f"its part '{taken[0]}' is also the name of a node")
        out += parts
    return out if found else None
