"""Re-derive the depth papers' tables in ``tables/`` from ``examples/gpt.yaml`` with an
infinite ``n_layer`` (base 2, built 4 deep), as factors of m_N = width/base width and
m_L = depth/base depth relative to the base model (CompleteP Table 1's notation).

* ``completep_table1``: CompleteP (Dey et al. 2025, arXiv 2505.01618) Table 1, the μP
  column (no depth axis) and the α column at α = 1/2 and α = 1, AdamW, Table 8's gauge
  (CompleteP's unembedding forward × m_N^-1).
* ``completedp_table1``: Complete(d)P (Mlodozeniec et al. 2025, arXiv 2512.22382) Table
  1, the width and depth factors of its μP (Table 3) column and its Complete(d)P column
  at α = 1/2 and α = 1, TP5 Table 3's gauge; the QK-norm row from
  examples/archs/gpt_qknorm_heads.yaml (d_head fixed, heads grow).
* ``tp6_table1``: TP6 (Yang et al. 2023, arXiv 2310.02244) Table 1, Depth-μP (α = 1/2)
  for SGD and Adam: the branch multiplier and the LR of the block weights.
* ``tp6_table2``: TP6 Table 2, widthwise μP (TP5 Table 3's gauge): init var and c.

``python -m abccalc.emit.goldens`` writes them to ``tables/derived/``; the tests compare
them cell by cell with the transcriptions in ``tables/``, where a derived cell may differ
from a paper's only as listed in :data:`DISAGREE` and derived in docs/depth.md.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from abccalc.calculus.solver import solve
from abccalc.emit.render_depth import power
from abccalc.exponents import HALF, ONE, Exp, Optimizer
from abccalc.graph.core import Role
from abccalc.graph.spec import load_builder
from abccalc.parametrization.gauges import Parametrization, parametrize
from abccalc.parametrization.hyper import hyper

ROOT = Path(__file__).resolve().parents[2]
GPT = ROOT / "examples" / "gpt.yaml"
QK_HEADS = ROOT / "examples" / "archs" / "gpt_qknorm_heads.yaml"  # QK-LN, d_head fixed

# examples/gpt.yaml's parameters by local name: the block's weight matrices, the biases and
# pre-LNs of its branches, the final LayerNorm
_HIDDEN = ("W_q", "W_k", "W_v", "W_o", "W_fc", "W_proj")
_BIASES = ("b_q", "b_k", "b_v", "b_o", "b_fc", "b_proj")
_PRE_LN = ("ln1_g", "ln1_b", "ln2_g", "ln2_b")
_IN_BRANCH = (*_BIASES, *_PRE_LN)
_FINAL_LN = ("ln_f_g", "ln_f_b")

# (row, parameters by local name, quantity) of CompleteP Table 1
COMPLETEP_ROWS = (
    ("embed_init_var", ("wte", "wpe"), "init_var"),
    ("embed_lr", ("wte", "wpe"), "lr"),
    ("preln_init_var", ("ln1_g", "ln2_g"), "init_var"),
    ("preln_lr", _PRE_LN, "lr"),
    ("hidden_init_var", _HIDDEN, "init_var"),
    ("hidden_lr", _HIDDEN, "lr"),
    ("hidden_bias_lr", _BIASES, "lr"),
    ("hidden_wd", _HIDDEN, "wd"),
    ("mha_residual", ("r1",), "branch"),
    ("mlp_residual", ("r2",), "branch"),
    ("final_ln_init_var", ("ln_f_g",), "init_var"),
    ("final_ln_lr", _FINAL_LN, "lr"),
    ("unembed_init_var", ("W_unemb",), "init_var"),
    ("unembed_lr", ("W_unemb",), "lr"),
    ("unembed_multiplier", ("W_unemb",), "multiplier"),
    ("eps_residual_blocks", (*_HIDDEN, *_IN_BRANCH), "eps"),
)

# (row, parameters by local name, quantity, graph) of Complete(d)P Table 1, width and
# depth columns (its μP column is TP5 Table 3's gauge, and so is its Complete(d)P column)
COMPLETEDP_ROWS = (
    ("mha_residual", ("r1",), "branch", GPT),
    ("mlp_residual", ("r2",), "branch", GPT),
    ("unembed_multiplier", ("W_unemb",), "multiplier", GPT),
    ("embed_init_var", ("wte", "wpe"), "init_var", GPT),
    ("hidden_init_var", _HIDDEN, "init_var", GPT),
    ("hidden_bias_norm_init_var", _IN_BRANCH, "init_var", GPT),
    ("final_ln_init_var", _FINAL_LN, "init_var", GPT),
    ("unembed_init_var", ("W_unemb",), "init_var", GPT),
    ("embed_lr", ("wte", "wpe"), "lr", GPT),
    ("hidden_lr", _HIDDEN, "lr", GPT),
    ("hidden_bias_norm_lr", _IN_BRANCH, "lr", GPT),
    ("final_ln_lr", _FINAL_LN, "lr", GPT),
    ("unembed_lr", ("W_unemb",), "lr", GPT),
    ("eps_hidden", (*_HIDDEN, *_IN_BRANCH), "eps", GPT),
    ("eps_qk_norms", ("lnq_g", "lnq_b", "lnk_g", "lnk_b"), "eps", QK_HEADS),
    ("eps_input_embed", ("wte", "wpe"), "eps", GPT),
    ("eps_output_weights", ("W_unemb",), "eps", GPT),
    ("eps_output_norms", _FINAL_LN, "eps", GPT),
    ("wd_hidden", _HIDDEN, "wd", GPT),
    ("wd_unembed", ("W_unemb",), "wd", GPT),
    ("wd_rest_outside_branches", ("wte", "wpe", *_FINAL_LN), "wd", GPT),
    ("wd_rest_in_branches", _IN_BRANCH, "wd", GPT),
)

# (table, first cells of the row, column): derived cells that differ from the paper's, each
# derived in docs/depth.md: at α = 1/2 a fixed decay timescale needs λ ∝ 1/LR, which has
# the factor m_L^(1/2) inside the branches, where both papers keep λ's depth factor 1 (§5);
# and the final LayerNorm's gradient is Θ(1/n) like every input-like tensor's, so its ε is
# m_N^-1 where Complete(d)P's "Output weights/biases/norms" row has ×1 (§4)
DISAGREE = {("completep_table1", ("1/2", "hidden_wd"), "depth"),
            ("completedp_table1", ("1/2", "wd_hidden"), "depth"),
            ("completedp_table1", ("1/2", "wd_rest_in_branches"), "depth"),
            *(("completedp_table1", (col, "eps_output_norms"), "width")
              for col in ("mup", "1/2", "1"))}


def gpt(optimizer: Optimizer, variant: str, alpha: Exp | None, path: Path = GPT
        ) -> Parametrization:
    """examples/gpt.yaml (or another GPT spec at ``path``), n_layer infinite with base 2
    and built 4 deep (``alpha`` None: n_layer a plain count, width-only μP)."""
    b = load_builder(path, {"n_layer": "4"})
    if alpha is not None:
        b.set_base("n_layer", "2")
    return parametrize(solve(b.build(), optimizer), variant, depth_alpha=alpha or ONE)


def _locals(p: Parametrization, names: tuple[str, ...]) -> list[str]:
    return [n for n in (*p.params, *p.depth.branches) if n.rsplit(".", 1)[-1] in names]


def _factor(p: Parametrization, name: str, quantity: str) -> tuple[str, str]:
    """(width factor, depth factor) of ``quantity`` of parameter or branch ``name``."""
    if quantity == "branch":
        return "1", power("m_L", -p.depth.branches[name])
    r = p.params[name]
    h = hyper(p, r)
    width, depth = {"init_var": (-2 * r.b_exp, -2 * h.b_depth),
                    "lr": (-r.c_exp, -h.c_depth),
                    "multiplier": (-r.a_exp[(r.use.node, name)], -h.a_depth),
                    "wd": (-h.wd, -h.wd_depth),
                    "eps": (-h.eps, -h.eps_depth)}[quantity]
    return power("m_N", width), power("m_L", depth)


def _row(p: Parametrization, names: tuple[str, ...], quantity: str, what: str
         ) -> tuple[str, str]:
    """The one factor pair that every parameter of the row agrees on."""
    cells = {_factor(p, n, quantity) for n in _locals(p, names)}
    if len(cells) != 1:
        raise ValueError(f"{what}: the parameters disagree: {sorted(cells)}")
    return cells.pop()


def completep_table1() -> list[list[str]]:
    rows = []
    for label, alpha in (("mup", None), ("1/2", HALF), ("1", ONE)):
        p = gpt(Optimizer.ADAM, "table8", alpha)
        for row, names, quantity in COMPLETEP_ROWS:
            width, depth = ("1", "1") if quantity == "branch" and alpha is None else \
                _row(p, names, quantity, f"{label} {row}")
            rows.append([label, row, width, depth])
    return rows


def completedp_table1() -> list[list[str]]:
    """Complete(d)P Table 1, its μP (Table 3) column and its Complete(d)P column at α = 1/2
    and α = 1 (AdamW; width and depth factors, not the batch and duration column). The
    μP column has no QK-norm ε (the paper's NA)."""
    rows = []
    for label, alpha in (("mup", None), ("1/2", HALF), ("1", ONE)):
        ps = {path: gpt(Optimizer.ADAM, "table3", alpha, path) for path in (GPT, QK_HEADS)}
        for row, names, quantity, path in COMPLETEDP_ROWS:
            if alpha is None and row == "eps_qk_norms":
                continue
            width, depth = ("1", "1") if quantity == "branch" and alpha is None else \
                _row(ps[path], names, quantity, f"{label} {row}")
            rows.append([label, row, width, depth])
    return rows


def tp6_table1() -> list[list[str]]:
    rows = []
    for opt in (Optimizer.SGD, Optimizer.ADAM):
        p = gpt(opt, "table8", HALF)
        rows.append([opt.value, "branch_multiplier", _row(p, ("r1", "r2"), "branch",
                                                          "branch")[1]])
        rows.append([opt.value, "lr", _row(p, _HIDDEN, "lr", f"{opt.value} lr")[1]])
    return rows


def tp6_table2() -> list[list[str]]:
    """Widthwise μP as TP6 Table 2 writes it: init var n^(-2b) and c, by role."""
    p = gpt(Optimizer.ADAM, "table3", HALF)
    roles = {Role.INPUT: ("wte", "wpe"), Role.OUTPUT: ("W_unemb",),
             Role.HIDDEN: _HIDDEN}
    cols = []
    for role, names in roles.items():
        rs = [p.params[n] for n in _locals(p, names)]
        assert all(r.role is role for r in rs)
        cols.append(({_n(-2 * r.b_exp) for r in rs}, {str(r.c_exp) for r in rs}))
    if any(len(v) != 1 for col in cols for v in col):
        raise ValueError(f"TP6 Table 2: a role disagrees: {cols}")
    return [["init_var", *(next(iter(c[0])) for c in cols)],
            ["c", *(next(iter(c[1])) for c in cols)]]


def _n(e: Fraction) -> str:
    return "1" if e == 0 else f"n^{e}"


TABLES = {
    "completep_table1": ("param,row,width,depth", completep_table1),
    "completedp_table1": ("param,row,width,depth", completedp_table1),
    "tp6_table1": ("optimizer,row,depth", tp6_table1),
    "tp6_table2": ("quantity,input,output,hidden", tp6_table2),
}
