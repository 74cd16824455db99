"""abccalc: derive, tabulate, generate and verify abc-parametrizations (μP).

The package tree is the pipeline; data flows one way, each stage importing only earlier
ones:

* :mod:`abccalc.graph`: names, YAML, op registry, builder, spec reader → a frozen Graph;
* :mod:`abccalc.calculus`: exponent arithmetic, size propagation, the solver → Analysis;
* :mod:`abccalc.parametrization`: gauges, presets, rules, params files → Parametrization;
* :mod:`abccalc.emit`: tables, explanations, generated PyTorch code, output files;
* :mod:`abccalc.verify`: classification, symbolic check, coordinate check, verdict.
"""

from importlib.metadata import PackageNotFoundError, version

from abccalc.calculus.solver import Analysis, solve
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.graph.builder import GraphBuilder
from abccalc.graph.core import Graph
from abccalc.graph.spec import load_graph
from abccalc.parametrization.gauges import Parametrization, parametrize

try:
    __version__ = version("abccalc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["AbcError", "Analysis", "Graph", "GraphBuilder", "Optimizer", "Parametrization",
           "__version__", "load_graph", "parametrize", "solve"]
