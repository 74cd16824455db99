"""The parametrization a live model already has (issue 14 point 4), as the
:class:`~abccalc.parametrization.paramsfile.ParamsFile` that ``check --params FILE`` reads.

In TP5's notation (Def. A.2) a parameter is W = n^-a·w with w₀ ~ N(0, n^-2b) and LR η·n^-c;
a parameter-free constant is n^-α. The model itself says what its a, b, c and α are:

- **b, init.** The model is built on the CPU at each traced width with one fixed seed. The
  root mean square of each parameter's entries is fitted against the width on a log-log
  scale: rms ∝ n^-b, read to the nearest ½ (the grain of every rule in TP5 Tables 3, 8
  and 9). The RMS, not the std, so that a constant tensor has a size too: a LayerNorm
  weight of ones is Θ(1), b = 0, as TP5 B.1 treats vector-like gains. An all-zero tensor
  satisfies every init rule (TP5 App. B): it gets μP's a+b for its first use, less its a,
  so its init is never a violation.
- **a and α, multipliers.** The constants the tracer recorded (:class:`Recorded`). A
  constant at a ``scale`` node that is the only input of a linear (``lm_head(x / m)``, the
  pre-hooks of abccalc's ``apply_multipliers``) or the only consumer of a linear or of a
  contraction (``(q @ k.T) * self.scale``) is that use's multiplier n^-a, or that
  contraction's α: W(x/m) = (W/m)x. Folded so, the scale node is left with α = 0, μP's for
  a Θ(1) input.
- **c, learning rates.** From an optimizer factory (``make_opt(model)`` returning an
  optimizer, a list of param groups or the parameters) called at each width: each
  parameter's LR is fitted as lr ∝ n^-c. Or from a YAML of LR scales by name pattern,
  read with the params-file grammar. With neither, one global LR: c = 0.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy

from abccalc.calculus.sizes import ABC, UseKey, key
from abccalc.calculus.solver import solve
from abccalc.errors import AbcError
from abccalc.exponents import ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Kind, Use
from abccalc.graph.yamlio import read_yaml
from abccalc.importer.imported import Imported
from abccalc.parametrization.paramsfile import (
    N,
    ParamsFile,
    constant_nodes,
    rule_exponent,
    rule_names,
    rule_subs,
)

INIT_GRAIN = Fraction(1, 2)  # init exponents are read to the nearest ½
MAX_NUMEL = 200_000_000  # entries built on the CPU to read the init, all widths together
GLOBAL_LR = ("plain global-LR training assumed (every parameter at one width-independent "
             "LR); give --optimizer-factory or --lr-scales for your own")


@dataclass(frozen=True)
class InitReading:
    """One parameter's initialization at each width: its RMS, the fitted slope of
    log rms against log n, and what that reads as."""

    name: str
    kind: str  # "random", "constant" (every entry equal) or "zeros"
    rms: tuple[float, ...]
    slope: float | None  # None for zeros
    b: Exp


@dataclass(frozen=True)
class Current:
    """What a model does now: its exponents as a params file, and how each was read."""

    params: ParamsFile
    init: dict[str, InitReading]
    lr: dict[str, tuple[float, ...]]  # measured LRs (empty without an optimizer factory)
    lr_source: str  # "" for the global-LR assumption
    folded: dict[str, str] = field(default_factory=dict)  # scale node -> where it went
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tied: other names
    optimizer_class: str | None = None

    @property
    def notes(self) -> list[str]:
        out = [] if self.lr_source else [GLOBAL_LR]
        out += [f"{s}: its constant is read as the multiplier of {w}"
                for s, w in sorted(self.folded.items())]
        return out


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """``path/to/file.py:name`` or ``package.module:name``: the user's own callable (their
    code runs, as it does when they train)."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise AbcError(f"{what} {spec}: expected file.py:function or package.module:function")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise AbcError(f"{what} {spec}: no file {target}")
        mod_spec = importlib.util.spec_from_file_location(f"_abccalc_user_{path.stem}", path)
        if mod_spec is None or mod_spec.loader is None:
            raise AbcError(f"{what} {spec}: cannot load {target} as Python")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise AbcError(f"{what} {spec}: cannot import {target}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AbcError(f"{what} {spec}: {target} has no function '{name}'")
    return fn


def _widths(imp: Imported) -> list[dict[str, int]]:
    counts = {len(v) for v in imp.knobs.values()}
    if len(counts) != 1 or counts.pop() < 2:
        raise AbcError(f"{imp.spec}: every width knob needs the same number (2 or 3) of "
                       f"traced values, got {dict(imp.knobs)}")
    n = len(next(iter(imp.knobs.values())))
    return [{k: v[i] for k, v in imp.knobs.items()} for i in range(n)]


def global_ratios(imp: Imported) -> list[float]:
    """n_i / n_0 for each traced width: the geometric mean of the ratios of the knobs that
    change (each infinite dim is Θ(n), so they change together)."""
    ws = _widths(imp)
    moving = [k for k in imp.knobs if len(set(imp.knobs[k])) > 1]
    if not moving:
        raise AbcError(f"{imp.spec}: no width knob changes across {dict(imp.knobs)}; "
                       "give two or three different values")
    return [math.prod(w[k] / ws[0][k] for k in moving) ** (1 / len(moving)) for w in ws]


def slope(ns: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log n."""
    xs, ls = [math.log(n) for n in ns], [math.log(y) for y in ys]
    mx, my = sum(xs) / len(xs), sum(ls) / len(ls)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ls, strict=True)) / den


def _grain(value: float, grain: Fraction) -> Exp:
    return Fraction(round(value / grain)) * grain


def _lookup(model: Any, imp: Imported, knobs: dict[str, int]) -> dict[str, Any]:
    """The model's parameters by every name (tied ones under each of their names)."""
    named = dict(model.named_parameters(remove_duplicate=False))
    missing = [p for p in imp.graph.params if p not in named]
    if missing:
        raise AbcError(f"{imp.spec}: the traced parameter '{missing[0]}' is not a parameter "
                       f"of the model built at {knobs}")
    return named


def _ratios(graph: Graph, pname: str, numels: list[int], glob: list[float]) -> list[float]:
    """n_i / n_0 as this parameter sees it: (numel_i / numel_0)^(1/k) for k infinite
    dims in its shape; the global ratio for a scalar-like one."""
    k = graph.inf(graph.params[pname].shape)
    if k == 0:
        return glob
    if numels[-1] == numels[0]:
        raise AbcError(f"parameter '{pname}': the graph gives it {k} infinite dim(s) but its "
                       f"size does not change across the traced widths ({numels})")
    return [(m / numels[0]) ** (1 / k) for m in numels]


def build_models(imp: Imported, seed: int = 0) -> list[tuple[dict[str, int], Any]]:
    """The model at each traced width, built on the CPU with ``seed``."""
    import torch

    ws = _widths(imp)
    total = 0
    for knobs in ws:
        with torch.device("meta"):
            total += sum(p.numel() for p in _call(imp.build, (knobs, "meta"),
                                                  f"{imp.spec}: building at {knobs}").parameters())
    if total > MAX_NUMEL:
        raise AbcError(f"{imp.spec}: reading the init builds the model at every traced width "
                       f"on the CPU ({total:,} entries; the limit is {MAX_NUMEL:,}); trace "
                       "at smaller widths (the exponents do not depend on them)")
    out = []
    for knobs in ws:
        torch.manual_seed(seed)
        out.append((knobs, _call(imp.build, (knobs, "cpu"),
                                 f"{imp.spec}: building at {knobs} on the CPU")))
    return out


def _call(fn: Callable[..., Any], args: tuple[Any, ...], where: str) -> Any:
    """The user's code: what it raises is one line naming it, never a traceback."""
    try:
        return fn(*args)
    except AbcError:
        raise
    except Exception as e:
        raise AbcError(f"{where} raised {type(e).__name__}: {e}") from None


def read_init(imp: Imported, models: list[tuple[dict[str, int], Any]], glob: list[float],
              mup_b: Callable[[str], Exp]) -> dict[str, InitReading]:
    """Each parameter's init exponent b (rms ∝ n^-b); ``mup_b(p)`` is used for zeros."""
    import torch

    rms: dict[str, list[float]] = {p: [] for p in imp.graph.params}
    numel: dict[str, list[int]] = {p: [] for p in imp.graph.params}
    const: dict[str, bool] = dict.fromkeys(imp.graph.params, True)
    for knobs, model in models:
        named = _lookup(model, imp, knobs)
        with torch.no_grad():
            for p in imp.graph.params:
                t = named[p].detach().double()
                rms[p].append(float(t.pow(2).mean().sqrt()) if t.numel() else 0.0)
                numel[p].append(t.numel())
                const[p] = const[p] and bool((t == t.flatten()[0]).all())
    out = {}
    for p in imp.graph.params:
        if max(rms[p]) == 0:
            out[p] = InitReading(p, "zeros", tuple(rms[p]), None, mup_b(p))
            continue
        if min(rms[p]) == 0:
            raise AbcError(f"parameter '{p}': zero at some traced widths and not at others "
                           f"(rms {rms[p]}); its init does not scale like a power of width")
        s = slope(_ratios(imp.graph, p, numel[p], glob), rms[p])
        out[p] = InitReading(p, "constant" if const[p] else "random", tuple(rms[p]), s,
                             -_grain(s, INIT_GRAIN))
    return out


def _fit_lr(pname: str, ns: list[float], lrs: list[float], where: str) -> Exp:
    """c with lr ∝ n^-c, exact: LRs are set by code, not sampled."""
    if min(lrs) <= 0:
        raise AbcError(f"{where}: parameter '{pname}' has LR {min(lrs)}; check needs every "
                       "parameter trained with a positive LR")
    pairs = [math.log(lrs[i] / lrs[0]) / math.log(ns[i] / ns[0]) for i in range(1, len(ns))]
    c = Fraction(-pairs[0]).limit_denominator(12)
    if any(abs(-s - c) > 1e-6 for s in pairs):
        raise AbcError(f"{where}: the LR of '{pname}' ({lrs} at width ratios {ns}) does not "
                       "scale like a power of the width")
    return c


def read_lr_factory(imp: Imported, models: list[tuple[dict[str, int], Any]],
                    factory: Callable[[Any], Any], where: str, glob: list[float]
                    ) -> tuple[dict[str, Exp], dict[str, tuple[float, ...]], str | None]:
    """c of each parameter from ``factory(model)`` at each width, the LRs read and the
    optimizer's class name (None for bare param groups)."""
    lrs: dict[str, list[float]] = {p: [] for p in imp.graph.params}
    numel: dict[str, list[int]] = {p: [] for p in imp.graph.params}
    cls = None
    for knobs, model in models:
        named = _lookup(model, imp, knobs)
        made = _call(factory, (model,), f"{where} at {knobs}")
        groups = getattr(made, "param_groups", None)
        cls = type(made).__name__ if groups is not None else None
        default = getattr(made, "defaults", {}).get("lr", 1.0)
        by_id: dict[int, float] = {}
        for g in groups if groups is not None else _groups(made, where):
            ps = g["params"] if isinstance(g, dict) else [g]
            for t in ([ps] if hasattr(ps, "shape") else list(ps)):
                if id(t) in by_id:
                    raise AbcError(f"{where}: a parameter is in two param groups")
                by_id[id(t)] = float(g.get("lr", default) if isinstance(g, dict) else default)
        for p in imp.graph.params:
            if id(named[p]) not in by_id:
                raise AbcError(f"{where}: parameter '{p}' is in no param group at {knobs}")
            lrs[p].append(by_id[id(named[p])])
            numel[p].append(named[p].numel())
    c = {p: _fit_lr(p, _ratios(imp.graph, p, numel[p], glob), lrs[p], where)
         for p in imp.graph.params}
    return c, {p: tuple(v) for p, v in lrs.items()}, cls


def _same_class(cls: str | None, opt: Optimizer, where: str) -> None:
    """An SGD factory checked as Adam (or the reverse) would judge the wrong LR rules."""
    name = (cls or "").lower()
    other = Optimizer.SGD if "sgd" in name else Optimizer.ADAM if "adam" in name else opt
    if other is not opt:
        raise AbcError(f"--optimizer-factory {where} returns {cls}, checked as "
                       f"{opt.value}: pass --optimizer {other.value}")


def _groups(made: Any, where: str) -> list[Any]:
    try:
        return list(made)
    except TypeError:
        raise AbcError(f"{where}: expected an optimizer, a list of param groups or an "
                       f"iterable of parameters, got {type(made).__name__}") from None


def read_lr_scales(imp: Imported, path: str) -> dict[str, Exp]:
    """c of each parameter from a YAML mapping ``pattern: LR scale`` (first match wins).

    A scale is a rule of the params-file grammar in ``fan_in``, ``fan_out``, the graph's
    dims and the width knobs (``1/fan_in``, ``256/n_embd``, ``1``): lr ∝ n^-c."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise AbcError(f"{path}: expected a mapping of parameter-name patterns to LR scales "
                       "(e.g. \"*.c_fc.weight\": 1/fan_in)")
    g = imp.graph
    names = rule_names(g)
    knobs = {k: sympy.Symbol(k, positive=True) for k in imp.knobs if k not in names}
    names.update(knobs)
    moving = {k for k in imp.knobs if len(set(imp.knobs[k])) > 1}
    out = {}
    for p, param in g.params.items():
        k = next((str(k) for k in data if fnmatch.fnmatchcase(p, str(k))), None)
        if k is None:
            raise AbcError(f"{path}: parameter '{p}': no pattern matches it (add one, or \"*\")")
        subs = rule_subs(g, names, param.uses[0])
        subs.update({s: N if name in moving else 1 for name, s in knobs.items()})
        out[p] = -rule_exponent(data[k], names, subs, f"{path}: parameter '{p}' (key '{k}')")
    return out


def _uses_at(graph: Graph) -> dict[str, list[Use]]:
    at: dict[str, list[Use]] = {}
    for param in graph.params.values():
        for u in param.uses:
            at.setdefault(u.node, []).append(u)
    return at


def read_multipliers(imp: Imported) -> tuple[dict[UseKey, Exp], dict[str, Exp],
                                             dict[str, str]]:
    """a of every use and α of every constant node from the recorded constants, scale
    nodes folded into the use or contraction next to them (module docstring)."""
    g = imp.graph
    at = _uses_at(g)
    consumers: dict[str, list[str]] = {}
    for n in g.order:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n.name)
    a: dict[UseKey, Exp] = {key(u): ZERO for p in g.params.values() for u in p.uses}
    alpha: dict[str, Exp] = dict.fromkeys(constant_nodes(g), ZERO)
    folded: dict[str, str] = {}
    for name, rec in sorted(imp.constants.items()):
        node = g.node.get(name)
        if node is None:
            raise AbcError(f"{imp.spec}: a constant is recorded at '{name}', not a node of "
                           "the traced graph")
        target = name
        if node.op == "scale":
            after, (before,) = consumers.get(name, []), node.inputs
            weight_after = [u for u in at.get(after[0], []) if u.kind is Kind.WEIGHT] \
                if len(after) == 1 else []
            if len(after) == 1 and weight_after and g.node[after[0]].inputs == (name,):
                for u in weight_after:  # W(x·m) = (W·m)x: the weight's, not the bias's
                    a[key(u)] += rec.exponent
                target = f"{after[0]} (its weight)"
            elif consumers.get(before) == [name] and before in at:
                for u in at[before]:  # (Wx + b)·m: every use at that node
                    a[key(u)] += rec.exponent
                target = before
            elif consumers.get(before) == [name] and before in alpha:
                alpha[before] += rec.exponent
                target = before
            if target != name:
                folded[name] = target
                continue
        if name in alpha:
            alpha[name] += rec.exponent
        elif name in at:
            for u in at[name]:
                a[key(u)] += rec.exponent
        else:
            raise AbcError(f"{imp.spec}: a constant is recorded at '{name}' ({node.op}), "
                           "which neither carries a constant nor uses a parameter")
    return a, alpha, folded


def aliases(model: Any, graph: Graph) -> dict[str, tuple[str, ...]]:
    """Each graph parameter's other state_dict names (a tied parameter has several)."""
    by_id: dict[int, list[str]] = {}
    for n, t in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(t), []).append(n)
    named = dict(model.named_parameters(remove_duplicate=False))
    return {p: tuple(n for n in by_id[id(named[p])] if n != p) for p in graph.params
            if len(by_id[id(named[p])]) > 1}


def current(imp: Imported, optimizer: Optimizer | str, *,
            factory: Callable[[Any], Any] | None = None, factory_name: str = "",
            lr_scales: str | None = None, seed: int = 0) -> Current:
    """The live model's own parametrization (module docstring), ready for
    :func:`abccalc.verify.check.check`."""
    if factory is not None and lr_scales is not None:
        raise AbcError("give either --optimizer-factory or --lr-scales, not both")
    opt = Optimizer.parse(optimizer) if isinstance(optimizer, str) else optimizer
    g = imp.graph
    a, alpha, folded = read_multipliers(imp)
    invariants = solve(g, opt).invariants
    first = {p: param.uses[0] for p, param in g.params.items()}

    def mup_b(p: str) -> Exp:  # zeros satisfy every init rule (TP5 App. B)
        return invariants[key(first[p])].init - a[key(first[p])]

    glob = global_ratios(imp)
    models = build_models(imp, seed)
    init = read_init(imp, models, glob, mup_b)
    lrs: dict[str, tuple[float, ...]] = {}
    cls = None
    if factory is not None:
        c, lrs, cls = read_lr_factory(imp, models, factory, factory_name, glob)
        _same_class(cls, opt, factory_name)
        source = f"--optimizer-factory {factory_name}"
    elif lr_scales is not None:
        c, source = read_lr_scales(imp, lr_scales), f"--lr-scales {lr_scales}"
    else:
        c, source = dict.fromkeys(g.params, ZERO), ""
    b = {p: r.b for p, r in init.items()}
    pf = ParamsFile(f"{imp.spec} (measured)", ABC(a, b, c, alpha), dict.fromkeys(g.params,
                    "measured"), ())
    return Current(pf, init, lrs, source, folded, aliases(models[0][1], g), cls)
