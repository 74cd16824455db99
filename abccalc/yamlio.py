"""Reading the user's YAML files (graph specs, params files, name maps) strictly.

Duplicate keys are errors rather than silently keeping the last one, and every failure
is one :class:`AbcError` line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from abccalc.errors import AbcError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise AbcError(f"a mapping key must be a name, got {type(key).__name__} "
                               f"(line {key_node.start_mark.line + 1})")
            if key in seen:
                raise AbcError(f"duplicate key '{key}' (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except AbcError as e:
        raise AbcError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AbcError(f"{source}: malformed YAML{where}: {problem}") from None


def read_yaml(path: str | Path) -> Any:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise AbcError(f"{source}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise AbcError(f"{source}: not UTF-8 text (byte {e.start})") from None
    return parse_yaml(text, source)
