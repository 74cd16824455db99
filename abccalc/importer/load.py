"""``load_model``: trace a model at each width on ``meta`` and build its :class:`Graph`.

Dims are named from the width knobs: an infinite atom whose sizes are t·knob at every width
is the dim ``knob`` (t = 1) or ``knob_x4`` / ``knob_div4`` (``{times: t, of: knob}``);
finite ones after their role (``ctx``, ``vocab``, ``n_head``, ``kh``), a knob held fixed,
or their size (``d10``). Every constant the model applies at a constant-carrying node is
recorded with the width exponent its values follow (value ∝ n^-e, n the width ratio).
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from typing import Any

from abccalc.errors import AbcError
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.names import clean, name_error, to_name
from abccalc.importer.imported import Imported, Recorded, Unseen
from abccalc.importer.model import (
    example_inputs,
    factory_builder,
    hf_builder,
    hf_example,
    hf_knobs,
    hf_tracing,
    parse_spec,
)

ATOM_FIELDS = ("in_dims", "over", "kernel", "causal", "parts")


def load_model(spec: str, widths: dict[str, tuple[int, ...]] | None = None,
               example: str | None = None) -> Imported:
    """Import MODEL (``file.py:factory``, ``package.module:factory`` or ``hf:CONFIG``) traced
    at the knob values ``widths`` (knob -> values; the first is the base)."""
    from abccalc.importer.nodes import Nodes
    from abccalc.importer.trace import run_trace

    parsed = parse_spec(spec)
    knobs = dict(widths or {})
    if parsed.kind == "hf":
        build, config = hf_builder(parsed, knobs)
        if not knobs:
            knobs = hf_knobs(config)
            build, config = hf_builder(parsed, knobs)
    else:
        build = factory_builder(parsed, knobs)
    varied = {k: v for k, v in knobs.items() if len(set(v)) > 1}
    if not varied:
        raise AbcError(f"{spec}: give at least two values of a width knob (--width "
                       "NAME=B1,B2) to tell finite dims from infinite ones")
    ratios = _ratios(spec, varied)
    count = len(next(iter(varied.values())))
    traces = []
    for w in range(count):
        model = build({k: v[w] for k, v in knobs.items()}, "meta")
        model.eval()
        hf = _is_hf(model)  # hf:CONFIG, or a factory that returns a transformers model
        try:
            with hf_tracing() if hf else contextlib.nullcontext():
                inputs = hf_example(model.config) if hf and example is None else \
                    example_inputs(model, example)
                traces.append(run_trace(model, inputs))
        except AbcError:
            raise
        except Exception as e:  # the user's forward failed on meta
            raise AbcError(f"{spec}: tracing the forward at {_kw(knobs, w)} failed: "
                           f"{type(e).__name__}: {clean(e)} (data-dependent control flow "
                           "or .item() cannot run on the meta device)") from None
    _same_control_flow(spec, traces)
    unseen = [Unseen(module or "<model>", f"autograd.Function {name}",
                     "a custom autograd function: its forward is traced, its backward "
                     "(which may rescale gradients) is not seen" + (f" ({src})" if src else ""))
              for module, name, src in dict.fromkeys(traces[0].customs)]
    mapper = Nodes(traces)
    mapper.run()
    graph = _build(parsed.name, spec, mapper, knobs, varied)
    constants = {}
    for c in mapper.constants:
        e = fit_exponent(c.values, ratios)
        if e is None:
            unseen.append(Unseen(c.module or "<model>", c.node, f"constant values "
                                 f"{c.values} follow no power of the width"))
            continue
        constants[c.node] = Recorded(c.node, c.values, e, c.what, c.module, c.source)
    sources = {r.name: f"{r.module or '<model>'}" + (f" ({r.source})" if r.source else "")
               for r in mapper.nodes}
    for r in mapper.nodes:
        for f in ("weight", "bias", "gain"):
            if f in r.kw:
                sources.setdefault(r.kw[f], sources[r.name])
    return Imported(graph, spec, knobs, build, constants, sources,
                    tuple(unseen) + tuple(mapper.unseen))


def _is_hf(model: Any) -> bool:
    """Whether ``model`` is a transformers model (without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers.")
               for c in type(model).__mro__)


def fit_exponent(values: tuple[float, ...], ratios: tuple[float, ...]):
    """The exponent e with value ∝ n^-e, from the values at widths n₀·ratios (exact
    fractions with small denominators; None if the values do not follow one power)."""
    if any(v == 0 for v in values) or any((v > 0) != (values[0] > 0) for v in values):
        return None
    es = [-math.log(abs(v / values[0])) / math.log(r) for v, r in
          zip(values[1:], ratios[1:], strict=True) if r != 1]
    if not es:
        return None
    e = Fraction(es[0]).limit_denominator(12)
    if any(abs(float(e) - x) > 1e-6 for x in es):
        return None
    return e


def _kw(knobs: dict[str, tuple[int, ...]], w: int) -> str:
    return ", ".join(f"{k}={v[w]}" for k, v in knobs.items())


def _ratios(spec: str, varied: dict[str, tuple[int, ...]]) -> tuple[float, ...]:
    """The width n at each traced point, relative to the first (one n for all knobs)."""
    rows = {k: tuple(x / v[0] for x in v) for k, v in varied.items()}
    first = next(iter(rows.values()))
    for k, r in rows.items():
        if r != first or any(x <= 1 for x in r[1:]) or list(r) != sorted(r):
            raise AbcError(f"{spec}: --width values must grow together by the same factors "
                           f"(abccalc has one width n); '{k}' grows by {list(r)}")
    return first


def _same_control_flow(spec: str, traces: list) -> None:
    """Refuse traces that ran different ops at two widths: their dims cannot be matched."""
    t0 = traces[0]
    for t in traces[1:]:
        pairs = zip(t0.events, t.events, strict=False)
        for e0, e1 in pairs:
            if e0.aten != e1.aten or e0.outs != e1.outs:
                raise AbcError(f"{spec}: the forward runs different ops at different widths "
                               f"(first at '{e0.module or '<model>'}': {e0.aten} vs {e1.aten}); "
                               "control flow that depends on the width cannot be imported")
        if len(t0.events) != len(t.events):
            raise AbcError(f"{spec}: the forward runs {len(t0.events)} ops at one width "
                           f"and {len(t.events)} at another; control flow that depends on "
                           "the width cannot be imported")


def _atoms_used(mapper) -> list[int]:
    """Every atom a node names, as its root (pass 1's records may hold merged atoms)."""
    seen: dict[int, None] = {}
    for r in mapper.nodes:
        for a in r.dims:
            seen[a] = None
        for f in ATOM_FIELDS:
            for a in r.kw.get(f, ()):
                seen[a] = None
        for f in ("vocab", "along"):
            if f in r.kw:
                seen[r.kw[f]] = None
        for pair in r.kw.get("rename", ()):
            for a in pair:
                seen[a] = None
    return list(dict.fromkeys(mapper.atoms.find(a) for a in seen))


def _dim_name(hint: str) -> str:
    """A dim name made from a role hint that holds a module name (``<leaf>_vocab``)."""
    if not hint:
        return ""
    name = to_name(hint)
    return name if name_error(name, dim=True) is None else f"{name}_d"


def _infinite_name(sizes, varied) -> tuple[str, Fraction, str]:
    best = None
    for k, v in varied.items():
        t = Fraction(sizes[0], v[0])
        if all(Fraction(s, x) == t for s, x in zip(sizes, v, strict=True)):
            key = (t != 1, t.denominator, t.numerator)
            if best is None or key < best[0]:
                best = (key, k, t)
    if best is None:
        return "", Fraction(0), ""
    _, k, t = best
    if t == 1:
        return k, t, k
    name = f"{k}_x{t.numerator}" if t.denominator == 1 else \
        f"{k}_div{t.denominator}" if t.numerator == 1 else \
        f"{k}_x{t.numerator}_{t.denominator}"
    return name, t, k


def _name_atoms(spec: str, mapper, knobs, varied) -> tuple[dict[int, str], list]:
    """Each atom's dim name, and the dims to declare (name, size | (times, of))."""
    atoms = mapper.atoms
    fixed = {v[0]: k for k, v in knobs.items() if k not in varied}
    names: dict[int, str] = {}
    decl: dict[str, Any] = {}
    taken: set[str] = {r.name for r in mapper.nodes}
    taken |= {p for r in mapper.nodes for f in ("weight", "bias", "gain")
              for p in [r.kw.get(f)] if p}
    for k, v in varied.items():
        decl[k] = ("base", v[0])

    def unique(stem: str) -> str:
        name, n = stem, 2
        while name in decl or name in taken:
            name, n = f"{stem}_{n}", n + 1
        return name

    shared: dict[tuple[str, int], str] = {}  # finite dims of one role and size
    frozen: dict[tuple, str] = {}  # infinite dims a slice cuts, or its parts
    used = _atoms_used(mapper)
    for a in sorted(used, key=lambda a: (a in atoms.copy_of, a in atoms.part_of)):
        sizes = atoms.sizes[a]
        whole = atoms.part_of.get(a)
        if whole is not None and atoms.find(whole[0]) in names:
            stem = f"{names[atoms.find(whole[0])]}_{whole[1]}"
        elif a in atoms.copy_of:
            stem = f"{names.get(atoms.find(atoms.copy_of[a]), 'ctx')}_k"
        else:
            stem = ""
        if len(set(sizes)) > 1:
            knob_stem, t, of = _infinite_name(sizes, varied)
            if not knob_stem:
                raise AbcError(f"{spec}: a dim of sizes {list(sizes)} is not proportional "
                               f"to any --width knob ({', '.join(varied)}); add the knob "
                               "that sets it")
            if a in atoms.frozen:  # a slice's dim or part: a name of its own
                key = (stem or knob_stem, sizes)
                if key not in frozen:
                    frozen[key] = unique(stem or knob_stem)
                    decl[frozen[key]] = ("times", t, of)
                names[a] = frozen[key]
            else:
                names[a] = knob_stem
                decl.setdefault(knob_stem, ("times", t, of))
            continue
        stem = stem or _dim_name(atoms.hint.get(a, "")) or fixed.get(sizes[0]) or \
            f"d{sizes[0]}"
        key = (stem, sizes[0])
        if key not in shared:
            shared[key] = unique(stem)
            decl[shared[key]] = ("size", sizes[0])
        names[a] = shared[key]
    for r in mapper.nodes:  # two finite atoms of one name in a node: rename the second
        seen: dict[str, int] = {}
        for a in r.dims:
            finite = len(set(atoms.sizes[a])) == 1
            if seen.setdefault(names[a], a) != a and finite:
                names[a] = unique(names[a])
                decl[names[a]] = ("size", atoms.sizes[a][0])
    return names, list(decl.items())


def _build(graph_name: str, spec: str, mapper, knobs, varied):
    roots, decl = _name_atoms(spec, mapper, knobs, varied)
    names = {a: roots[mapper.atoms.find(a)] for a in range(len(mapper.atoms.sizes))
             if mapper.atoms.find(a) in roots}
    b = GraphBuilder(graph_name, source=spec)
    for name, d in decl:
        if d[0] == "base":
            b.dim(name, base=d[1])
        elif d[0] == "times":
            b.dim(name, of=d[2], times=d[1])
        else:
            b.dim(name, size=d[1])
    for r in mapper.nodes:
        kw = dict(r.kw)
        for f in ATOM_FIELDS:
            if f in kw:
                kw[f] = [names[a] for a in kw[f]]
        for f in ("vocab", "along"):
            if f in kw:
                kw[f] = names[kw[f]]
        if "rename" in kw:
            kw["rename"] = [(names[x], names[y]) for x, y in kw["rename"]]
        b.node(r.name, r.op, inputs=list(r.inputs), dims=[names[a] for a in r.dims], **kw)
    try:
        return b.build()
    except AbcError as e:
        seen = "; ".join(f"{u.module}: {u.op}: {u.reason}" for u in mapper.unseen[:5])
        raise AbcError(f"{e}" + (f" (ops it could not map: {seen})" if seen else "")) \
            from None
