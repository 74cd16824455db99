"""Writing results: stdout, or a file written whole or not at all.

A file is written to a temporary sibling (created with mode 0666 less the umask, as any
new file) and moved into place: with ``force`` by ``os.replace``; without, by ``os.link``,
which fails if the target appeared meanwhile, so of two runs racing to one path the second
fails rather than overwriting the first. An existing target that is not a regular file
(``/dev/null``, a FIFO) is written in place with ``force``, never replaced. The text is
encoded before anything is created, and the temporary file never outlives the call.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
from pathlib import Path

from abccalc.errors import AbcError
from abccalc.graph.names import clean_text


def write_output(text: str, path: str | None, force: bool = False) -> None:
    """Print ``text`` (control characters escaped), or write it to ``path`` atomically;
    refuse to overwrite unless ``force``."""
    if path is None or path == "-":
        sys.stdout.write(clean_text(text))
        return
    if not path:
        raise AbcError("-o '': not a file name")
    if path.endswith(("/", os.sep)) or Path(path).is_dir():
        raise AbcError(f"{path}: a directory, not a file name")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise AbcError(f"{path}: cannot write: text not encodable as UTF-8 "
                       f"(position {e.start})") from None
    try:
        st = Path(path).stat()
    except OSError:
        st = None
    if st is not None and not force:
        raise AbcError(f"{path}: exists; pass --force to overwrite")
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            with Path(path).open("wb") as f:  # a device or FIFO: write into it, never replace it
                f.write(data)
            return
        _write_new(Path(path), data, force)
    except OSError as e:
        raise AbcError(f"{path}: cannot write: {e.strerror or e}") from None


def _write_new(target: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to a fresh temporary sibling of ``target`` and move it into place."""
    tmp = None
    try:
        for _ in range(100):
            candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise OSError(errno.EEXIST, "no free temporary name")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if force:
            tmp.replace(target)
            tmp = None
            return
        try:
            target.hardlink_to(tmp)
        except FileExistsError:
            raise AbcError(f"{target}: exists; pass --force to overwrite") from None
        except OSError as e:  # a file system without hard links: create exclusively
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                with target.open("xb") as f:
                    f.write(data)
            except FileExistsError:
                raise AbcError(f"{target}: exists; pass --force to overwrite") from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
