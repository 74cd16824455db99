"""Generate a standalone PyTorch module that applies a parametrization.

The module imports only ``math`` and ``torch``. Every rule is written relative to SP at
the base width (TP5 Eq. 4): init var = σ²/fan_in·m^e₁, multiplier = m^e₂, LR = η·m^e₃,
where m = fan/base_fan of the parameter's infinite fan, read from the tensor's shape.
Expressions are printed with sympy's Python code printer.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import sympy
from sympy.printing.pycode import pycode

from abccalc import __version__
from abccalc.calculus.solver import solve
from abccalc.emit.codegen_model import (
    constant_expr,
    doc_text,
    ident,
    model_source,
    module_path,
    py_expr,
)
from abccalc.emit.codegen_optim import optimizer_source, use_text
from abccalc.errors import AbcError
from abccalc.exponents import ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Kind, Use
from abccalc.graph.ops import OPS
from abccalc.graph.yamlio import read_yaml
from abccalc.parametrization.gauges import (
    Parametrization,
    ParamRule,
    from_abc,
    parametrize,
    parametrize_auto,
)
from abccalc.parametrization.paramsfile import load_params
from abccalc.parametrization.presets import sp
from abccalc.parametrization.rules import (
    M,
    fan_rules,
    fmt,
    ratio_exponents,
    ratio_of,
    rules_of,
    signature,
)

TABLE_TITLES = {"table3": "TP5 Table 3", "table8": "TP5 Table 8", "table9": "TP5 Table 9",
                "tp4": "TP4 Table 1 (TP5 Table 9)", "unit": "unit-variance (u-muP style)"}
COLUMN = {"input": "input weights & all biases", "output": "output weights",
          "hidden": "hidden weights", "scalar": "scalar-like"}


def load_parametrization(graph: Graph, optimizer: str, variant: str, preset: str = "mup"
                         ) -> Parametrization:
    """μP in ``variant`` (``auto``: the first without a tied-weight conflict) for
    ``optimizer`` (``adamw`` is Adam-like), SP (``preset='sp'``) or a params file."""
    analysis = solve(graph, Optimizer.parse(optimizer))
    if preset == "sp":
        return sp(analysis)
    if preset != "mup":  # a params file (docs/check.md)
        return from_abc(analysis, load_params(preset, graph).abc, Path(preset).stem)
    return parametrize_auto(analysis)[0] if variant == "auto" else parametrize(analysis, variant)


def read_names(path: str) -> dict[str, str]:
    """A ``--names`` file: a YAML mapping of graph parameter to module parameter name."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise AbcError(f"{path}: a name map is a mapping of parameter names to module "
                       "parameter names")
    return data


def default_names(graph: Graph) -> dict[str, str]:
    """Graph parameter → module parameter name: ``<node>.weight`` / ``.bias`` at the
    node of its first use; a norm's gain is ``<node>.weight`` (PyTorch's LayerNorm
    naming). The node's path goes through :func:`module_path`, so a node named like a
    torch attribute (``forward``) or with non-identifier characters gets a safe module."""
    names = {}
    for pname, param in graph.params.items():
        use = param.uses[0]
        attr = "bias" if use.kind is Kind.BIAS else "weight"
        names[pname] = f"{module_path(use.node)}.{attr}"
    return names


def check_names(graph: Graph, names: dict[str, str], source: str) -> None:
    """Every graph parameter mapped, nothing else, and no two onto one module parameter
    (they would be one tensor with two rules, and twice in the optimizer)."""
    missing = [p for p in graph.params if p not in names]
    if missing:
        raise AbcError(f"{source}: name map misses parameter '{doc_text(missing[0])}'")
    unknown = [p for p in names if p not in graph.params]
    if unknown:
        raise AbcError(f"{source}: name map names '{doc_text(unknown[0])}', which is not a "
                       f"parameter of graph '{doc_text(graph.name)}'")
    seen: dict[str, str] = {}
    for pname in graph.params:
        other = seen.setdefault(names[pname], pname)
        if other != pname:
            raise AbcError(f"{source}: parameters '{doc_text(other)}' and '{doc_text(pname)}'"
                           f" both map to module parameter '{doc_text(names[pname])}'; tie "
                           "them in the graph (one parameter, several uses) instead")


def _fan_axes(graph: Graph, use: Use) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(fan_in axes, width-scaling fan axes, which fan) in PyTorch's layout: a Linear
    weight is (fan_out, fan_in), a conv weight (out, in, *kernel), an Embedding
    (vocab, fan_out) with fan_in 1, a bias or gain (fan_out,) with fan_in 1."""
    node = graph.node[use.node]
    fan_in_axes, fan_out_axes = OPS[node.op].fan_axes(node, use)
    if graph.inf(use.fan_in):
        return fan_in_axes, fan_in_axes, "fan_in"
    if graph.inf(use.fan_out):
        return fan_in_axes, fan_out_axes, "fan_out"
    return fan_in_axes, (), ""


@lru_cache(maxsize=1024)
def _py(expr: sympy.Expr) -> str:
    return pycode(expr, fully_qualified_modules=True)


@lru_cache(maxsize=1024)
def _m_power(e: Exp) -> str:
    """Python code of m**e (sympy's printer, once per distinct exponent)."""
    return _py(M ** sympy.Rational(e.numerator, e.denominator))


@lru_cache(maxsize=4096)
def _rule_lines(title: str, column: str, opt: str, unit: bool, k_in: int, k_out: int,
                sig: tuple[int, ...]) -> tuple[str, ...]:
    """The comment and scale lines of every parameter with this signature: a use with
    ``k_in``/``k_out`` infinite dims and (a, b, c) of :func:`signature` ``sig``."""
    init_var, multiplier, lr = (doc_text(t) for t in fan_rules(unit, k_in, k_out, sig).texts())
    a, b, c = (Fraction(sig[i], sig[i + 1]) for i in (0, 2, 4))  # as signature() wrote
    ev, em, el = ratio_of(k_in, k_out, sig) if k_in or k_out else (ZERO, ZERO, ZERO)
    return (f"    # {title}, {column}: init var {init_var}, multiplier {multiplier}, {opt} LR "
            f"{lr}",
            f"    # (a, b, c) = ({a}, {b}, {c}); vs SP at base width: var x m^{ev}, "
            f"mult x m^{em}, LR x m^{el}",
            f"        var_scale=lambda m: {_m_power(ev)},",
            f"        multiplier=lambda m: {_m_power(em)},",
            f"        lr_scale=lambda m: {_m_power(el)},")


def _entry(p: Parametrization, r: ParamRule, module_name: str) -> list[str]:
    graph = p.graph
    use = r.use
    k_in, k_out = graph.inf(use.fan_in), graph.inf(use.fan_out)
    rules_of(p, r)  # a scalar-like parameter with nonzero exponents is an error
    in_axes, axes, which = _fan_axes(graph, use)
    base_fan = graph.size(use.fan_in if which == "fan_in" else use.fan_out) if which else 1
    init = "zeros" if r.kind is Kind.BIAS else "ones" if r.kind is Kind.GAIN else "normal"
    comment1, comment2, *scales = _rule_lines(
        doc_text(TABLE_TITLES.get(p.variant, p.variant)), COLUMN[r.role.value],
        p.optimizer.value, p.variant == "unit", k_in, k_out,
        signature(r.a_exp[(use.node, r.name)], r.b_exp, r.c_exp))
    return [
        comment1,
        comment2,
        f"    {r.name!r}: Rule(",
        f"        module_param={module_name!r}, role={r.role.value!r}, init={init!r},",
        f"        fan_in_axes={in_axes!r}, fan_axes={axes!r}, base_fan={base_fan},",
        *scales,
        *_use_multipliers(p, r),
        "    ),",
    ]


def _use_multipliers(p: Parametrization, r: ParamRule) -> list[str]:
    """A tied parameter's later uses with their own multiplier (a tied embedding's readout
    carries 1/m in Table 8)."""
    lines = [f"            {u.node!r}: lambda m: {_m_power(ratio_exponents(p, r, u)[1])},"
             for u in r.uses[1:]]
    return ["        use_multipliers={", *lines, "        },"] if lines else []


def constant_functions(p: Parametrization) -> dict[str, str]:
    """Node → name of its ``<local>_scale`` function, for each constant over an infinite
    dim: nodes with one local name (the last dotted part, ``scores`` for every block's
    ``block.<i>.scores``) and one rule share a function; another rule of the same local
    name gets ``_2``, ``_3``, … (in sorted node order, so declaration order is moot)."""
    graph = p.graph
    funcs: dict[str, str] = {}
    rules: dict[str, list[sympy.Expr]] = {}
    for name in sorted(p.constants):
        if not any(graph.dims[d].infinite for d in graph.node[name].over):
            continue
        local = name.rsplit(".", 1)[-1]
        exprs = rules.setdefault(local, [])
        expr = constant_expr(p, name)
        if expr not in exprs:
            exprs.append(expr)
        k = exprs.index(expr)
        funcs[name] = f"{ident(local)}_scale" + (f"_{k + 1}" if k else "")
    return funcs


def _constants(p: Parametrization) -> list[str]:
    """One function per distinct constant over an infinite dim (the attention scale),
    its arguments the dims it depends on (as identifiers, :func:`ident`)."""
    graph = p.graph
    out: list[str] = []
    seen: set[str] = set()
    for name, func in constant_functions(p).items():
        if func in seen:
            continue
        seen.add(func)
        alpha = p.constants[name]
        dims = [d for d in graph.node[name].over if graph.dims[d].infinite]
        expr = constant_expr(p, name)
        args = ", ".join(f"{ident(a)}: int" for a in sorted(str(x) for x in expr.free_symbols))
        d = sympy.Symbol(dims[0], positive=True)
        base = graph.dims[dims[0]].size
        dim = doc_text(dims[0])
        out += [
            "",
            "",
            f"def {func}({args}) -> float:",
            f'    """Multiplier of `{doc_text(name)}`: {doc_text(fmt(d ** -alpha))} scaling '
            "(TP5 Def. 4.1).",
            "",
            f"    Use it in your forward in place of 1/sqrt({dim}):",
            "",
            f"        y = (q @ k.transpose(-2, -1)) * {func}({ident(dims[0])})",
            "",
            f"    It equals 1/sqrt({dim}) at the base {dim} = {base} "
            '(TP5 App. B.1)."""',
            f"    return {py_expr(expr, {str(x): ident(str(x)) for x in expr.free_symbols})}",
        ]
    return out


HEADER = '''"""{title}

Generated by abccalc {version} from the graph `{graph}` in
    {source}
for {optimizer}, variant {variant_text}. Do not edit; regenerate with `abccalc codegen`.

Use:

    init_(model)                                     # initialize every parameter
    apply_multipliers(model)                         # forward multipliers (hooks)
{use}

init_ and param_groups raise ValueError naming every trainable parameter of the model
that no rule in PARAMETERS covers; with strict=False they warn instead, and param_groups
gives those parameters a group at the base lr. apply_multipliers is idempotent.

Rules are written relative to the standard parametrization (SP) at the base widths
BASE_WIDTHS (TP5 Eq. 4): with m = fan / base_fan of a parameter's width-scaling fan,
init var = sigma^2 / fan_in * var_scale(m), multiplier = multiplier(m),
LR = lr * lr_scale(m). At the base widths every factor is 1 and the model is SP.

Forward multipliers are forward hooks, not torch.nn.utils.parametrize: hooks leave the
parameters and the state_dict keys exactly as in your model (checkpoints stay
interchangeable with non-muP code), attach nothing to tensors, and are traced by
torch.compile and kept by DistributedDataParallel (register them before wrapping).
A weight-only multiplier is a pre-hook on the module's input (W(ax) = (aW)x leaves the
bias alone); a multiplier shared by weight and bias, or on an embedding, scales the output.

Weight decay (TP5 B.3): `weight_decay` is passed unchanged to every group, i.e. width
independent, which is right for SGD and for AdamW's decoupled decay. With torch.optim.Adam
the decay is coupled (added to the gradient before normalization), which muP Adam does not
support: its effect then changes with width; use AdamW.
"""

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch

BASE_WIDTHS: dict[str, int] = {base_widths}
OPTIMIZER = {optimizer!r}
VARIANT = {variant!r}


class Rule(NamedTuple):
    """How one parameter scales; m is its width ratio fan / base_fan."""

    module_param: str
    role: str
    init: str  # "normal", "zeros" (biases) or "ones" (gains)
    fan_in_axes: tuple[int, ...]  # tensor axes whose product is fan_in (none: fan_in 1)
    fan_axes: tuple[int, ...]  # tensor axes whose product is the width-scaling fan
    base_fan: int
    var_scale: Callable[[float], float]
    multiplier: Callable[[float], float]
    lr_scale: Callable[[float], float]
    use_multipliers: dict[str, Callable[[float], float]] | None = None  # tied: later uses


PARAMETERS: dict[str, Rule] = {{
'''

FUNCTIONS = '''

def _params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    named = dict(model.named_parameters(remove_duplicate=False))
    missing = [r.module_param for r in PARAMETERS.values() if r.module_param not in named]
    if missing:
        raise KeyError(f"model has no parameter {missing[0]!r} (see PARAMETERS)")
    return named


def uncovered(model: torch.nn.Module) -> list[str]:
    """The model's trainable parameters that no rule in PARAMETERS covers."""
    covered = {id(p) for name, p in _params(model).items()
               if name in {r.module_param for r in PARAMETERS.values()}}
    return [name for name, p in model.named_parameters()
            if p.requires_grad and id(p) not in covered]


def _check_covered(model: torch.nn.Module, strict: bool, what: str) -> list[str]:
    """Raise on parameters no rule covers (they would silently keep the wrong scaling),
    or with ``strict=False`` warn and return them."""
    left = uncovered(model)
    if left and strict:
        raise ValueError(f"{what}: no rule covers the trainable parameters {left}; map "
                         "them in the graph (or --names), or pass strict=False")
    if left:
        warnings.warn(f"{what}: no rule covers {left}; they keep "
                      + ("their initialization" if what == "init_" else "the base lr"),
                      stacklevel=3)
    return left


def width_ratio(rule: Rule, tensor: torch.Tensor) -> float:
    """m = fan / base_fan, from the tensor's actual shape."""
    fan = math.prod(tensor.shape[i] for i in rule.fan_axes)
    return fan / rule.base_fan


@torch.no_grad()
def init_(model: torch.nn.Module, *, sigma: float = 1.0,
          sigmas: dict[str, float] | None = None, strict: bool = True) -> None:
    """Initialize every parameter in place: weights N(0, sigma^2/fan_in * var_scale(m)),
    biases 0, gains 1 (TP5 Eq. 3; zero variance satisfies every rule, TP5 App. B).
    ``sigmas`` overrides sigma per parameter name or per role ("input", "hidden",
    "output", "scalar"); e.g. {"hidden": 3**-0.5, "output": 3**-0.5} gives PyTorch's
    default variance 1/(3 fan_in) to linear weights at the base width. A trainable
    parameter no rule covers raises ValueError; ``strict=False`` leaves it as it is,
    with a warning."""
    _check_covered(model, strict, "init_")
    named = _params(model)
    for name, rule in PARAMETERS.items():
        scale = (sigmas or {}).get(name, (sigmas or {}).get(rule.role, sigma))
        p = named[rule.module_param]
        if rule.init == "zeros":
            p.zero_()
        elif rule.init == "ones":
            p.fill_(1.0)
        else:
            fan_in = math.prod(p.shape[i] for i in rule.fan_in_axes)
            std = scale * math.sqrt(rule.var_scale(width_ratio(rule, p)) / fan_in)
            p.normal_(0.0, std)


def param_groups(model: torch.nn.Module, lr: float, *, weight_decay: float = 0.0,
                 strict: bool = True) -> list[dict]:
    """Parameter groups with per-parameter LR lr * lr_scale(m), ready for
    torch.optim.SGD / Adam / AdamW. Parameters of equal LR share a group. A trainable
    parameter no rule covers raises ValueError; ``strict=False`` puts it in a group of
    its own at the base ``lr``, with a warning."""
    left = _check_covered(model, strict, "param_groups")
    named = _params(model)
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for rule in PARAMETERS.values():
        p = named[rule.module_param]
        groups.setdefault(lr * rule.lr_scale(width_ratio(rule, p)), []).append(p)
    out = [{"params": ps, "lr": g, "weight_decay": weight_decay}
           for g, ps in groups.items()]
    if left:
        out.append({"params": [named[n] for n in left], "lr": lr,
                    "weight_decay": weight_decay})
    return out


def multipliers(model: torch.nn.Module) -> dict[str, float]:
    """The forward multiplier of every parameter (at its first use) at the model's widths."""
    named = _params(model)
    return {name: rule.multiplier(width_ratio(rule, named[rule.module_param]))
            for name, rule in PARAMETERS.items()}


def use_multiplier(model: torch.nn.Module, node: str, name: str) -> float:
    """The multiplier of parameter ``name`` where graph node ``node`` reads it: differs from
    ``multipliers`` only at a tied parameter's later uses (apply those in your forward)."""
    rule = PARAMETERS[name]
    m = width_ratio(rule, _params(model)[rule.module_param])
    return (rule.use_multipliers or {}).get(node, rule.multiplier)(m)


HOOKS = "_mup_multiplier_hooks"


def apply_multipliers(model: torch.nn.Module) -> list:
    """Register the forward multipliers as hooks; returns the handles (``.remove()``).
    Idempotent: a second call removes the hooks of the first before registering (so it
    also picks up changed widths). A model that applies its multipliers itself (the
    generated Model, ``applies_multipliers = True``) gets no hooks."""
    for handle in getattr(model, HOOKS, []):
        handle.remove()
    if getattr(model, "applies_multipliers", False):
        return []
    mults = multipliers(model)
    by_module: dict[str, dict[str, float]] = {}
    for name, rule in PARAMETERS.items():
        module, _, attr = rule.module_param.rpartition(".")
        by_module.setdefault(module, {})[attr] = mults[name]
    handles = []
    for module_name, attrs in by_module.items():
        w, b = attrs.get("weight", 1.0), attrs.get("bias", 1.0)
        if w == 1.0 and b == 1.0:
            continue
        module = model.get_submodule(module_name)
        if b == 1.0 and not isinstance(module, torch.nn.Embedding):
            handles.append(module.register_forward_pre_hook(_scale_input(w)))
        elif w == b or "bias" not in attrs:
            handles.append(module.register_forward_hook(_scale_output(w)))
        else:
            for handle in handles:
                handle.remove()
            raise ValueError(f"{module_name}: weight and bias multipliers differ "
                             f"({w} vs {b}); apply them in your forward")
    object.__setattr__(model, HOOKS, handles)
    return handles


def _scale_input(a: float):
    def hook(module, args):
        return (args[0] * a, *args[1:])
    return hook


def _scale_output(a: float):
    def hook(module, args, output):
        return output * a
    return hook
'''


def generate(p: Parametrization, *, names: dict[str, str] | None = None,
             model: bool = False, source: str = "", lion: bool = False) -> str:
    """The module's text; deterministic for the same inputs. A Muon setup also gets
    Muon/AdamW groups and step helpers, ``lion`` a plain-torch Lion (codegen_optim)."""
    graph = p.graph
    names = names if names is not None else default_names(graph)
    check_names(graph, names, "--names")
    opt_class = "SGD" if p.optimizer.value == "sgd" else "AdamW"
    base = {d: graph.dims[d].size for d in sorted(graph.dims) if graph.dims[d].infinite}
    text = HEADER.format(
        title=f"muP for `{doc_text(graph.name)}`: init, parameter groups and forward "
              "multipliers.",
        version=__version__, source=doc_text(source or graph.source),
        graph=doc_text(graph.name), optimizer=p.optimizer.value, variant=p.variant,
        variant_text=doc_text(p.variant), base_widths=repr(base),
        use=use_text(p, lion) or f"    opt = torch.optim.{opt_class}(param_groups(model, "
                                 "lr=...))")
    lines = [line for r in p.params.values() for line in _entry(p, r, names[r.name])]
    text += "\n".join(lines) + "\n}\n" + FUNCTIONS + optimizer_source(p, lion)
    constants = _constants(p)
    text += "\n".join(constants) + ("\n" if constants else "")
    if model:
        text += model_source(p, names)
    if max(len(line) for line in text.splitlines()) > 100:  # a long name, repr'd whole
        text += "\n# ruff: noqa: E501\n"
    return text
