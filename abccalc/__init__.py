"""abccalc: derive, tabulate, generate and verify abc-parametrizations (μP).

Pipeline: graph (:mod:`abccalc.spec`, :mod:`abccalc.builder`) → analysis
(:func:`abccalc.solver.solve`) → parametrization (:func:`abccalc.parametrization.parametrize`)
→ tables (:mod:`abccalc.render`).
"""

from importlib.metadata import PackageNotFoundError, version

from abccalc.builder import GraphBuilder
from abccalc.calculus import Optimizer
from abccalc.errors import AbcError
from abccalc.graph import Graph
from abccalc.parametrization import Parametrization, parametrize
from abccalc.solver import Analysis, solve
from abccalc.spec import load_graph

try:
    __version__ = version("abccalc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["AbcError", "Analysis", "Graph", "GraphBuilder", "Optimizer", "Parametrization",
           "__version__", "load_graph", "parametrize", "solve"]
