"""Codegen's rule families (issue 13, point 6): a family's entry is made once per distinct
fingerprint and a pattern's matches are counted by starred form, with the very text that
making every parameter's entry and scanning every name for every pattern give."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codegen import GPT, ROOT

from abccalc.emit import codegen
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.emit.patterns import Starred, match_pattern, star
from abccalc.graph.spec import load_builder, load_graph

ARCHS = ROOT / "examples" / "archs"


def _each_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Codegen without sharing: every parameter's fingerprint is unlike any other's, so
    every parameter's entry is made from that parameter."""
    monkeypatch.setattr(codegen, "_fingerprints", lambda p: lambda r, part: [object()])


CASES = [
    (GPT, {"n_layer": "4"}, "adam", "table8", "mup"),
    (GPT, {"n_layer": "4"}, "sgd", "table3", "mup"),
    (GPT, {"n_layer": "4"}, "muon", "table8", "mup"),
    (GPT, {"n_layer": "4"}, "adam", "table8", "sp"),
    (GPT, {"n_layer": "4"}, "adam", "table9", "mup"),
    (GPT, {}, "adam", "table8", str(ROOT / "examples" / "params" / "mup_table8.yaml")),
    (ARCHS / "llama.yaml", {}, "adam", "table8", "mup"),
    (ARCHS / "vit.yaml", {}, "sgd", "table8", "mup"),
    (ARCHS / "mixer.yaml", {}, "adam", "unit", "mup"),
    (ARCHS / "gpt_tied.yaml", {}, "adam", "table8", "mup"),
]


@pytest.mark.parametrize(("spec", "values", "optimizer", "variant", "preset"), CASES)
def test_shared_entries_equal_each_parameters_own(monkeypatch, spec, values, optimizer,
                                                  variant, preset) -> None:
    """The text is the same when no entry is shared (the examples' families are whole:
    the solver copied a block's exponents to every iteration)."""
    p = load_parametrization(load_graph(spec, values), optimizer, variant, preset)
    shared = generate(p, model=True)
    _each_its_own(monkeypatch)
    assert generate(p, model=True) == shared


def test_depth_family_shared_as_made_one_by_one(monkeypatch) -> None:
    """With a depth axis (n_layer base 2: branch multipliers L^-1, CompleteP), too."""
    builder = load_builder(GPT, {"n_layer": "4"})
    builder.set_base("n_layer", 2)
    p = load_parametrization(builder.build(), "adam", "table8")
    shared = generate(p)
    assert "DEPTH" in shared
    _each_its_own(monkeypatch)
    assert generate(p) == shared


def test_a_block_whose_gradient_differs_gets_its_own_entry(monkeypatch) -> None:
    """If block 1's query projection saw a gradient n^1 larger than the other blocks',
    its Adam eps would scale like n^-(g+1) (eps = n^-grad, TP5 App. B.3): the fingerprint
    (which holds the node's gradient exponent) tells it from its family, so
    `block.*.W_q` is no longer one rule, and the text is what each parameter's own
    entry gives."""
    p = load_parametrization(load_graph(GPT, {"n_layer": "3"}), "adam", "table8")
    assert "'block.*.W_q': Rule(" in generate(p)
    p.analysis.sizes.g["block.1.q"] += 1
    text = generate(p)
    assert "'block.*.W_q': Rule(" not in text
    for i in range(3):
        assert f"'block.{i}.W_q': Rule(" in text
    _each_its_own(monkeypatch)
    assert generate(p) == text


SEGMENT = st.sampled_from(["a", "b", "ab", "0", "1", "12"])
NAME = st.lists(SEGMENT, min_size=1, max_size=4).map(".".join)


@given(st.lists(NAME, max_size=12), st.lists(st.sampled_from(["a", "b", "ab", "*"]),
                                             min_size=1, max_size=4).map(".".join))
def test_starred_counts_what_a_scan_counts(names: list[str], pattern: str) -> None:
    """A pattern of whole starred components matches as many distinct names as a scan
    finds, a name added twice counted once; ``add`` is :func:`star`."""
    index = Starred()
    for name in names:
        form, digits = star(name)
        assert index.add(name) == (form, ".".join(digits))
    assert index.matches(pattern) == sum(
        match_pattern(pattern, n) is not None for n in set(names))
