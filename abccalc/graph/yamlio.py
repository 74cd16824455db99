"""Reading the user's YAML files (graph specs, params files, name maps) strictly.

Duplicate keys are errors rather than silently keeping the last one, merge keys (``<<:``)
work as in YAML 1.1, and every failure is one :class:`AbcError` line naming the file.
Limits keep a hostile file fast ("billion laughs"): at most :data:`MAX_ALIASES` aliases,
:data:`MAX_DEPTH` levels of nesting, :data:`MAX_ITEMS` items once aliases are expanded, and
integers of at most :data:`MAX_INT_DIGITS` digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from abccalc.errors import AbcError
from abccalc.graph.yamlfast import NotPlain, load_plain

MAX_ALIASES = 1000
MAX_DEPTH = 64
MAX_ITEMS = 100_000
MAX_INT_DIGITS = 100
_MERGE = "tag:yaml.org,2002:merge"


def _line(node: Node) -> str:
    return f"line {node.start_mark.line + 1}"


class _Strict:
    """Limits and duplicate-key checks on top of a SafeLoader's composer and constructor:
    rejects duplicate mapping keys instead of keeping the last."""

    _aliases = 0
    _depth = 0
    _nodes = 0

    # -- composing: limits and duplicate keys, before anything is constructed ----------
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise AbcError(f"more than {MAX_ALIASES} aliases "
                               f"({_line(self.peek_event())})")
        else:
            self._nodes += 1
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise AbcError(f"nested deeper than {MAX_DEPTH} levels "
                           f"({_line(self.peek_event())})")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                if (key_node.tag, key_node.value) in seen:
                    raise AbcError(f"duplicate key '{key_node.value}' ({_line(key_node)})")
                seen.add((key_node.tag, key_node.value))
        return node

    def get_single_node(self):
        node = super().get_single_node()
        # with no alias the document is a tree of the nodes composed, counted above; an
        # alias can repeat a subtree, so then the expanded size is counted
        if node is not None and (self._aliases or self._nodes > MAX_ITEMS):
            _count_items(node)
        return node

    # -- constructing ------------------------------------------------------------------
    def construct_mapping(self, node, deep=False):
        own = {id(k) for k, _ in node.value}  # a merged-in key may be overridden
        self.flatten_mapping(node)
        keys: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise AbcError(f"a mapping key must be a name, got {type(key).__name__} "
                               f"({_line(key_node)})")
            if id(key_node) not in own:
                continue
            if key in keys:  # spelled differently, equal once read: 1 and 01, 1 and 1.0
                raise AbcError(f"duplicate key '{key_node.value}' (equal to an earlier key "
                               f"once read; {_line(key_node)})")
            keys.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        digits = sum(c.isalnum() for c in str(node.value))  # hex and octal too
        if digits > MAX_INT_DIGITS:
            raise AbcError(f"an integer of {digits} digits (more than {MAX_INT_DIGITS}) "
                           f"({_line(node)})")
        return super().construct_yaml_int(node)


class _StrictLoader(_Strict, yaml.SafeLoader):
    """The strict loader on PyYAML's pure-Python scanner and parser (the reference)."""


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)

try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _FastLoader = None
else:
    class _FastLoader(_Strict, Composer, CParser, SafeConstructor, Resolver):
        """The same strict loader with libyaml's scanner and parser (about 6× faster):
        only the events come from C; composing (with its limits) and constructing are the
        Python code above. Any error is reported by re-reading with :class:`_StrictLoader`,
        so messages do not depend on libyaml."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)

    _FastLoader.add_constructor("tag:yaml.org,2002:int", _FastLoader.construct_yaml_int)


def _count_items(root: Node) -> None:
    """Refuse a document with more than MAX_ITEMS items once aliases are expanded, or one
    that contains itself (each distinct node is counted once, so this is linear)."""
    size: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: alias chains may be deeper than Python recursion
        node, done = stack.pop()
        if done:
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > MAX_ITEMS:
                raise AbcError(f"more than {MAX_ITEMS:,} items once aliases are expanded "
                               f"({_line(node)})")
            size[id(node)] = total
            busy.discard(id(node))
        elif id(node) not in size:
            if id(node) in busy:
                raise AbcError(f"an alias refers to a node that contains it ({_line(node)})")
            busy.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def parse_yaml(text: str, source: str) -> Any:
    """Parse ``text`` (from ``source``, named in every error) with the limits above. A plain
    document (no anchors, aliases or tags: :mod:`abccalc.graph.yamlfast`) is built from
    libyaml's events directly; any other, or any error, goes through the strict loader."""
    try:
        return load_plain(text, MAX_DEPTH, MAX_ITEMS, MAX_INT_DIGITS)
    except NotPlain:
        return parse_strict(text, source)


def parse_strict(text: str, source: str) -> Any:
    """:func:`parse_yaml` without the fast path for plain documents: every document is
    composed into nodes (the reference that the fast path is tested against)."""
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # a SafeLoader's composer/constructor
        except Exception:  # any failure: the reference loader reports it
            pass
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except AbcError as e:
        raise AbcError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AbcError(f"{source}: malformed YAML{where}: {problem}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # a scalar the resolver refused
        raise AbcError(f"{source}: malformed YAML: {type(e).__name__}: "
                       f"{str(e)[:200]}") from None


def read_yaml(path: str | Path) -> Any:
    """Read and parse a UTF-8 YAML file; every failure is one AbcError naming it."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise AbcError(f"{source}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise AbcError(f"{source}: not UTF-8 text (byte {e.start})") from None
    return parse_yaml(text, source)
