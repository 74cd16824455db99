"""Issue 16, point 6: ``--batch BASE:TARGET --tokens BASE:TARGET`` on ``table`` and
``codegen``, the papers' SDE-based rules (docs/batch.md), checked against values derived
by hand, in the JSON, in the generated module on a small model, and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abccalc.emit.codegen import generate, load_parametrization
from abccalc.errors import AbcError
from abccalc.graph.spec import load_graph
from abccalc.parametrization.batch import BatchTransfer, Pair, parse_pair, transfer

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")
GPT = str(ROOT / "examples" / "gpt.yaml")
SIZES = st.integers(1, 10 ** 6)
TITLE = "### Batch size and training duration (SDE rules, not the width/depth calculus)"


def exact(t: BatchTransfer, key: str) -> str:
    return t.exact(t.factor(key))


# -- the rules, by hand --------------------------------------------------------------------

def test_adam_hand_derived() -> None:
    """B 256 → 1024 (κ = 4), D 1e9 → 4e9 (ρ = 4): lr × 4^½ = 2, β2 0.95 → 1 − 4·0.05 =
    0.8, β1 0.9 → 0.6, ε × 4^−½ = ½, AdamW λ (torch) × 4^½/4 = ½, independent λ × 4/4."""
    t = transfer("adamw", "256:1024", "1e9:4e9", "0.9,0.95")
    assert (t.kappa, t.rho, t.steps) == (4, 4, 1)
    assert exact(t, "lr") == "2"
    assert exact(t, "one_minus_beta1") == exact(t, "one_minus_beta2") == "4"
    assert exact(t, "eps") == "1/2"
    assert exact(t, "weight_decay") == "1/2"
    assert exact(t, "independent_weight_decay") == "1"
    assert t.target_betas() == (Fraction(3, 5), Fraction(4, 5))


def test_adam_tokens_only_and_batch_only() -> None:
    """Tokens alone (κ = 1): only λ moves, × 1/ρ; batch alone (ρ = 1): λ × κ^½."""
    t = transfer("adam", None, "1e9:4e9")
    assert (t.kappa, t.rho) == (1, 4)
    assert [exact(t, k) for k in ("lr", "eps", "weight_decay", "independent_weight_decay")] \
        == ["1", "1", "1/4", "1/4"]
    assert t.target_betas() == (Fraction(9, 10), Fraction(999, 1000))  # torch's defaults
    t = transfer("adam", "100:400", None)
    assert exact(t, "weight_decay") == "2" and exact(t, "independent_weight_decay") == "4"


def test_irrational_factors_are_exact() -> None:
    """κ = 2: lr × sqrt(2), ε × sqrt(1/2), written exactly, with a float beside."""
    t = transfer("adam", "512:1024", None)
    assert exact(t, "lr") == "sqrt(2)" and exact(t, "eps") == "sqrt(1/2)"
    assert t.value(t.factor("lr")) == pytest.approx(2 ** 0.5)
    assert t.value(t.factor("eps")) == pytest.approx(2 ** -0.5)
    t = transfer("adam", "1024:512", "3:1")  # shrinking the batch: κ = ½
    assert exact(t, "lr") == "sqrt(1/2)" and exact(t, "weight_decay") == "sqrt(9/2)"


def test_sgd_hand_derived() -> None:
    """The linear scaling rule: lr × κ; λ × 1/ρ (torch's lr·λ), × κ/ρ (independent)."""
    t = transfer("sgd", "256:1024", "1e9:4e9")
    assert [exact(t, k) for k in ("lr", "weight_decay", "independent_weight_decay")] == \
        ["4", "1/4", "1"]
    assert t.betas is None and t.target_betas() is None
    assert {f.source for f in t.factors} == {"goyal2017", "abccalc"}


def test_completedp_hand_derived() -> None:
    """Complete(d)P Table 1 (AdamW): lr × √(m_B/m_D), 1 − β × m_B/m_D, ε × √(m_D/m_B),
    λ × √(m_B/m_D). Batch alone, κ = 4: lr 2, ε ½, λ 2, β 0.9 → 1 − 4·0.1 = 0.6, 0.95 →
    0.8 (the square-root rule's own values: the sets agree at ρ = 1). Tokens alone, ρ =
    4: lr ½, ε 2, λ ½ (torch) and ¼ (independent: τ = B/(λ·D)), β 0.9 → 1 − 0.1/4 = 0.975,
    0.95 → 0.9875. Both ×4: nothing moves, as the step count does not."""
    t = transfer("adamw", "256:1024", None, "0.9,0.95", rule="completedp")
    assert [exact(t, k) for k in ("lr", "eps", "weight_decay", "independent_weight_decay",
                                  "one_minus_beta1")] == ["2", "1/2", "2", "4", "4"]
    assert t.target_betas() == (Fraction(3, 5), Fraction(4, 5))
    t = transfer("adamw", None, "1e9:4e9", "0.9,0.95", rule="completedp")
    assert [exact(t, k) for k in ("lr", "eps", "weight_decay", "independent_weight_decay",
                                  "one_minus_beta1")] == ["1/2", "2", "1/2", "1/4", "1/4"]
    assert t.target_betas() == (Fraction(39, 40), Fraction(79, 80))
    assert t.steps == 4
    t = transfer("adamw", "256:1024", "1e9:4e9", rule="completedp")
    assert all(t.exact(f) == "1" for f in t.factors) and t.target_betas() == t.betas
    assert {f.source for f in t.factors} == {"completedp2025", "powerlines2025"}


@given(SIZES, SIZES, SIZES, SIZES)
def test_completedp_keeps_the_adamw_timescale(b0: int, b1: int, d0: int, d1: int) -> None:
    """Complete(d)P's lr and λ (torch's lr·λ) move lr·λ by κ/ρ, so τ = B/(lr·λ·D) stays
    fixed, as the default rules' do; at ρ = 1 the two rule sets are the same."""
    for rule in ("sde", "completedp"):
        t = BatchTransfer("adam", Pair(b0, b1), Pair(d0, d1), None, rule)
        assert t.square(t.factor("lr")) * t.square(t.factor("weight_decay")) == \
            (t.kappa / t.rho) ** 2
    same, sde = (BatchTransfer("adam", Pair(b0, b1), Pair(1, 1), None, rule)
                 for rule in ("completedp", "sde"))
    assert [same.exact(f) for f in same.factors] == [sde.exact(f) for f in sde.factors]


def test_completedp_refuses_sgd_and_needs_the_pairs() -> None:
    with pytest.raises(AbcError, match="Complete\\(d\\)P's Table 1 gives rules for AdamW"):
        transfer("sgd", "1:2", None, rule="completedp")
    with pytest.raises(AbcError, match="--batch-rule completedp: applies with --batch"):
        transfer("adam", None, None, rule="completedp")
    assert transfer("adam", "1:8", None, rule="completedp").target_betas()[0] == \
        Fraction(1, 5)  # 1 − 8·0.1
    with pytest.raises(AbcError, match=r"^--batch 1:16 --tokens 1:1: the Complete\(d\)P rule's "
                       r"beta1 = 1 - 16·\(1 - 0.9\) = -0.6 leaves \(0, 1\); it holds only "
                       r"while κ·ρ\^-1·\(1 - beta\) < 1"):
        transfer("adam", "1:16", None, rule="completedp")
    with pytest.raises(AbcError, match=r"--tokens 20:1: the Complete\(d\)P rule's beta1"):
        transfer("adam", None, "20:1", rule="completedp")  # a 20x shorter run: 1 − 20·0.1


def test_no_flags_no_transfer() -> None:
    assert transfer("adam", None, None) is None
    assert transfer("lion", None, None) is None  # nothing asked, nothing refused


@pytest.mark.parametrize("text,value", [("256:1024", (256, 1024)),
                                        ("1e9:4e9", (10 ** 9, 4 * 10 ** 9)),
                                        ("1:1000000000000000", (1, 10 ** 15)),
                                        ("1E3:2e3", (1000, 2000))])
def test_parse_pair(text: str, value: tuple[int, int]) -> None:
    assert parse_pair(text, "--batch") == Pair(*value)


@pytest.mark.parametrize("text", ["4:", ":4", "4", "0:8", "8:0", "a:b", "1:2:3", "-1:2",
                                  "1.5:2", "1:1e16", "1:1000000000000001", "2e15:1",
                                  "99999999999999999:1", "1e999:1", " 4:8", "4 :8",
                                  "\uff14:8", "4:8\n", "0x10:8", "1_000:2", ""])
def test_parse_pair_refuses(text: str) -> None:
    with pytest.raises(AbcError, match=r"^--tokens "):
        parse_pair(text, "--tokens")


@pytest.mark.parametrize("optimizer", ["lion", "muon", "signsgd", "lamb", "adafactor",
                                       "rmsprop", "adagrad"])
def test_optimizers_without_a_rule_are_refused(optimizer: str) -> None:
    with pytest.raises(AbcError, match="no SDE scaling rule"):
        transfer(optimizer, "1:2", None)


def test_beta_leaving_the_interval_is_refused() -> None:
    """κ = 16 takes β1 0.9 to 1 − 16·0.1 = −0.6: refused; a base β1 of 0.99 fits."""
    with pytest.raises(AbcError, match=r"beta1 = .*-0\.6 leaves \(0, 1\)"):
        transfer("adam", "64:1024", None)
    with pytest.raises(AbcError, match=r"beta1 = .* = 0 leaves"):
        transfer("adam", "1:10", None)  # exactly 0
    t = transfer("adam", "64:1024", None, "0.99,0.999")
    assert t.target_betas() == (Fraction(84, 100), Fraction(984, 1000))


@pytest.mark.parametrize("betas", ["0.9", "0.9,0.95,0.99", "1.0,0.9", "0,0.9", "0.9,x",
                                   "9e-1,0.9", "-0.9,0.9", ".9,"])
def test_bad_betas(betas: str) -> None:
    with pytest.raises(AbcError, match=r"^--betas "):
        transfer("adam", "1:2", None, betas)


def test_betas_need_batch_and_adam() -> None:
    with pytest.raises(AbcError, match="--betas: applies with --batch"):
        transfer("adam", None, None, "0.9,0.95")
    with pytest.raises(AbcError, match="SGD has no betas"):
        transfer("sgd", "1:2", None, "0.9,0.95")


# -- properties ------------------------------------------------------------------------------


@given(SIZES, SIZES)
def test_identity(b: int, d: int) -> None:
    """κ = ρ = 1: every factor is 1 and the betas are the base's."""
    t = transfer("adam", f"{b}:{b}", f"{d}:{d}", "0.9,0.95")
    assert all(t.exact(f) == "1" and t.value(f) == 1.0 for f in t.factors)
    assert t.target_betas() == t.betas
    s = transfer("sgd", f"{b}:{b}", f"{d}:{d}")
    assert all(s.exact(f) == "1" for f in s.factors)


@given(SIZES, SIZES, SIZES, SIZES, SIZES, SIZES,
       st.sampled_from([("adam", "sde"), ("sgd", "sde"), ("adam", "completedp")]))
def test_composition(b0: int, b1: int, b2: int, d0: int, d1: int, d2: int,
                     opt_rule: tuple[str, str]) -> None:
    """Going B0 → B1 then B1 → B2 equals B0 → B2 (and alike for tokens), exactly: each
    factor is a monomial in κ and ρ, and β ← 1 − r(1 − β) composes (r = κ, or κ/ρ)."""
    opt, rule = opt_rule

    def t(b: tuple[int, int], d: tuple[int, int]) -> BatchTransfer:
        return BatchTransfer(opt, Pair(*b), Pair(*d), None if opt == "sgd" else
                             (Fraction(9, 10), Fraction(99, 100)), rule)

    first, second, whole = t((b0, b1), (d0, d1)), t((b1, b2), (d1, d2)), t((b0, b2), (d0, d2))
    for f in whole.factors:
        assert first.square(f) * second.square(f) == whole.square(f)
    if opt == "adam":
        mid = BatchTransfer(opt, Pair(b1, b2), Pair(d1, d2), first.target_betas(), rule)
        assert mid.target_betas() == whole.target_betas()


# -- the CLI ---------------------------------------------------------------------------------

def test_table_markdown_adds_a_section(run) -> None:
    code, plain, _ = run("table", MLP)
    assert code == 0
    code, out, err = run("table", MLP, "--batch", "256:1024", "--tokens", "1e9:4e9",
                         "--betas", "0.9,0.95")
    assert code == 0 and err == ""
    assert out.startswith(plain)  # the usual table unchanged, the section after it
    section = out[len(plain):]
    assert section.startswith("\n" + TITLE)
    assert "| learning rate | κ^(1/2) | 2 | 2 | [1] |" in section
    assert "| Adam ε | κ^(-1/2) | 1/2 | 0.5 | [1] |" in section
    assert "β1 0.9 → 0.6, β2 0.95 → 0.8" in section
    assert "arXiv 2205.10287" in section and "arXiv 2505.13738" in section
    assert "not from the width/depth calculus" in section


def test_table_completedp(run) -> None:
    """--batch-rule completedp: the same section with Complete(d)P's factors and source;
    the JSON names the rule. Tokens 1e9 → 4e9 at one batch size: lr ½, ε 2, β 0.9 →
    0.975."""
    code, out, err = run("table", MLP, "--tokens", "1e9:4e9", "--batch-rule", "completedp",
                         "--betas", "0.9,0.95")
    assert code == 0 and err == ""
    assert "| learning rate | κ^(1/2)·ρ^(-1/2) | 1/2 | 0.5 | [1] |" in out
    assert "| Adam ε | κ^(-1/2)·ρ^(1/2) | 2 | 2 | [1] |" in out
    assert "β ← 1 − κ·ρ^-1·(1 − β)" in out and "β1 0.9 → 0.975, β2 0.95 → 0.9875" in out
    assert "1. Mlodozeniec, Ablin, Béthune" in out and "arXiv 2512.22382" in out
    code, out, _ = run("table", MLP, "--format", "json", "--tokens", "1e9:4e9",
                       "--batch-rule", "completedp")
    bt = json.loads(out)["batch_transfer"]
    assert (bt["rule"], bt["factors"]["lr"]["exact"], bt["factors"]["eps"]["exact"]) == \
        ("completedp", "1/2", "2")
    assert json.loads(run("table", MLP, "--format", "json", "--batch", "1:2")[1])[
        "batch_transfer"]["rule"] == "sde"


def test_table_json(run) -> None:
    code, plain, _ = run("table", MLP, "--format", "json")
    code, out, _ = run("table", MLP, "--format", "json", "--optimizer", "adamw", "--batch",
                       "256:1024", "--tokens", "1e9:4e9")
    assert code == 0
    obj = json.loads(out)
    bt = obj.pop("batch_transfer")
    assert obj == json.loads(run("table", MLP, "--format", "json", "--optimizer", "adamw")[1])
    assert json.loads(plain) == obj  # adamw's table is adam's
    assert bt["batch"] == {"base": 256, "target": 1024}
    assert bt["tokens"] == {"base": 10 ** 9, "target": 4 * 10 ** 9}
    assert (bt["kappa"], bt["rho"], bt["steps"], bt["optimizer"]) == ("4", "4", "1", "adamw")
    lr = bt["factors"]["lr"]
    assert (lr["exact"], lr["value"], lr["kappa_exponent"], lr["rho_exponent"],
            lr["source"]) == ("2", 2.0, "1/2", "0", "malladi2022")
    wd = bt["factors"]["weight_decay"]
    assert (wd["exact"], wd["value"], wd["rule"], wd["source"]) == \
        ("1/2", 0.5, "κ^(1/2)·ρ^-1", "powerlines2025")
    assert bt["betas"]["target"] == ["3/5", "249/250"]
    assert bt["betas"]["target_value"] == [0.6, 0.996]
    assert set(bt["sources"]) == {"malladi2022", "powerlines2025"}
    assert "SDE" in bt["rules"] and "not the width/depth calculus" in bt["rules"]


def test_table_variant_all(run) -> None:
    code, out, _ = run("table", MLP, "--variant", "all", "--format", "json", "--batch",
                       "1:2", "--optimizer", "sgd")
    assert code == 0
    obj = json.loads(out)
    assert obj["batch_transfer"]["factors"]["lr"]["exact"] == "2"
    assert all("batch_transfer" not in v for v in obj["variants"].values())
    code, out, _ = run("table", MLP, "--variant", "all", "--batch", "1:2")
    assert code == 0 and out.count(TITLE) == 1


def _one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("abccalc: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("args,needle", [
    (("--batch", "4:"), "--batch 4:"), (("--batch", "0:8"), "positive"),
    (("--batch", "a:b"), "BASE:TARGET"), (("--tokens", "1:1e20"), "at most 1e15"),
    (("--tokens", "1:99999999999999999999999"), "at most 1e15"),
    (("--batch", "64:1024"), "leaves (0, 1)"),
    (("--batch", "1:2", "--optimizer", "lion"), "no SDE scaling rule"),
    (("--batch", "1:2", "--optimizer", "muon"), "no SDE scaling rule"),
    (("--batch", "1:2", "--format", "csv"), "--format csv"),
    (("--batch", "1:2", "--format", "latex"), "--format latex"),
    (("--betas", "0.9,0.95"), "--betas"),
    (("--batch", "1:2", "--betas", "2,3"), "--betas"),
    (("--batch", "1:2", "--optimizer", "sgd", "--batch-rule", "completedp"), "AdamW only"),
    (("--batch-rule", "completedp"), "--batch-rule completedp: applies with --batch"),
    (("--batch", "1:2", "--batch-rule", "bogus"), "--batch-rule"),
])
def test_table_errors(run, args: tuple[str, ...], needle: str) -> None:
    _one_line_error(*run("table", MLP, *args), needle)


@pytest.mark.parametrize("optimizer", ["lion", "muon"])
def test_codegen_refuses_lion_and_muon(run, tmp_path: Path, optimizer: str) -> None:
    out = tmp_path / "m.py"
    _one_line_error(*run("codegen", MLP, "--optimizer", optimizer, "--batch", "1:2", "-o",
                         str(out)), "no SDE scaling rule")
    assert not out.exists()


def test_library_refuses_mismatched_optimizer() -> None:
    p = load_parametrization(load_graph(MLP), "sgd", "table8")
    with pytest.raises(AbcError, match="do not apply"):
        generate(p, batch=transfer("adam", "1:2", None))


def test_python_m_error_exit_status() -> None:
    proc = subprocess.run([sys.executable, "-m", "abccalc", "table", MLP, "--batch", "x:1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    _one_line_error(proc.returncode, proc.stdout, proc.stderr, "--batch x:1")


def test_help_lists_the_flags(run) -> None:
    for command in ("table", "codegen"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "--batch BASE:TARGET" in out and "--tokens BASE:TARGET" in out
        assert "--batch-rule [sde|completedp]" in out


# -- the generated module --------------------------------------------------------------------

torch = pytest.importorskip("torch")

from test_codegen import load_module  # noqa: E402 (needs torch)
from test_generated_safety import ruff_clean  # noqa: E402


def _codegen(run, tmp_path: Path, name: str, *args: str):
    out = tmp_path / f"{name}.py"
    code, _, err = run("codegen", GPT, "--model", "-o", str(out), *args)
    assert code == 0, err
    return load_module(out.read_text(), tmp_path, name)


def test_generated_adam_groups(run, tmp_path: Path) -> None:
    """The groups of the batch module are the plain module's with lr × 2, eps × ½,
    λ × ½ (torch) or × 1 (independent), betas (0.9, 0.95) → (0.6, 0.8)."""
    plain = _codegen(run, tmp_path, "plain_adam", "--optimizer", "adamw")
    batch = _codegen(run, tmp_path, "batch_adam", "--optimizer", "adamw", "--batch",
                     "256:1024", "--tokens", "1e9:4e9", "--betas", "0.9,0.95")
    assert (batch.BATCH_LR_FACTOR, batch.BATCH_EPS_FACTOR) == (2.0, 0.5)
    model = plain.Model({"d_model": 128, "d_head": 32})
    for decay, wd in (("torch", 0.5), ("independent", 1.0)):
        key = "weight_decay" if decay == "torch" else "independent_weight_decay"
        a = plain.param_groups(model, 1e-3, eps=1e-8, weight_decay=0.1, decay=decay,
                               betas=(0.9, 0.95))
        b = batch.param_groups(model, 1e-3, eps=1e-8, weight_decay=0.1, decay=decay,
                               betas=(0.9, 0.95))
        assert [g["params"] for g in a] == [g["params"] for g in b]
        assert len(a) > 1
        for ga, gb in zip(a, b, strict=True):
            assert gb["lr"] == pytest.approx(2 * ga["lr"])
            assert gb["eps"] == pytest.approx(0.5 * ga["eps"])
            assert gb[key] == pytest.approx(wd * ga[key])
            assert gb["betas"] == pytest.approx((0.6, 0.8))
            assert gb["lr_scale"] == ga["lr_scale"]  # the width scale alone
        opt = torch.optim.AdamW(b, lr=1e-3)
        assert batch.check_lr_scales(opt) == pytest.approx(2e-3)
    groups = batch.param_groups(model, 1e-3, eps=1e-8)  # no betas: the --betas ones
    assert all(g["betas"] == pytest.approx((0.6, 0.8)) for g in groups)
    with pytest.raises(ValueError, match=r"outside \(0, 1\)"):
        batch.param_groups(model, 1e-3, eps=1e-8, betas=(0.5, 0.95))
    model(torch.randint(0, 64, (2, 8)), torch.arange(8).expand(2, 8)).float().pow(2).mean(
    ).backward()
    torch.optim.AdamW(groups, lr=1e-3).step()  # a real step with the moved groups


def test_generated_completedp_groups(run, tmp_path: Path) -> None:
    """--batch-rule completedp in the module: a 4x longer run at one batch size moves lr
    × ½, eps × 2, λ × ½ (torch) and betas (0.9, 0.95) → (0.975, 0.9875)."""
    plain = _codegen(run, tmp_path, "plain_cdp", "--optimizer", "adamw")
    batch = _codegen(run, tmp_path, "batch_cdp", "--optimizer", "adamw", "--tokens",
                     "1e9:4e9", "--betas", "0.9,0.95", "--batch-rule", "completedp")
    assert (batch.BATCH_LR_FACTOR, batch.BATCH_EPS_FACTOR, batch.BATCH_ONE_MINUS_BETA_FACTOR,
            batch.BATCH_WEIGHT_DECAY_FACTOR) == (0.5, 2.0, 0.25, 0.5)
    model = plain.Model({"d_model": 128, "d_head": 32})
    a = plain.param_groups(model, 1e-3, eps=1e-8, weight_decay=0.1, betas=(0.9, 0.95))
    b = batch.param_groups(model, 1e-3, eps=1e-8, weight_decay=0.1)
    for ga, gb in zip(a, b, strict=True):
        assert gb["lr"] == pytest.approx(0.5 * ga["lr"])
        assert gb["eps"] == pytest.approx(2 * ga["eps"])
        assert gb["weight_decay"] == pytest.approx(0.5 * ga["weight_decay"])
        assert gb["betas"] == pytest.approx((0.975, 0.9875))


def test_generated_sgd_groups(run, tmp_path: Path) -> None:
    plain = _codegen(run, tmp_path, "plain_sgd", "--optimizer", "sgd")
    batch = _codegen(run, tmp_path, "batch_sgd", "--optimizer", "sgd", "--batch", "1:8",
                     "--tokens", "100:200")
    model = plain.Model({"d_model": 128, "d_head": 32})
    a = plain.param_groups(model, 0.1, weight_decay=0.01, momentum=0.9)
    b = batch.param_groups(model, 0.1, weight_decay=0.01, momentum=0.9)
    for ga, gb in zip(a, b, strict=True):
        assert gb["lr"] == pytest.approx(8 * ga["lr"])
        assert gb["weight_decay"] == pytest.approx(0.5 * ga["weight_decay"])
        assert gb["momentum"] == ga["momentum"] and "betas" not in gb


def test_generated_text(run, tmp_path: Path) -> None:
    """The factors are constants with their exact value and citation, the module imports
    no abccalc, and it is ruff-clean (with a depth axis too)."""
    out = tmp_path / "g.py"
    code, _, err = run("codegen", GPT, "--optimizer", "adam", "--base", "n_layer=2", "--set",
                       "n_layer=4", "--batch", "512:1024", "--tokens", "1e9:4e9", "-o",
                       str(out))
    assert code == 0, err
    text = out.read_text()
    assert "BATCH_LR_FACTOR = BATCH_KAPPA ** 0.5  # = sqrt(2)" in text
    assert "BATCH_WEIGHT_DECAY_FACTOR = BATCH_KAPPA ** 0.5 * TOKENS_RHO ** -1  # = sqrt(1/8)" \
        in text
    assert "arXiv 2205.10287" in text and "arXiv 2505.13738" in text
    # the citations of the table's section, spelled in ASCII like the rest of the module
    assert "#   timescale tau = B/(lr * lambda * D) held fixed" in text and text.isascii()
    assert "abccalc" not in {line.split()[1].split(".")[0] for line in text.splitlines()
                             if line.startswith(("import ", "from "))}
    assert "noqa" not in text
    for extra in ((), ("--model",), ("--base", "n_layer=2", "--set", "n_layer=4")):
        path = tmp_path / f"r{len(extra)}.py"
        for opt in ("adam", "sgd"):
            assert run("codegen", GPT, "--optimizer", opt, "--batch", "1:2", "--force",
                       "-o", str(path), *extra)[0] == 0
            assert ruff_clean(path.read_text(), tmp_path) == ""
    plain = tmp_path / "plain.py"
    assert run("codegen", GPT, "--optimizer", "adam", "-o", str(plain))[0] == 0
    assert "BATCH" not in plain.read_text() and "batch_hyper" not in plain.read_text()
