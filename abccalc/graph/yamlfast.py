"""A fast path for plain YAML documents: Python values built straight from libyaml's events.

A *plain* document has no anchors, aliases or explicit tags, and its scalars resolve (as a
SafeLoader resolves them) to strings, integers, floats, booleans or nulls only: no merge
keys, no timestamps. Most graph specs are plain. Such a document is a tree, so it needs no
composed nodes: :func:`load_plain` builds its dicts and lists from the event stream in one
loop (no recursion, so nesting depth costs no stack), with the checks of the strict
loader in :mod:`abccalc.graph.yamlio`: nesting depth, item count, duplicate keys, the
length of integers, and no mapping or sequence as a mapping key.

Anything else (a document that is not plain, a limit or check that fails, a syntax error,
more than one document) raises :class:`NotPlain`, and the caller reads the text again
with the strict loader, which gives the result or the error message. So this module never
reports an error of its own: where it answers, the answer is the strict loader's value
(``tests/test_yaml_fast.py`` compares them).
"""

from __future__ import annotations

from typing import Any

from yaml.constructor import SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_PLAIN = True  # ScalarEvent.implicit[0]: a plain (unquoted) scalar, whose tag is resolved


class NotPlain(Exception):
    """The document is not plain, or fails a check: read it with the strict loader."""


_resolver = Resolver()
_constructor = SafeConstructor()


def _scalar(value: str, max_int_digits: int) -> tuple[str, Any]:
    """The (tag, value) of a plain scalar as a SafeLoader resolves and constructs it."""
    tag = _resolver.resolve(ScalarNode, value, (True, False))
    if tag == _STR:
        return tag, value
    if tag == _NULL:
        return tag, None
    if tag == _BOOL:
        return tag, _constructor.bool_values[value.lower()]
    if tag == _INT:
        if sum(c.isalnum() for c in value) > max_int_digits:  # the strict loader's error
            raise NotPlain
        return tag, _constructor.construct_yaml_int(ScalarNode(tag, value))
    if tag == _FLOAT:
        return tag, _constructor.construct_yaml_float(ScalarNode(tag, value))
    raise NotPlain  # merge key, timestamp, '=': the strict loader's business


def load_plain(text: str, max_depth: int, max_items: int, max_int_digits: int) -> Any:
    """The value of the one plain document in ``text`` (None for an empty stream); raises
    :class:`NotPlain` for anything else (see the module docstring)."""
    if CParser is None:  # pragma: no cover - PyYAML built without libyaml
        raise NotPlain
    parser = None
    try:
        parser = CParser(text)  # raises on text it cannot encode (a lone surrogate)
        return _build(parser, max_depth, max_items, max_int_digits)
    except NotPlain:
        raise
    except Exception:  # libyaml's syntax errors, a scalar the constructor refused, ...
        raise NotPlain from None
    finally:
        if parser is not None:
            parser.dispose()


def _build(parser: Any, max_depth: int, max_items: int, max_int_digits: int) -> Any:
    get = parser.get_event
    if type(get()) is not StreamStartEvent:  # pragma: no cover - libyaml always starts so
        raise NotPlain
    event = get()
    if type(event) is StreamEndEvent:
        return None
    if type(event) is not DocumentStartEvent:  # pragma: no cover
        raise NotPlain
    plain: dict[str, tuple[str, Any]] = {}  # plain scalar -> (tag, value), per document
    # the open containers: [container, key (a map's pending key; _NO_KEY before one),
    # keys seen (a map's (tag, text) pairs; None for a sequence)]
    stack: list[list] = []
    items = 0
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise NotPlain
            text = event.value
            if event.implicit[0] is _PLAIN:
                hit = plain.get(text)
                if hit is None:
                    hit = plain[text] = _scalar(text, max_int_digits)
                tag, value = hit
            else:
                tag, value = _STR, text
            is_container = False
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise NotPlain
            value = {} if kind is MappingStartEvent else []
            is_container = True
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = stack.pop()[0]
            if not stack:
                root = value
                break
            _add(stack[-1], value, None, None)  # never a key (checked at its start)
            continue
        else:  # an alias, or the document's end before its root closed
            raise NotPlain
        items += 1
        if len(stack) >= max_depth or items > max_items:
            raise NotPlain
        if not stack:
            if not is_container:
                root = value
                break
        else:
            top = stack[-1]
            if is_container:
                if top[2] is not None and top[1] is _NO_KEY:  # a mapping or sequence as key
                    raise NotPlain
            else:
                _add(top, value, tag, text)
                continue
        if is_container:
            stack.append([value, _NO_KEY, set() if kind is MappingStartEvent else None])
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise NotPlain  # a second document: the strict loader's error
    return root


_NO_KEY = object()


def _add(frame: list, value: Any, tag: str | None, text: str | None) -> None:
    """Add ``value`` (a scalar's tag and text, or a closed container's None, None) to the
    open container ``frame``: a sequence's next item, or a mapping's key or value."""
    container, key, seen = frame
    if seen is None:
        container.append(value)
    elif key is _NO_KEY:
        pair = (tag, text)
        if pair in seen or value in container:  # a duplicate key: the strict loader's error
            raise NotPlain
        seen.add(pair)
        frame[1] = value
    else:
        container[key] = value
        frame[1] = _NO_KEY
