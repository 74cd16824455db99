"""Writing results: stdout, or a file written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from abccalc.errors import AbcError


def write_output(text: str, path: str | None, force: bool = False) -> None:
    """Print ``text``, or write it to ``path`` atomically; refuse to overwrite unless
    ``force``."""
    if path is None or path == "-":
        print(text, end="")
        return
    target = Path(path)
    if target.exists() and not force:
        raise AbcError(f"{path}: exists; pass --force to overwrite")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                   prefix=f".{target.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).replace(target)
    except OSError as e:
        raise AbcError(f"{path}: cannot write: {e.strerror}") from None
