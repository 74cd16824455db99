"""Every command's pipeline on random valid graphs (issue 12, "Done when").

For each random graph (tests/random_graphs.py) and both optimizers: solve → every variant
→ table JSON → codegen → import of the generated module → its Model at two widths → one
forward. Nothing may raise but AbcError, and the JSON and the generated text are the same
when the graph's dims and nodes are declared in reverse, and in another process.

The CI profile runs 60 examples; ``ABCCALC_HYPOTHESIS_EXAMPLES=500`` runs 500.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from abccalc.calculus.solver import solve
from abccalc.emit.codegen import generate
from abccalc.emit.render import json_text
from abccalc.errors import AbcError
from abccalc.exponents import Optimizer
from abccalc.graph.core import Graph
from abccalc.parametrization.gauges import VARIANTS, parametrize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_graphs import SeededDraw, build, random_spec

torch = pytest.importorskip("torch")

with warnings.catch_warnings():  # hypothesis imports libcst to report a failure, which
    warnings.simplefilter("ignore", DeprecationWarning)  # warns under filterwarnings=error
    try:
        importlib.import_module("libcst.metadata")
    except ImportError:
        pass

EXAMPLES = int(os.environ.get("ABCCALC_HYPOTHESIS_EXAMPLES", "60"))


class HypothesisDraw:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


def _run_model(text: str, graph: Graph) -> None:
    """Import the generated module, build its Model at the base widths and at twice the
    first independent infinite dim, init, take parameter groups, and run one forward."""
    module = types.ModuleType("abccalc_random_generated")
    exec(compile(text, module.__name__, "exec"), module.__dict__)
    first = next(d for d in sorted(graph.dims) if graph.dims[d].infinite
                 and graph.dims[d].of is None)
    for widths in ({}, {first: 2 * graph.dims[first].size}):
        torch.manual_seed(0)
        model = module.Model(widths)
        module.init_(model)
        module.param_groups(model, 1e-3, eps=1e-8)
        feed = {}
        for name in module.INPUTS:
            node = graph.node[name]
            shape = (2, *(model.sizes[d] for d in node.dims))
            vocab = [graph.node[c].vocab for c in graph.consumers[name]
                     if graph.node[c].op == "embedding"]
            feed[name] = (torch.randint(0, model.sizes[vocab[0]], shape) if vocab
                          else torch.randn(shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an exploding -oo rule may overflow; no error
            out = model(**feed)
        assert out.shape[0] == 2


def pipeline(graph: Graph, run_model: bool = True) -> dict[str, str]:
    """(optimizer, variant) → its JSON table and generated module, or the AbcError."""
    out: dict[str, str] = {}
    for opt in (Optimizer.SGD, Optimizer.ADAM):
        try:
            analysis = solve(graph, opt)
        except AbcError as e:
            out[opt.value] = f"AbcError: {e}"
            continue
        for variant in VARIANTS:
            key = f"{opt.value}/{variant}"
            try:
                p = parametrize(analysis, variant)
                table = json_text(p)
                json.loads(table)
                text = generate(p, model=True, source="random.yaml")
            except AbcError as e:
                out[key] = f"AbcError: {e}"
                continue
            out[key] = table + "\n" + text
            if run_model:
                _run_model(text, graph)
    return out


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(st.data())
def test_random_graphs(data: st.DataObject) -> None:
    spec = random_spec(HypothesisDraw(data))
    note(json.dumps(spec))
    forward = pipeline(build(spec))
    assert pipeline(build(spec, reverse=True), run_model=False) == forward


def digest(seeds: range) -> str:
    """A hash of every output for the seeded graphs (a crash hashes as its type: this
    checks determinism; test_random_graphs checks for crashes)."""
    h = hashlib.sha256()
    for seed in seeds:
        try:
            out = sorted(pipeline(build(random_spec(SeededDraw(seed))), False).items())
        except Exception as e:
            out = [("crash", type(e).__name__)]
        for key, text in out:
            h.update(key.encode() + text.encode())
    return h.hexdigest()


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_random_graphs import digest
print(digest(range(8)))
"""


def test_byte_identical_across_processes() -> None:
    """Eight seeded graphs, two processes with different string hash seeds: the same
    bytes (set or dict order must not leak into any output)."""
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(tests).parent)
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": root}
        done = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=tests)], env=env,
                              capture_output=True, text=True, check=True)
        digests.append(done.stdout.strip())
    assert digests[0] == digests[1] == digest(range(8))
