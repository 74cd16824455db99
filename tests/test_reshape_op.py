"""The ``reshape`` op unit (a change of dim names over the same coordinates), which the
importer emits where a sliced dim is split into heads or a size-1 part is squeezed away."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from test_generated_safety import load

from abccalc import parametrize, solve
from abccalc.emit.codegen import generate, load_parametrization
from abccalc.errors import AbcError
from abccalc.graph.spec import parse_builder

H = Fraction(1, 2)
HEADS = """
dims: {d_in: 3, d_out: 2, n_head: 4, width: {base: 16}, d_head: {times: 0.25, of: width}}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: h, op: linear, inputs: x, dims: [width], weight: W1}
  - {name: a, op: relu, inputs: h}
  - {name: r, op: reshape, inputs: a, dims: [n_head, d_head]}
  - {name: f, op: linear, inputs: r, in: [n_head, d_head], dims: [d_out], weight: W2}
  - {name: out, op: output, inputs: f}
"""


def abc(text: str, optimizer: str) -> dict[str, tuple]:
    p = parametrize(solve(parse_builder(text, "<test>").build(), optimizer), "table3")
    return {n: (r.a, r.b, r.c) for n, r in p.params.items()}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_reshape_changes_no_exponent(optimizer: str) -> None:
    """width → [n_head, d_head] keeps the coordinates, so s0, sd and g pass through: W1 is
    an input weight (TP5 Table 3: Adam (0, 0, 0), SGD (0, 0, −1)) and W2, with fan_in
    n_head·d_head (one infinite dim), an output weight ((0, 1, 1) under both), exactly
    as without the reshape (W2 reading [width])."""
    plain = HEADS.replace("  - {name: r, op: reshape, inputs: a, dims: [n_head, d_head]}\n",
                          "").replace("inputs: r, in: [n_head, d_head]", "inputs: a")
    got, ref = abc(HEADS, optimizer), abc(plain, optimizer)
    assert got == ref
    assert got["W1"] == ((0, 0, 0) if optimizer == "adam" else (0, 0, -1))
    assert got["W2"] == (0, 1, 1)


@pytest.mark.parametrize(("dims", "message"), [
    ("[n_head, d_in]", "as many infinite dims"),
    ("[n_head, width]", "same product of sizes"),
    ("[d_head, d_head]", "needs its output dims, each once"),
])
def test_reshape_rejects_other_coordinates(dims: str, message: str) -> None:
    text = HEADS.replace("dims: [n_head, d_head]}", f"dims: {dims}}}")
    with pytest.raises(AbcError, match=message):
        parse_builder(text, "f.yaml").build()


def test_generated_model_reshapes(tmp_path: Path) -> None:
    """The generated Model's reshape regroups width into (n_head, d_head) in order, at the
    base width and at twice it: the output equals W2 applied to the flat activation."""
    torch = pytest.importorskip("torch")
    g = parse_builder(HEADS, "heads").build()
    gen = load(generate(load_parametrization(g, "adam", "table8"), model=True), tmp_path,
               "gen_heads_reshape")
    torch.manual_seed(0)
    for widths in ({}, {"width": 32}):
        model = gen.Model(widths)
        acts: dict = {}
        x = torch.randn(2, 3)
        y = model(x=x, capture=acts)
        width = 16 if not widths else 32
        assert tuple(acts["r"].shape) == (2, 4, width // 4)
        torch.testing.assert_close(acts["r"].reshape(2, width), acts["a"])
        assert tuple(y.shape) == (2, 2)
