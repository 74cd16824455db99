"""The paper tables in tables/ are re-derived exactly from examples/mlp.yaml, and the
committed derived tables have not drifted from what the solver gives now."""

from pathlib import Path

import pytest

from abccalc.emit import goldens

TABLES = Path(__file__).resolve().parent.parent / "tables"


@pytest.mark.parametrize("name", sorted(goldens.TABLES))
def test_derived_equals_paper(name: str) -> None:
    paper = goldens.read_rows(TABLES / f"{name}.csv")
    derived = list(goldens.TABLES[name][1]())
    assert derived == paper


@pytest.mark.parametrize("name", sorted(goldens.TABLES))
def test_committed_derived_tables_have_not_drifted(name: str) -> None:
    assert (TABLES / "derived" / f"{name}.csv").read_text() == goldens.render(name)


def test_check_flag_reports_drift(tmp_path: Path) -> None:
    assert goldens.main(["--dir", str(tmp_path)]) == 0  # writes
    assert goldens.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "tp5_table3.csv").write_text("stale\n")
    assert goldens.main(["--check", "--dir", str(tmp_path)]) == 1
