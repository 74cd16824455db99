"""Run one bad-input :class:`Case` and classify what happened.

A case is a CLI invocation run in a fresh directory holding only its input files. The
outcome is one of:

- ``clean``: what a careful user expects. For bad input: exit 2, stderr exactly one line
  ``abccalc: error: …`` with the case's fragments, nothing on stdout; for a valid input:
  the expected exit status and outputs. In both, no traceback, no control character
  echoed, no stray file, within :data:`LIMIT_S` seconds;
- ``hang``: past :data:`LIMIT_S` (a subprocess is killed at :data:`TIMEOUT_S`) or killed
  by a signal (out of memory);
- ``traceback``: an exception escaped ``cli.main()``;
- ``file left``: the directory is not as it should be afterwards: a stray or temp file,
  a half-written output, the injection marker ``PWNED``, a missing output or a wrong mode;
- ``wrong exit``: the exit status or the error line is not the expected one.

The first that applies, in the order hang, traceback, file left, wrong exit, wins.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 5.0  # the goal is 2 s; 5 s keeps a loaded machine from flaking
TIMEOUT_S = 5.5  # a subprocess case is killed here (classified as a hang)
MARKER = "PWNED"  # the file every injection payload tries to create
CATEGORIES = ("clean", "traceback", "wrong exit", "file left", "hang")
DIR = object()  # a ``files`` value: create a directory
_CONTROL = {*range(32), *range(127, 160)} - {9, 10}


@dataclass(frozen=True)
class Case:
    """One invocation: ``abccalc ARGS`` in a directory holding ``files``.

    ``code`` 2 means bad input: the one error line must contain every fragment (a fragment
    ``a|b`` is satisfied by either). Otherwise ``outputs`` must be created. ``{ex}`` in an
    argument is the shipped ``examples/`` folder.
    """

    id: str
    args: tuple[str, ...]
    files: dict = field(default_factory=dict)  # name -> str | bytes | DIR
    fragments: tuple[str, ...] = ()
    code: int = 2
    outputs: tuple[str, ...] = ()
    subprocess: bool = False  # for hangs, memory and the terminal's encoding
    env: dict = field(default_factory=dict)
    run_output: str | None = None  # afterwards import this generated module (injection)
    umask: int | None = None  # with ``mode``: the output's expected permission bits
    mode: int | None = None
    race: str | None = None  # a concurrent run creates this file mid-write


@dataclass(frozen=True)
class Outcome:
    category: str
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    detail: str


_race: dict[str, Path | None] = {"target": None}


def _audit(event: str, args: tuple) -> None:
    """When armed, the first write-open of a file in the target's folder first creates
    the target, as a second run finishing at that moment would."""
    target = _race["target"]
    if target is None or event not in ("open", "tempfile.mkstemp", "os.rename", "os.link"):
        return
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(m in str(mode) for m in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
        if not writing or not isinstance(path, str | bytes | os.PathLike):
            return
        if Path(os.fsdecode(path)).resolve().parent != target.parent:
            return
    _race["target"] = None
    target.write_text("the other run's output\n")


sys.addaudithook(_audit)


def _write_files(case: Case, where: Path) -> None:
    for name, content in case.files.items():
        path = where / name
        if content is DIR:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _argv(case: Case) -> list[str]:
    return [a.replace("{ex}", str(ROOT / "examples")) for a in case.args]


class _Terminal(io.TextIOWrapper):
    """A UTF-8 terminal: click passes escape sequences to it unstripped."""

    def isatty(self) -> bool:
        return True


def _in_process(case: Case, where: Path) -> tuple[int, str, str, bool]:
    """``cli.main()`` here, its stdout and stderr a terminal's (stdout strict UTF-8)."""
    import cli

    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = _Terminal(out_b, encoding="utf-8", errors="strict")
    err = _Terminal(err_b, encoding="utf-8", errors="backslashreplace")
    old_cwd, old_argv = Path.cwd(), sys.argv
    old_umask = os.umask(case.umask) if case.umask is not None else None
    code, tb = 0, ""
    os.chdir(where)
    sys.argv = ["abccalc", *_argv(case)]
    if case.race:
        _race["target"] = where / case.race
    try:
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")
            try:
                cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1 if e.code else 0
            except (Exception, MemoryError, RecursionError):
                code, tb = 1, traceback.format_exc()
            out.flush()
            err.flush()
    finally:
        _race["target"] = None
        os.chdir(old_cwd)
        sys.argv = old_argv
        if old_umask is not None:
            os.umask(old_umask)
    text = out_b.getvalue().decode("utf-8", "replace")
    return code, text, err_b.getvalue().decode("utf-8", "replace") + tb, False


def _subprocess(case: Case, where: Path) -> tuple[int | None, str, str, bool]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **case.env}
    try:
        r = subprocess.run([sys.executable, "-c", "import cli; cli.main()", *_argv(case)],
                           cwd=where, env=env, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), \
            (e.stderr or b"").decode(errors="replace"), True
    return r.returncode, r.stdout.decode(errors="replace"), \
        r.stderr.decode(errors="replace"), r.returncode < 0


def _import_output(case: Case, where: Path) -> None:
    """Import the generated module, as its user would (this is when injected code runs)."""
    path = where / case.run_output
    if path.is_file():
        subprocess.run([sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
                        path.name], cwd=where, capture_output=True, timeout=60)


def _files_wrong(case: Case, where: Path, before: set[str]) -> str:
    after = {str(p.relative_to(where)) for p in where.rglob("*")}
    if (where / MARKER).exists():
        return f"injected code ran: {MARKER} exists"
    expected = set(case.outputs) if case.code != 2 else set()
    if case.race:
        expected.add(case.race)
    stray = sorted(after - before - expected)
    if stray:
        return f"stray files {stray}"
    missing = [o for o in case.outputs if not (where / o).is_file()]
    if case.code != 2 and missing:
        return f"missing output {missing}"
    if case.race and (where / case.race).read_text() != "the other run's output\n":
        return f"overwrote {case.race}, which another run had just written"
    if case.mode is not None:
        mode = (where / case.outputs[0]).stat().st_mode & 0o777
        if mode != case.mode:
            return f"{case.outputs[0]} has mode {mode:04o}, want {case.mode:04o}"
    return ""


def _message_wrong(case: Case, code: int | None, out: str, err: str) -> str:
    if code != case.code:
        return f"exit {code}, want {case.code}"
    shown = out + err
    if any(ord(ch) in _CONTROL for ch in shown):
        return "a control character reached the terminal"
    if case.code != 2:
        return ""
    lines = err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("abccalc: error: "):
        return f"stderr is not one 'abccalc: error:' line: {err[:160]!r}"
    if out:
        return f"stdout not empty: {out[:80]!r}"
    missing = [f for f in case.fragments if not any(a in lines[0] for a in f.split("|"))]
    return f"message lacks {missing}: {lines[0][:200]!r}" if missing else ""


def run_case(case: Case, where: Path) -> Outcome:
    """Run ``case`` in the empty directory ``where`` and classify the outcome."""
    _write_files(case, where)
    before = {str(p.relative_to(where)) for p in where.rglob("*")}
    start = time.perf_counter()
    run = _subprocess if case.subprocess else _in_process
    code, out, err, killed = run(case, where)
    seconds = time.perf_counter() - start
    if case.run_output:
        _import_output(case, where)
    if killed or seconds > LIMIT_S:
        what = "killed" if code is not None else f"still running at {TIMEOUT_S:g} s"
        return Outcome("hang", code, out, err, seconds,
                       what if killed else f"took {seconds:.1f} s")
    if "Traceback (most recent call last)" in err:
        last = [line for line in err.splitlines() if line and not line.startswith(" ")]
        return Outcome("traceback", code, out, err, seconds, last[-1][:200] if last else "")
    wrong = _files_wrong(case, where, before)
    if wrong:
        return Outcome("file left", code, out, err, seconds, wrong)
    wrong = _message_wrong(case, code, out, err)
    if wrong:
        return Outcome("wrong exit", code, out, err, seconds, wrong)
    return Outcome("clean", code, out, err, seconds, "")
