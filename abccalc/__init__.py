"""abccalc: derive, tabulate, generate and verify abc-parametrizations (μP).

The package tree is the pipeline; data flows one way, each stage importing only earlier
ones:

* :mod:`abccalc.graph`: names, YAML, op registry, builder, spec reader → a frozen Graph;
* :mod:`abccalc.calculus`: exponent arithmetic, size propagation, the solver → Analysis;
* :mod:`abccalc.parametrization`: gauges, presets, rules, params files → Parametrization;
* :mod:`abccalc.emit`: tables, explanations, generated PyTorch code, output files;
* :mod:`abccalc.verify`: classification, symbolic check, coordinate check, verdict.

The public names below are imported on first use (PEP 562), so that ``import abccalc``
and ``abccalc --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abccalc.calculus.solver import Analysis, solve
    from abccalc.errors import AbcError
    from abccalc.exponents import Optimizer
    from abccalc.graph.builder import GraphBuilder
    from abccalc.graph.core import Graph
    from abccalc.graph.spec import load_graph
    from abccalc.parametrization.gauges import Parametrization, parametrize

_PUBLIC = {
    "AbcError": "abccalc.errors",
    "Analysis": "abccalc.calculus.solver",
    "Graph": "abccalc.graph.core",
    "GraphBuilder": "abccalc.graph.builder",
    "Optimizer": "abccalc.exponents",
    "Parametrization": "abccalc.parametrization.gauges",
    "load_graph": "abccalc.graph.spec",
    "parametrize": "abccalc.parametrization.gauges",
    "solve": "abccalc.calculus.solver",
}

__all__ = ["AbcError", "Analysis", "Graph", "GraphBuilder", "Optimizer", "Parametrization",
           "__version__", "load_graph", "parametrize", "solve"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("abccalc")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
    elif name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'abccalc' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
