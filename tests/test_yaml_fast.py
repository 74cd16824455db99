"""The fast path for plain YAML documents (abccalc/graph/yamlfast.py) against the strict
loader: the same values (types included) on every YAML file shipped, on the bad-input
cases' files and on hostile documents, and the same error where there is one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bad_inputs.cases import CASES

from abccalc.errors import AbcError
from abccalc.graph.yamlfast import NotPlain, load_plain
from abccalc.graph.yamlio import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_ITEMS,
    parse_strict,
    parse_yaml,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for ext in ("*.yaml", "*.yml") for p in ROOT.rglob(ext)
                 if ".git" not in p.parts)


def _typed(x):
    """``x`` with every value's type spelled out, so that 1, 1.0 and True differ."""
    if isinstance(x, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [_typed(v) for v in x])
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    return (type(x).__name__, x)


def _outcome(parse, text: str):
    try:
        return ("ok", _typed(parse(text, "f.yaml")))
    except AbcError as e:
        return ("error", str(e))


def _same(text: str) -> None:
    assert _outcome(parse_yaml, text) == _outcome(parse_strict, text)


def _plain(text: str):
    return load_plain(text, MAX_DEPTH, MAX_ITEMS, MAX_INT_DIGITS)


def test_shipped_yaml_files_are_plain_and_equal():
    assert len(SHIPPED) > 10
    for path in SHIPPED:
        text = path.read_text(encoding="utf-8")
        _same(text)
        if path.parts[-2] in ("examples", "archs"):
            assert _typed(_plain(text)) == _typed(parse_strict(text, "f.yaml")), path


def test_bad_input_files_give_the_same_result():
    texts = [t for c in CASES for t in c.files.values() if isinstance(t, str)]
    assert len(texts) > 50
    for text in texts:
        _same(text)


HOSTILE = {
    "deep-sequence": "dims: " + "[" * 50_000 + "]" * 50_000 + "\nnodes: []\n",
    "deep-mapping": "a: " + "{b: " * 50_000 + "1" + "}" * 50_000 + "\n",
    "deep-block": "".join(" " * i + f"k{i}:\n" for i in range(50)) + " " * 50 + "v\n",
    "depth-at-limit": "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1),
    "depth-over-limit": "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH,
    "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "anchor-only": "a: &x 1\nb: 2\n",
    "alias": "a: &x [1, 2]\nb: *x\n",
    "self-alias": "a: &x [*x]\n",
    "items-at-limit": "[" + ",".join(["1"] * (MAX_ITEMS - 1)) + "]",
    "items-over-limit": "[" + ",".join(["1"] * MAX_ITEMS) + "]",
    "duplicate-key": "a: 1\nb: 2\na: 3\n",
    "duplicate-quoted-key": "a: 1\n'a': 2\n",
    "duplicate-nested-key": "x: {a: 1, a: 2}\n",
    "duplicate-int-key": "1: a\n1: b\n",
    "equal-keys-octal": "1: a\n01: b\n",
    "equal-keys-float": "a: {1: x, 1.0: y}\n",
    "equal-keys-bool": "true: d\nTrue: e\n",
    "equal-keys-null": "~: f\nnull: g\n",
    "merge-override": "base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n",
    "str-and-int-key": "'1': a\n1: b\n",
    "python-tag": "!!python/object/apply:os.system ['touch PWNED']\n",
    "str-tag": "a: !!str 1\n",
    "local-tag": "a: !foo bar\n",
    "bang-tag": "a: ! 12\n",
    "map-tag": "a: !!map {b: 1}\n",
    "merge-key": "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n",
    "merge-plain": "<<: {x: 1}\n",
    "timestamp": "a: 2001-12-14\n",
    "value-key": "a: =\n",
    "int-100-digits": "a: " + "1" * MAX_INT_DIGITS + "\n",
    "int-101-digits": "a: " + "1" * (MAX_INT_DIGITS + 1) + "\n",
    "hex-101-digits": "a: 0x" + "f" * (MAX_INT_DIGITS + 1) + "\n",
    "numbers": "[0x1f, 017, 0b101, 1_000, -5, +3, 190:20:30, 1.5, -.inf, .NaN, 1e3, 6.8e+3,"
               " 1_000.5, 190:20:30.15, .5, 0.]\n",
    "bools-and-nulls": "[yes, No, on, OFF, y, n, true, FALSE, ~, null, Null, '', \"\"]\n",
    "mapping-key": "? [a, b]\n: c\n",
    "mapping-key-map": "? {a: 1}\n: c\n",
    "two-documents": "a: 1\n---\nb: 2\n",
    "empty": "",
    "comments": "# nothing\n",
    "empty-document": "---\n...\n",
    "explicit-document": "%YAML 1.1\n---\na: 1\n...\n",
    "tag-directive": "%TAG !e! tag:example.com,2000:\n---\na: 1\n",
    "scalar-root": "42\n",
    "quoted-root": "'42'\n",
    "block-scalars": "a: |\n  x\n  y\nb: >\n  p\n  q\nc: |-\n  z\n",
    "escapes": 'a: "tab\\there \\u00b5 \\x41"\nb: \'it\'\'s\'\n',
    "unicode": "μ: ½\n名前: [α, β]\n",
    "bom": "\ufeffa: 1\n",
    "nul": "a: 1\n\x00\n",
    "control": "a: \x1b[2J\n",
    "tabs": "a:\t1\n",
    "unclosed": "a: [1, 2\n",
    "bad-indent": "a:\n  b: 1\n c: 2\n",
    "empty-values": "a:\nb: []\nc: {}\nd: [~, ]\n",
    "flow-in-block": "- {a: [1, {b: c}]}\n- - x\n  - y\n",
}


# items-over-limit's error takes the pure-Python loader seconds: test_boundary.py checks it
@pytest.mark.parametrize("name", sorted(set(HOSTILE) - {"items-over-limit"}))
def test_hostile_documents_give_the_same_result(name):
    _same(HOSTILE[name])


@pytest.mark.parametrize("name", ["alias", "anchor-only", "alias-bomb", "str-tag",
                                  "merge-key", "timestamp", "two-documents", "duplicate-key",
                                  "equal-keys-octal", "equal-keys-null", "depth-over-limit",
                                  "items-over-limit", "int-101-digits", "mapping-key", "unclosed",
                                  "python-tag"])
def test_what_is_not_plain_goes_to_the_strict_loader(name):
    with pytest.raises(NotPlain):
        _plain(HOSTILE[name])


@pytest.mark.parametrize("name", ["deep-block", "depth-at-limit", "numbers", "empty",
                                  "str-and-int-key", "bools-and-nulls", "unicode",
                                  "block-scalars", "scalar-root", "empty-values"])
def test_plain_documents_take_the_fast_path(name):
    assert _typed(_plain(HOSTILE[name])) == _typed(parse_strict(HOSTILE[name], "f.yaml"))


@pytest.mark.parametrize(("name", "key"), [("equal-keys-octal", "01"),
                                           ("equal-keys-float", "1.0"),
                                           ("equal-keys-bool", "True"),
                                           ("equal-keys-null", "null")])
def test_keys_equal_once_read_are_duplicates(name, key):
    """``1`` and ``01`` (YAML 1.1 octal) are both the integer 1: a mapping would keep only
    the last, so it is refused, like a key written twice."""
    with pytest.raises(AbcError, match=rf"^f\.yaml: duplicate key '{key}' \(equal to an "
                                       r"earlier key once read; line \d\)$"):
        parse_yaml(HOSTILE[name], "f.yaml")


def test_a_merged_key_may_still_be_overridden():
    assert parse_yaml(HOSTILE["merge-override"], "f.yaml")["d"] == {"x": 2}


def test_errors_name_the_file():
    with pytest.raises(AbcError, match=r"^f\.yaml: duplicate key 'a' \(line 3\)"):
        parse_yaml(HOSTILE["duplicate-key"], "f.yaml")
    with pytest.raises(AbcError, match=rf"^f\.yaml: nested deeper than {MAX_DEPTH} levels"):
        parse_yaml(HOSTILE["deep-sequence"], "f.yaml")


def test_text_libyaml_cannot_encode_is_the_strict_loaders_error() -> None:
    """A lone surrogate (possible through the Python API, not from a file) makes libyaml's
    parser refuse the text when it is created: the fast path passes it to the strict
    loader, whose one-line error names the character."""
    with pytest.raises(NotPlain):
        load_plain("a: '\ud800'\n", 64, 1000, 100)
    with pytest.raises(AbcError, match="#xd800"):
        parse_yaml("a: '\ud800'\n", "s.yaml")
