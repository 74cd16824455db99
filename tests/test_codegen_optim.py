"""Generated Muon + AdamW groups and the plain-torch Lion (abccalc/emit/codegen_optim.py):
LRs against the derivation (docs/optimizers.md), a real step, and ruff-clean text."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from abccalc.emit.codegen import generate, load_parametrization
from abccalc.exponents import Optimizer
from abccalc.graph.spec import load_graph

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
GPT = ROOT / "examples" / "gpt.yaml"
HIDDEN = ("q", "k", "v", "o", "fc", "proj")


def module(tmp_path: Path, optimizer: Optimizer | str, name: str, lion: bool = False):
    text = generate(load_parametrization(load_graph(GPT), optimizer, "table8"), model=True,
                    lion=lion)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def groups_by_name(model, groups) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr"] for g in groups for p in g["params"]}


@pytest.mark.parametrize(("adjust", "width", "want"), [
    # keller, c = 0: every hidden matrix at lr; torch's own max(1, A/B)^½ is ours
    ("keller", 256, {"q": 1, "fc": 1, "proj": 1}),
    # spectral: (fan_out/fan_in)^½ over torch's "original": proj (d_model ← 4 d_model)
    # gets (1/4)^½ / 1 = 1/2, fc (4 d_model ← d_model) 2/2 = 1
    ("spectral", 256, {"q": 1, "fc": 1, "proj": 0.5}),
    # match_rms_adamw, c = 1/2: lr·m^-½, m = fan_in/base_fan = 256/64 (fc) and
    # 1024/256 (proj): 1/2 for both at width 256
    ("match_rms_adamw", 256, {"q": 0.5, "fc": 0.5, "proj": 0.5}),
    ("match_rms_adamw", 64, {"q": 1, "fc": 1, "proj": 1}),  # the base width: SP
])
def test_muon_groups_follow_the_derivation(tmp_path: Path, adjust: str, width: int,
                                           want: dict) -> None:
    gen = module(tmp_path, Optimizer.parse("muon", adjust), f"gen_muon_{adjust}_{width}")
    assert gen.MUON_ADJUST == adjust
    model = gen.Model({"d_model": width, "d_head": width // 4})
    lrs = groups_by_name(model, gen.muon_param_groups(model, 0.02))
    assert set(lrs) == {f"block.{i}.{h}.weight" for i in range(2) for h in HIDDEN}
    for h, scale in want.items():
        assert lrs[f"block.1.{h}.weight"] == pytest.approx(0.02 * scale)
    rest = groups_by_name(model, gen.adamw_param_groups(model, 0.01))
    assert not set(rest) & set(lrs)
    assert set(rest) | set(lrs) == {n for n, _ in model.named_parameters()}
    assert rest["tok_emb.weight"] == pytest.approx(0.01)  # Table 8: Adam LR 1 (input)
    assert rest["logits.weight"] == pytest.approx(0.01)  # Table 8: Adam LR 1 (output)


@pytest.mark.parametrize(("adjust", "want"), [("keller", 1.0), ("match_rms_adamw", 2.0)])
def test_muon_weight_decay_keeps_the_timescale(tmp_path: Path, adjust: str,
                                               want: float) -> None:
    """torch.optim.Muon decays by group lr·λ per step: λ scales inversely to the group's
    LR, so lr·λ is the base model's. At width 256 from base 64, m = 4: keller's LR is
    width-independent (λ unchanged), match_rms_adamw's is lr·m^-½ = lr/2 (λ doubled)."""
    gen = module(tmp_path, Optimizer.parse("muon", adjust), f"gen_wd_{adjust}")
    model = gen.Model({"d_model": 256, "d_head": 64})
    groups = gen.muon_param_groups(model, 0.02, weight_decay=0.1)
    assert {round(g["weight_decay"] / 0.1, 12) for g in groups} == {want}
    assert all(g["lr"] * g["weight_decay"] == pytest.approx(0.02 * 0.1) for g in groups)


def test_muon_module_trains_one_real_step(tmp_path: Path) -> None:
    gen = module(tmp_path, "muon", "gen_muon_step")
    torch.manual_seed(0)
    model = gen.Model({"d_model": 128, "d_head": 32})
    gen.init_(model)
    gen.apply_multipliers(model)
    opts = gen.optimizers(model, lr=0.02, adamw_lr=0.01)
    assert [type(o).__name__ for o in opts] == ["Muon", "AdamW"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tokens = torch.randint(0, 256, (2, 64))
    logits = model(tokens=tokens, positions=torch.arange(64).expand(2, 64))
    gen.zero_grad(opts)
    torch.nn.functional.cross_entropy(logits.reshape(-1, 256), tokens.reshape(-1)).backward()
    gen.step(opts)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "block.0.fc.weight" in moved and "tok_emb.weight" in moved


def test_muon_refuses_a_matrix_with_more_axes(tmp_path: Path) -> None:
    gen = module(tmp_path, "muon", "gen_muon_3d")
    model = gen.Model({"d_model": 64, "d_head": 16})
    q = model.get_submodule("block.0.q")
    q.weight = torch.nn.Parameter(q.weight.detach().reshape(4, 16, 64))
    with pytest.raises(ValueError, match=r"'block.0.q.weight': torch.optim.Muon updates whole 2-D"):
        gen.muon_param_groups(model, 0.02)


def test_lion_first_step_is_a_sign(tmp_path: Path) -> None:
    """m₀ = 0, so c = (1 − β₁)·g and w₁ = w₀ − lr·sign(g): entries ±lr (entrywise)."""
    gen = module(tmp_path, "adam", "gen_lion", lion=True)
    model = gen.Model({"d_model": 256, "d_head": 64})
    gen.init_(model)
    opt = gen.Lion(gen.param_groups(model, 1e-3))
    w = model.get_submodule("block.0.fc").weight
    w0 = w.detach().clone()
    tokens = torch.randint(0, 256, (2, 64))
    logits = model(tokens=tokens, positions=torch.arange(64).expand(2, 64))
    torch.nn.functional.cross_entropy(logits.reshape(-1, 256), tokens.reshape(-1)).backward()
    g = w.grad.detach().clone()
    opt.step()
    lr = next(gr["lr"] for gr in opt.param_groups if any(p is w for p in gr["params"]))
    assert lr == pytest.approx(1e-3 / 4)  # Table 8 hidden: 1/fan_in, m = 256/64
    assert torch.allclose(w.detach(), w0 - lr * torch.sign(g))


def test_generated_optimizer_sections_are_ruff_clean(tmp_path: Path) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    for name, opt, lion in (("m", "muon", False), ("s", Optimizer.MUON_SPECTRAL, False),
                            ("l", "adam", True)):
        path = tmp_path / f"{name}.py"
        path.write_text(generate(load_parametrization(load_graph(GPT), opt, "table8"),
                                 model=True, lion=lion))
        done = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--line-length",
                               "100", "--select", "E,F,W,B,I,UP,RUF", str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_cli_codegen_muon(run, tmp_path: Path) -> None:
    out = tmp_path / "m.py"
    code, _, err = run("codegen", str(GPT), "--optimizer", "muon", "--muon-adjust",
                       "match_rms_adamw", "-o", str(out))
    assert code == 0 and "optimizers(model" in err
    assert "MUON_ADJUST_LR_FN = 'match_rms_adamw'" in out.read_text()
    code, _, err = run("codegen", str(GPT), "--optimizer", "adam", "--muon-adjust",
                       "spectral", "-o", str(tmp_path / "x.py"))
    assert code == 2 and "applies to --optimizer muon only" in err
