"""The solver's derivation trace, written only when read (``Analysis.trace``): every step
(key, what, rule text, value, deps, in order) is the one the solver wrote eagerly before,
whose digests ``tests/golden/trace_digests.json`` holds (made by ``python
tests/test_trace_lazy.py``, before the trace became lazy), and table and codegen never
write it."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from pathlib import Path

import pytest

from abccalc.calculus.solver import solve
from abccalc.emit.codegen import generate
from abccalc.emit.render import markdown
from abccalc.graph.spec import load_graph, parse_builder
from abccalc.parametrization.gauges import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sgd_paths import DEAD, TIED_DEAD

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "trace_digests.json"
GRAPHS = {
    "gpt2": lambda: load_graph(ROOT / "examples/gpt.yaml", {"n_layer": "2"}),
    "gpt5": lambda: load_graph(ROOT / "examples/gpt.yaml", {"n_layer": "5"}),
    "llama": lambda: load_graph(ROOT / "examples/archs/llama.yaml"),
    "mixer": lambda: load_graph(ROOT / "examples/archs/mixer.yaml"),
    "heads": lambda: load_graph(ROOT / "examples/archs/attention_heads.yaml"),
    "dead": lambda: parse_builder(DEAD, "dead.yaml").build(),
    "tied_dead": lambda: parse_builder(TIED_DEAD, "tied.yaml").build(),
}
OPTIMIZERS = ("adam", "sgd", "muon", "lamb")


def _digest(name: str, opt: str) -> str:
    """The trace of ``name`` under ``opt`` as text (every field, in order), hashed."""
    trace = solve(GRAPHS[name](), opt).trace
    text = "\n".join(f"{k}\t{s.what}\t{s.rule}\t{s.value}\t{s.deps}" for k, s in trace.items())
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_trace_is_the_one_written_eagerly(name: str, opt: str) -> None:
    assert _digest(name, opt) == json.loads(GOLDEN.read_text())[f"{name} {opt}"]


def test_table_and_codegen_never_write_the_trace() -> None:
    a = solve(GRAPHS["gpt2"](), "adam")
    p = parametrize(a, "table8")
    markdown(p)
    generate(p)
    assert "trace" not in a.__dict__  # a cached property: absent until read
    assert a.trace["lr block.1.W_q@block.1.q"].deps == ()
    assert "trace" in a.__dict__


def test_an_analysis_pickles_with_its_unwritten_trace() -> None:
    a = solve(GRAPHS["tied_dead"](), "sgd")
    b = pickle.loads(pickle.dumps(a))
    assert list(b.trace.items()) == list(a.trace.items())


if __name__ == "__main__":  # write the golden digests (only where the solver is trusted)
    GOLDEN.write_text(json.dumps({f"{n} {o}": _digest(n, o) for n in sorted(GRAPHS)
                                  for o in OPTIMIZERS}, indent=1) + "\n")
