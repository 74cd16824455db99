"""Shared fixtures: run the CLI in-process."""

import sys
import traceback

import pytest

import cli


@pytest.fixture
def run(capsys, monkeypatch):
    """Run ``abccalc ARGS`` in-process; return (exit status, stdout, stderr).

    An exception escaping ``main()`` is turned into what the interpreter would do with it:
    a traceback on stderr and status 1.
    """

    def _run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["abccalc", *args])
        code: int | str | None = 0
        tb = ""
        try:
            cli.main()
        except SystemExit as e:
            code = e.code
        except Exception:
            code, tb = 1, traceback.format_exc()
        out, err = capsys.readouterr()
        return (code if isinstance(code, int) else 1 if code else 0), out, err + tb

    return _run
