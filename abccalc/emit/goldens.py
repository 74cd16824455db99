"""Re-derive the paper tables in ``tables/`` from ``examples/mlp.yaml``.

``python -m abccalc.emit.goldens`` rewrites ``tables/derived/``; ``--check`` exits 1 when the
committed files have drifted from what the solver derives now. The hand-transcribed
paper tables sit beside them in ``tables/`` and the tests compare the two. It also
rewrites the generated-module goldens ``tests/golden/codegen_*.py`` (examples/mlp.yaml
with ``--model``, examples/gpt.yaml at n_layer 2).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from abccalc.calculus.solver import solve
from abccalc.exponents import Optimizer
from abccalc.graph.core import Role
from abccalc.graph.spec import load_graph
from abccalc.parametrization.gauges import Parametrization, parametrize
from abccalc.parametrization.presets import sp
from abccalc.parametrization.rules import fmt, rule

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "examples" / "mlp.yaml"
GPT = ROOT / "examples" / "gpt.yaml"
COLUMNS = (Role.INPUT, Role.OUTPUT, Role.HIDDEN)
HEADER = "parametrization,quantity,input,output,hidden"


def _cells(p: Parametrization, quantity: str) -> list[str]:
    """The one rule of each Table 3 column (input weights & all biases, output, hidden)."""
    out = []
    for role in COLUMNS:
        values = {fmt(getattr(rule(p, r), quantity)) for r in p.params.values()
                  if r.role is role}
        if len(values) != 1:
            raise ValueError(f"column {role.value} has rules {sorted(values)}")
        out.append(values.pop())
    return out


def _rows(variant: str, with_multiplier: bool) -> list[list[str]]:
    graph = load_graph(MLP)
    rows = []
    for label in ("mup", "sp"):
        for opt in (Optimizer.SGD, Optimizer.ADAM):
            analysis = solve(graph, opt)
            p = parametrize(analysis, variant) if label == "mup" else sp(analysis)
            if opt is Optimizer.SGD:
                rows.append([label, "init_var", *_cells(p, "init_var")])
                if with_multiplier:
                    rows.append([label, "multiplier", *_cells(p, "multiplier")])
            rows.append([label, f"{opt.value}_lr", *_cells(p, "lr")])
    return rows


def tp4_table1_mup() -> list[list[str]]:
    """TP4 Table 1, μP column: a_l, b_l, c of the MLP in TP4 form (SGD, c = 0), and
    r = min(a_{L+1}+b_{L+1}, 2a_{L+1}+c) + c − 1 + min_l(2a_l + I(l=1)) (TP4 Def. 3.2)."""
    p = parametrize(solve(load_graph(MLP), Optimizer.SGD), "tp4")
    w1, w2, w3 = (p.params[n] for n in ("W1", "W2", "W3"))
    c = w2.c
    assert w1.c == w3.c == c
    r = min(w3.a + w3.b, 2 * w3.a + c) + c - 1 + min(2 * w1.a + 1, 2 * w2.a)
    return [["a", str(w1.a), str(w2.a), str(w3.a)],
            ["b", str(w1.b), str(w2.b), str(w3.b)],
            ["c", str(c), str(c), str(c)],
            ["r", str(r), "", ""],
            ["2a_{L+1}+c", "", "", str(2 * w3.a + c)],
            ["a_{L+1}+b_{L+1}+r", "", "", str(w3.a + w3.b + r)]]


TABLES = {
    "tp5_table3": (HEADER, lambda: _rows("table3", with_multiplier=False)),
    "tp5_table8": (HEADER, lambda: _rows("table8", with_multiplier=True)),
    "tp5_table9": (HEADER, lambda: _rows("table9", with_multiplier=True)),
    "tp4_table1_mup": ("quantity,l=1,2<=l<=L,l=L+1", tp4_table1_mup),
}


def codegen_text(optimizer: str) -> str:
    """The generated module for examples/mlp.yaml (Table 3, with --model): the golden
    ``tests/golden/codegen_mlp_<optimizer>.py``."""
    from abccalc.emit.codegen import generate, load_parametrization

    p = load_parametrization(load_graph(MLP), optimizer, "table3")
    return generate(p, model=True, source="examples/mlp.yaml")


def codegen_gpt_text(n_layer: int = 2) -> str:
    """The generated module (no Model) for examples/gpt.yaml at ``n_layer`` (Table 8, Adam):
    the golden ``tests/golden/codegen_gpt_adam.py`` at the spec's n_layer 2."""
    from abccalc.emit.codegen import generate, load_parametrization

    p = load_parametrization(load_graph(GPT, {"n_layer": n_layer}), "adam", "table8")
    return generate(p, source="examples/gpt.yaml")


CODEGEN_GOLDENS = {**{f"codegen_mlp_{opt}.py": (codegen_text, opt) for opt in ("sgd", "adam")},
                   "codegen_gpt_adam.py": (codegen_gpt_text, 2)}


def render(name: str) -> str:
    """A derived table's text: from examples/mlp.yaml, or for the depth tables
    (:mod:`abccalc.emit.goldens_depth`) from examples/gpt.yaml with an infinite n_layer."""
    from abccalc.emit import goldens_depth

    header, build = TABLES[name] if name in TABLES else goldens_depth.TABLES[name]
    source = "examples/mlp.yaml" if name in TABLES else \
        "examples/gpt.yaml with n_layer infinite (base 2)"
    buf = io.StringIO()
    buf.write(f"# derived by `python -m abccalc.emit.goldens` from {source}; "
              f"compare with tables/{name}.csv\n{header}\n")
    csv.writer(buf, lineterminator="\n").writerows(build())
    return buf.getvalue()


def read_rows(path: Path) -> list[list[str]]:
    """Rows of a golden CSV, without '#' comment lines and the header."""
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return [row for row in csv.reader(lines[1:])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if tables/derived drifted")
    ap.add_argument("--dir", type=Path, default=ROOT / "tables" / "derived")
    args = ap.parse_args(argv)
    golden_dir = ROOT / "tests" / "golden"
    from abccalc.emit import goldens_depth

    outputs = [(args.dir / f"{name}.csv", render(name))
               for name in (*TABLES, *goldens_depth.TABLES)]
    outputs += [(golden_dir / f, make(arg)) for f, (make, arg) in CODEGEN_GOLDENS.items()]
    drift = []
    for path, text in outputs:
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in drift:
        print(f"drifted: {path} (run python -m abccalc.emit.goldens)", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
