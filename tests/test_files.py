"""``-o`` files (issue 12, point 7): the umask is honoured, a file is created exclusively
unless --force, devices are written in place and never replaced, and no run leaves a stray
or temporary file behind."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from abccalc.emit.output import _write_new, write_output
from abccalc.errors import AbcError

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.yaml")


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_o_file_honours_the_umask(run, tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    out = tmp_path / "t.md"
    code, _, err = run("table", MLP, "-o", str(out))
    assert (code, err) == (0, "")
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["t.md"]


@pytest.mark.parametrize("path", ["DIR/", "DIR", "NEW/", "DIR/sub/", ""])
def test_directory_or_empty_path_refused_leaving_nothing(run, tmp_path: Path,
                                                         monkeypatch, path: str) -> None:
    """An existing directory is a usage error (click), a name ending in '/' or an empty name
    an AbcError; either way exit 2, no traceback, nothing written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR").mkdir()
    code, out, err = run("table", MLP, "-o", path)
    assert code == 2 and out == "" and "Traceback" not in err
    if path in ("DIR", "DIR/"):
        assert f"Invalid value for '-o': File '{path}' is a directory." in err
    else:
        assert err == ("abccalc: error: -o '': not a file name\n" if not path else
                       f"abccalc: error: {path}: a directory, not a file name\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["DIR"]


def test_a_device_is_written_in_place_never_replaced(run) -> None:
    code, _, err = run("table", MLP, "-o", "/dev/null")
    assert code == 2 and "exists; pass --force" in err
    code, _, err = run("table", MLP, "-o", "/dev/null", "--force")
    assert (code, err) == (0, "")
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_dev_full_is_a_clean_error_and_stays_a_device(run) -> None:
    code, _, err = run("table", MLP, "-o", "/dev/full", "--force")
    assert code == 2 and "/dev/full: cannot write" in err and "Traceback" not in err
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)


def test_exclusive_create_loses_the_race_cleanly(tmp_path: Path) -> None:
    """A target that appears after the existence check is not overwritten: the move into
    place is a hard link, which fails on an existing name; the temp file is removed."""
    target = tmp_path / "out.md"
    target.write_text("first\n")
    with pytest.raises(AbcError, match="exists; pass --force"):
        _write_new(target, b"second\n", force=False)
    assert target.read_text() == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]


def test_concurrent_writers_one_wins(tmp_path: Path) -> None:
    target = str(tmp_path / "out.md")
    results: list[str] = []

    def write(i: int) -> None:
        try:
            write_output(f"writer {i}\n", target)
            results.append(f"ok {i}")
        except AbcError as e:
            results.append(str(e))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("ok")]
    assert len(winners) == 1, results
    assert all("exists; pass --force" in r for r in results if not r.startswith("ok"))
    assert Path(target).read_text() == f"writer {winners[0].split()[1]}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]


def test_force_replaces_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "out.md"
    target.write_text("old\n")
    write_output("new\n", str(target), force=True)
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]


def test_unencodable_text_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(AbcError, match="not encodable as UTF-8"):
        write_output("ok \udc80 bad", str(tmp_path / "out.md"))
    assert list(tmp_path.iterdir()) == []


def test_codegen_says_what_it_wrote(run, tmp_path: Path) -> None:
    out = tmp_path / "mup_mlp.py"
    code, stdout, err = run("codegen", MLP, "--optimizer", "adam", "-o", str(out))
    assert code == 0 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"abccalc: wrote {out} (table8, adam); use: ")
    assert "init_(model)" in lines[0] and "torch.optim.AdamW(param_groups(model" in lines[0]
    assert out.read_text().startswith('"""muP for `mlp`')
