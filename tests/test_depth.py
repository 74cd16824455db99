"""Depth as a second infinite axis (issue 16): the spec, the branches, the depth exponents,
Adam ε and weight decay per tensor, the JSON fields, the golden depth tables, explain and
check. Every expected exponent is derived by hand in a comment (docs/depth.md)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abccalc.calculus.depth import parse_alpha, solve_depth
from abccalc.calculus.solver import solve
from abccalc.emit import goldens, goldens_depth
from abccalc.emit.explain import explain
from abccalc.emit.render import json_obj
from abccalc.errors import AbcError
from abccalc.exponents import HALF, ONE, Optimizer
from abccalc.graph.spec import load_builder, parse_builder
from abccalc.parametrization.gauges import parametrize
from abccalc.parametrization.hyper import hyper
from abccalc.parametrization.paramsfile import params_from_dict
from abccalc.verify.check import check

ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
MLP = ROOT / "examples" / "mlp.yaml"
TABLES = ROOT / "tables"
F = Fraction


def gpt(depth: int = 4, base: int | None = 2):
    b = load_builder(GPT, {"n_layer": str(depth)})
    if base is not None:
        b.set_base("n_layer", str(base))
    return b.build()


def param(opt: Optimizer, alpha, variant: str = "table8", depth: int = 4):
    return parametrize(solve(gpt(depth), opt), variant, depth_alpha=alpha)


# -- the spec -------------------------------------------------------------------------------
def test_infinite_value_in_the_spec_is_a_depth_axis() -> None:
    text = GPT.read_text().replace("n_layer: 2", "n_layer: {base: 2}")
    g = parse_builder(text, "gpt.yaml").build()
    assert g.depth == (("block", "n_layer", 2, "emb", "r2"),)
    assert g.values["n_layer"] == 2  # built at its base until --set
    b = parse_builder(text, "gpt.yaml")
    b.set("n_layer", "8")
    assert b.build().depth[0][2] == 2 and b.build().values["n_layer"] == 8


@pytest.mark.parametrize("value, why", [
    ("{base: 0}", "0 is not an integer in [1, 2^40] (the base of an infinite repeat count)"),
    ("{base: x}", "'x' is not an integer in [1, 2^40]"),
    ("{size: 2}", "is not an integer or {base: N}"),
    ("{base: 2, size: 3}", "is not an integer or {base: N}"),
])
def test_bad_infinite_value_is_one_clean_error(value: str, why: str) -> None:
    text = GPT.read_text().replace("n_layer: 2", f"n_layer: {value}")
    with pytest.raises(AbcError, match="value 'n_layer'") as e:
        parse_builder(text, "gpt.yaml").build()
    assert why in str(e.value) and "\n" not in str(e.value)


def test_base_on_an_unknown_value_names_it() -> None:
    with pytest.raises(AbcError, match="unknown value 'depth'"):
        load_builder(GPT).set_base("depth", "2")


def test_a_block_without_residual_adds_cannot_be_a_depth_axis() -> None:
    # the block's output r2 reads proj only: no stream runs through it
    text = GPT.read_text().replace("n_layer: 2", "n_layer: {base: 2}").replace(
        "{name: r2, op: add, inputs: [r1, proj]}", "{name: r2, op: gelu, inputs: proj}")
    g = parse_builder(text, "gpt.yaml").build()
    with pytest.raises(AbcError, match=r"'block' has an infinite count, but its output "
                                       r"'block\.0\.r2' is not a residual sum"):
        solve_depth(g, Optimizer.ADAM)


@pytest.mark.parametrize("text", ["0.4", "1.5", "2", "-1", "1e0", "abc", "1/0"])
def test_depth_alpha_outside_half_to_one_is_refused(text: str) -> None:
    with pytest.raises(AbcError, match="--depth-alpha"):
        parse_alpha(text)


# -- branches and depth exponents ----------------------------------------------------------
def test_branches_are_the_residual_adds_of_every_iteration() -> None:
    d = solve_depth(gpt(4), Optimizer.ADAM, ONE)
    assert sorted(d.branches) == [f"block.{i}.r{k}" for i in range(4) for k in (1, 2)]
    assert set(d.stream.values()) == {0}  # x (resp. r1) is the first input of each add
    assert d.params["block.2.W_fc"].branch == "block.2.r2"
    assert d.params["block.2.ln1_g"].branch == "block.2.r1"
    for outside in ("wte", "wpe", "ln_f_g", "ln_f_b", "W_unemb"):
        assert d.params[outside].branch is None


@pytest.mark.parametrize("opt, alpha, c_in", [
    # Adam: Δf_l must be L^(α−1) so that Δx^L = Σ_l L^-α Δf_l (L correlated terms) is Θ(1);
    # Adam's update is L^-c whatever the gradient, so c = 1 − α (CompleteP: LR × m_L^(α−1))
    (Optimizer.ADAM, ONE, F(0)),
    (Optimizer.ADAM, HALF, F(1, 2)),
    (Optimizer.ADAM, F(3, 4), F(1, 4)),
    # SGD: the gradient of a branch weight carries the multiplier L^-α, so the update is
    # L^(-c−α) and c = 1 − 2α (TP6 Table 1: η at α = 1/2; ODE scaling α = 1: LR × L)
    (Optimizer.SGD, HALF, F(0)),
    (Optimizer.SGD, ONE, F(-1)),
])
def test_depth_lr_exponent_hand_derived(opt, alpha, c_in) -> None:
    d = solve_depth(gpt(4), opt, alpha)
    for name in ("block.1.W_q", "block.1.b_o", "block.1.ln2_g", "block.3.W_proj"):
        r = d.params[name]
        # init: a branch reads x^(l−1), Θ(L^(1/2−α)) ≤ Θ(1) for α ≥ 1/2: no depth factor;
        # the depth factor of the branch lives in its multiplier (gauge a = 0)
        assert (r.a, r.b, r.c) == (0, 0, c_in), name
    for name in ("wte", "ln_f_g", "W_unemb"):  # ∂x^L/∂x^0 = Θ(1): no depth factor outside
        assert (d.params[name].a, d.params[name].b, d.params[name].c) == (0, 0, 0), name


def test_presets_and_graphs_without_depth_have_zero_depth_exponents() -> None:
    p = parametrize(solve(load_builder(GPT).build(), Optimizer.ADAM), "table8")
    assert not p.depth.active and not p.depth.branches
    assert all((r.a, r.b, r.c) == (0, 0, 0) for r in p.depth.params.values())


# -- Adam ε and weight decay ----------------------------------------------------------------
@pytest.mark.parametrize("variant, expected", [
    # ε ∝ typical entry of ∂L/∂w = n^-a·g(h)·x. In μP ∂L/∂h is Θ(1/n) at every hidden or
    # input-layer preactivation (g = −1) and Θ(1) at the finite output (g = 0):
    #   W1 (input, x finite Θ(1)): 1/n → eps 1; b1, b2 (x = 1): 1/n → eps 1;
    #   W2 (hidden, x Θ(1)): 1/n → eps 1;
    #   W3 Table 3 (a = 0, g = 0, x Θ(1)): Θ(1) → eps 0; Table 8 (a = 1): 1/n → eps 1.
    # TP5 B.3's "like 1/fan_in" gives eps 0 for W1, b1, b2 (finite fan_in): wrong.
    ("table3", {"W1": 1, "b1": 1, "W2": 1, "b2": 1, "W3": 0}),
    ("table8", {"W1": 1, "b1": 1, "W2": 1, "b2": 1, "W3": 1}),
])
def test_eps_width_exponents_mlp(variant: str, expected: dict) -> None:
    p = parametrize(solve(load_builder(MLP).build(), Optimizer.ADAM), variant)
    assert {n: hyper(p, r).eps for n, r in p.params.items()} == expected


def test_eps_in_depth_only_inside_branches() -> None:
    p = param(Optimizer.ADAM, HALF)
    for name, r in p.params.items():
        h = hyper(p, r)
        # a branch tensor's gradient passes through the multiplier L^-α: eps_depth = α
        assert h.eps_depth == (HALF if r.name.startswith("block.") else 0), name
        assert h.eps == 1, name  # Table 8 gauge: every gradient entry is Θ(1/n) (above)


def test_sgd_has_no_eps() -> None:
    p = param(Optimizer.SGD, HALF)
    assert {(hyper(p, r).eps, hyper(p, r).eps_depth) for r in p.params.values()} == {(0, 0)}


@pytest.mark.parametrize("alpha", [HALF, ONE])
def test_weight_decay_keeps_the_timescale(alpha) -> None:
    # torch AdamW decays w by lr·λ per step: τ = 1/(lr·λ) fixed ⇔ λ ∝ 1/lr, so
    # (wd, wd_depth) = (−c, −c_depth): hidden c = 1 (Table 8) → λ·m_N; in a branch
    # c_depth = 1 − α → λ·m_L^(1−α); the readout and embeddings (c = 0, outside) → λ
    p = param(Optimizer.ADAM, alpha)
    w = hyper(p, p.params["block.1.W_fc"])
    assert (w.wd, w.wd_depth) == (-1, alpha - 1)
    b = hyper(p, p.params["block.1.b_fc"])
    assert (b.wd, b.wd_depth) == (0, alpha - 1)
    for name in ("wte", "W_unemb", "ln_f_g"):
        h = hyper(p, p.params[name])
        assert (h.wd, h.wd_depth) == (0, 0), name
    i = hyper(p, p.params["block.1.W_fc"], decay="independent")  # τ = 1/λ: no scaling
    assert (i.wd, i.wd_depth) == (0, 0)


# -- JSON -----------------------------------------------------------------------------------
NEW = ("a_depth", "b_depth", "c_depth", "eps", "eps_depth", "wd", "wd_depth")


def test_json_fields_without_depth_are_zero_in_depth() -> None:
    p = parametrize(solve(load_builder(GPT).build(), Optimizer.ADAM), "table8")
    obj = json_obj(p)
    for row in obj["parameters"]:
        assert all(row[k] == "0" for k in ("a_depth", "b_depth", "c_depth", "eps_depth",
                                           "wd_depth")), row["name"]
    assert {c["depth_exponent"] for c in obj["constants"]} == {"0"}
    assert not any(c["name"].endswith((".r1", ".r2")) for c in obj["constants"])


def test_json_with_depth_keeps_every_existing_field() -> None:
    flat = json_obj(parametrize(solve(load_builder(GPT, {"n_layer": "4"}).build(),
                                      Optimizer.ADAM), "table8"))
    deep = json_obj(param(Optimizer.ADAM, ONE))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in NEW} for r in rows]  # noqa: E731
    assert strip(flat["parameters"]) == strip(deep["parameters"])
    by = {r["name"]: r for r in deep["parameters"]}
    # hidden weight in a branch at α = 1: ε = ε_base·n^-1·L^-1, λ = λ_base·n (no depth factor)
    assert {k: by["block.0.W_q"][k] for k in NEW} == {
        "a_depth": "0", "b_depth": "0", "c_depth": "0", "eps": "1", "eps_depth": "1",
        "wd": "-1", "wd_depth": "0"}
    branches = [c for c in deep["constants"] if c["depth_exponent"] != "0"]
    assert [c["name"] for c in branches] == [f"block.{i}.r{k}" for i in range(4)
                                             for k in (1, 2)]
    assert {(c["exponent"], c["depth_exponent"], c["multiplier"]) for c in branches} == {
        ("0", "1", "1/m_L")}


# -- golden tables, cell by cell -----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(goldens_depth.TABLES))
def test_depth_table_cell_by_cell(name: str) -> None:
    paper = goldens.read_rows(TABLES / f"{name}.csv")
    derived = goldens_depth.TABLES[name][1]()
    header = goldens_depth.TABLES[name][0].split(",")
    assert [r[:2] for r in derived] == [r[:2] for r in paper]
    for got, want in zip(derived, paper, strict=True):
        for col, (g, w) in enumerate(zip(got, want, strict=True)):
            known = (name, tuple(got[:2]), header[col]) in goldens_depth.DISAGREE
            assert (g != w) == known, (name, got, want, header[col])


def test_the_one_disagreement_is_completep_weight_decay_at_half() -> None:
    # derived: λ ∝ 1/LR = m_N·m_L^(1/2) at α = 1/2; CompleteP's table keeps λ·m_N
    rows = {tuple(r[:2]): r[2:] for r in goldens_depth.completep_table1()}
    assert rows[("1/2", "hidden_wd")] == ["m_N", "m_L^(1/2)"]
    paper = {tuple(r[:2]): r[2:] for r in goldens.read_rows(TABLES / "completep_table1.csv")}
    assert paper[("1/2", "hidden_wd")] == ["m_N", "1"]


def test_completedp_disagreements_are_the_final_norm_eps_and_decay_at_half() -> None:
    # derived: the final LayerNorm's gradient is Θ(1/n) (below), so ε ∝ m_N^-1 in every
    # column; Complete(d)P's "Output weights/biases/norms" row has ×1. At α = 1/2 a tensor
    # in a branch has LR × m_L^(-1/2), so a fixed timescale needs λ × m_L^(1/2); the paper's
    # decay rows have no depth factor.
    rows = {tuple(r[:2]): r[2:] for r in goldens_depth.completedp_table1()}
    paper = {tuple(r[:2]): r[2:] for r in goldens.read_rows(TABLES / "completedp_table1.csv")}
    for col in ("mup", "1/2", "1"):
        assert rows[(col, "eps_output_norms")][0] == "1/m_N"
        assert paper[(col, "eps_output_norms")][0] == "1"
        assert rows[(col, "eps_output_weights")] == paper[(col, "eps_output_weights")] == \
            ["1", "1"]  # the unembedding itself: ε constant in Table 3's gauge
    for row in ("wd_hidden", "wd_rest_in_branches"):
        assert rows[("1/2", row)][1] == "m_L^(1/2)" and paper[("1/2", row)][1] == "1"
        assert rows[("1", row)][1] == paper[("1", row)][1] == "1"


def test_qk_norm_eps_has_a_width_factor_only_when_d_head_grows() -> None:
    # QK-LN gains and biases live on d_head. Heads growing, d_head fixed: no width dim, the
    # ε of Complete(d)P's "QK norms" row, m_L^-α. d_head growing (the depth sweep's spec):
    # a vector over a width dim whose gradient is Θ(1/n) like every input-like tensor's.
    for spec, eps in ((ROOT / "examples" / "archs" / "gpt_qknorm_heads.yaml", 0),
                      (ROOT / "benchmarks" / "gpt_qknorm.yaml", 1)):
        b = load_builder(spec, {"n_layer": "4"})
        b.set_base("n_layer", "2")
        p = parametrize(solve(b.build(), Optimizer.ADAM), "table3", depth_alpha=HALF)
        for name in ("lnq_g", "lnq_b", "lnk_g", "lnk_b"):
            h = hyper(p, p.params[f"block.1.{name}"])
            assert (h.eps, h.eps_depth) == (eps, HALF), (spec.name, name)


def test_final_norm_gradient_shrinks_like_one_over_width(tmp_path: Path) -> None:
    """Measured: in the generated Table 3 GPT (Adam, 5 steps), the RMS gradient of the final
    LayerNorm's gain and bias falls like width^-1 (the derived ε exponent 1), the
    unembedding's stays constant (ε exponent 0). Slopes on d_model 64, 128, 256."""
    import torch
    import torch.nn.functional as tf
    from test_codegen import load_module

    from abccalc.emit.codegen import generate, load_parametrization

    text = generate(load_parametrization(gpt(2, None), "adam", "table3"), model=True)
    gen = load_module(text, tmp_path, "gen_final_norm")
    names = ("ln_f.weight", "ln_f.bias", "logits.weight")
    widths = (64, 128, 256)
    rms: dict[str, list[float]] = {n: [] for n in names}
    for width in widths:
        acc = dict.fromkeys(names, 0.0)
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = gen.Model({"d_model": width, "d_head": width // 4})
            gen.init_(model)
            tokens = torch.randint(0, 256, (8, 64))
            positions = torch.arange(64).expand(8, 64)
            opt = torch.optim.Adam(gen.param_groups(model, 1e-2, eps=1e-12))
            for step in range(6):
                logits = model(tokens=tokens, positions=positions)
                loss = tf.cross_entropy(logits.flatten(0, 1), tokens.roll(-1, 1).flatten())
                opt.zero_grad()
                loss.backward()
                if step == 5:
                    grads = dict(model.named_parameters())
                    for n in names:
                        acc[n] += grads[n].grad.pow(2).mean().sqrt().item()
                opt.step()
        for n in names:
            rms[n].append(acc[n])
    xs = [math.log(w) for w in widths]
    slope = {n: (math.log(v[-1]) - math.log(v[0])) / (xs[-1] - xs[0]) for n, v in rms.items()}
    assert -1.3 < slope["ln_f.weight"] < -0.7, slope
    assert -1.3 < slope["ln_f.bias"] < -0.7, slope
    assert abs(slope["logits.weight"]) < 0.2, slope


@pytest.mark.parametrize("name", sorted(goldens_depth.TABLES))
def test_committed_derived_depth_tables_have_not_drifted(name: str) -> None:
    assert (TABLES / "derived" / f"{name}.csv").read_text() == goldens.render(name)


# -- explain and check ------------------------------------------------------------------------
def test_explain_names_the_constraint_of_each_depth_exponent() -> None:
    text = explain(param(Optimizer.ADAM, HALF), "block.1.W_proj")
    assert "depth 1a + c of block.1.W_proj = 1/2" in text
    assert "TP6 Claim 7.2" in text and "a + c = 1 − α = 1/2" in text
    assert "Adam ε: eps = 1, eps_depth = 1/2" in text
    branch = explain(param(Optimizer.ADAM, ONE), "block.1.r2")
    assert "multiplier L^-1" in branch and "non-lazy" in branch


GPT2 = {"parameters": {
    "*.W_proj": {"init_var": "1/(fan_in*2*n_layer)", "lr": "1/fan_in"},
    "@hidden": {"init_var": "1/fan_in", "lr": "1/fan_in"},
    "@output": {"init_var": 1, "multiplier": "1/fan_in", "lr": 1},
    "*": {"init_var": 1, "lr": 1}}, "constants": {"*scores": "1/d_head"}}


def test_check_flags_gpt2_init_with_a_branch_multiplier() -> None:
    g = gpt(4)
    res = check(g, "adam", params_from_dict(GPT2, g, "gpt2.yaml"))
    assert len(res.depth) == 4 and not res.ok
    assert all("counted twice" in x and "drop n_layer from its init_var" in x
               for x in res.depth)
    assert res.to_dict()["depth"] == res.depth
    fixed = json.loads(json.dumps(GPT2))
    fixed["parameters"]["*.W_proj"]["init_var"] = "1/fan_in"
    assert check(g, "adam", params_from_dict(fixed, g, "mup.yaml")).depth == []


def test_table_prints_depth_next_to_width(run) -> None:
    code, out, err = run("table", str(GPT), "--base", "n_layer=2", "--set", "n_layer=8",
                         "--depth-alpha", "1/2", "--form", "ratio")
    assert code == 0, err
    assert "### Depth: L = `n_layer` (base 2, now 8), α = 1/2" in out
    # hidden weight in a branch at α = 1/2 (§3-§5 of docs/depth.md)
    assert ("| block.*.W_fc | block.*.r2 | 0 | 0 | 1/2 | η·1/m_N·m_L^(-1/2) | "
            "ε·1/m_N·m_L^(-1/2) | λ·m_N·m_L^(1/2) |") in out
    assert "| W_unemb | — | 0 | 0 | 0 | η·1 | ε·1/m_N | λ·1 |" in out
    code, flat, _ = run("table", str(GPT))
    assert code == 0 and "### Depth" not in flat


_SOLVED = {}


@settings(max_examples=25, deadline=None)
@given(num=st.integers(1, 12), opt=st.sampled_from([Optimizer.ADAM, Optimizer.SGD]))
def test_depth_exponents_follow_alpha(num: int, opt: Optimizer) -> None:
    # α = 1/2 + num/24 ∈ (1/2, 1]: for every tensor in a branch the update condition
    # k·a + c = 1 − α (Adam) or 1 − 2α (SGD) holds, ε follows L^-α (Adam), and λ keeps
    # lr·λ fixed (wd_depth = −c_depth); outside the branches everything is 0
    alpha = HALF + F(num, 24)
    if opt not in _SOLVED:
        _SOLVED[opt] = solve(gpt(3), opt)
    p = parametrize(_SOLVED[opt], "table8", depth_alpha=alpha)
    for r in p.params.values():
        h = hyper(p, r)
        inside = h.branch is not None
        c = (1 - alpha if opt is Optimizer.ADAM else 1 - 2 * alpha) if inside else 0
        assert (h.a_depth, h.b_depth, h.c_depth, h.wd_depth) == (0, 0, c, -c), r.name
        assert h.eps_depth == (alpha if inside and opt is Optimizer.ADAM else 0), r.name
    assert set(p.depth.branches.values()) == {alpha}
