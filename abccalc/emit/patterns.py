"""Name patterns of the generated rules: one rule per family of parameters.

A pattern is a dotted name in which ``*`` stands for any run of characters inside one
dotted component (never a dot): ``block.*.W_q`` matches ``block.0.W_q`` and
``block.95.W_q``, not ``block.0.mlp.W_q``. ``*`` is the only wildcard (names cannot
contain it, docs/spec.md §1.1). A graph pattern and its module pattern have the same
number of ``*``, which correspond in order: ``block.*.W_q -> transformer.h.*.attn.q.weight``.

A module parameter name may end in a part, ``c_attn.weight[1/3]`` (part 1 of 3 equal parts
along axis 0) or ``c_attn.weight[:, 1/3]`` (along axis 1): several graph parameters then
live in one fused tensor.
"""

from __future__ import annotations

import re

from abccalc.emit.codegen_model import doc_text, module_path
from abccalc.errors import AbcError
from abccalc.graph.core import Graph, Kind
from abccalc.graph.names import check_name

_PART = re.compile(r"(?P<name>[^\[\]]+)\[(?P<skip>(?::,\s*)*)(?P<i>\d+)/(?P<n>\d+)\]")
MAX_PARTS = 64


def split_part(name: str) -> tuple[str, tuple[int, int, int] | None]:
    """``(name, (axis, index, count))`` of ``name[...i/n]``; ``(name, None)`` without one."""
    if not name.endswith("]"):  # the common case, without the regex
        return name, None
    m = _PART.fullmatch(name)
    if m is None:
        return name, None
    axis, index, count = m["skip"].count(":"), int(m["i"]), int(m["n"])
    if not 0 <= index < count or not 2 <= count <= MAX_PARTS:
        raise AbcError(f"--names: '{doc_text(name)}': a part i/n needs 0 <= i < n and "
                       f"2 <= n <= {MAX_PARTS}")
    return m["name"], (axis, index, count)


def match_pattern(pattern: str, name: str) -> list[str] | None:
    """What each ``*`` of ``pattern`` stands for in ``name`` (leftmost, shortest), or None
    when ``pattern`` does not match ``name`` (``*`` never matches a dot)."""
    pat, segs = pattern.split("."), name.split(".")
    if len(pat) != len(segs):
        return None
    out: list[str] = []
    for p, s in zip(pat, segs, strict=True):
        got = _match_segment(p, s)
        if got is None:
            return None
        out += got
    return out


def _match_segment(pat: str, text: str) -> list[str] | None:
    head, star, rest = pat.partition("*")
    if not star:
        return [] if pat == text else None
    if not text.startswith(head):
        return None
    if not rest:
        return [text[len(head):]]
    for end in range(len(head), len(text) + 1):
        tail = _match_segment(rest, text[end:])
        if tail is not None:
            return [text[len(head):end], *tail]
    return None


def fill_pattern(pattern: str, parts: list[str]) -> str:
    """``pattern`` with its ``*`` replaced by ``parts`` in order."""
    pieces = pattern.split("*")
    return "".join(p + (parts[i] if i < len(parts) else "") for i, p in enumerate(pieces))


def star(name: str) -> tuple[str, tuple[str, ...]]:
    """``name`` with every all-digit dotted component (a repeat block's iteration, an
    ``nn.ModuleList`` index) replaced by ``*``, and those components in order."""
    segs = name.split(".")
    digits = tuple(s for s in segs if s.isdigit())
    return ".".join("*" if s.isdigit() else s for s in segs), digits


class Starred:
    """Names by their starred form (:func:`star`), to count the names that a pattern of
    whole starred components (``block.*.W_q``, as :func:`star` writes them) matches
    without matching it against each name: every name of a form matches it when the form,
    starred where the pattern is, is the pattern (``block.*.W_q`` and ``block.extra.W_q``
    both match ``block.*.W_q``), so the work grows with the distinct forms."""

    def __init__(self) -> None:
        self.forms: dict[str, str] = {}
        self.digits: dict[str, str] = {}  # strings, not tuples: no object per name for the
        self.count: dict[str, int] = {}   # garbage collector to walk
        self._masked: dict[tuple[int, tuple[int, ...]], dict[str, int]] = {}
        self._split: dict[str, tuple[str, str]] = {}  # form and digits of names, prefixes

    def add(self, name: str) -> tuple[str, str]:
        """:func:`star` of ``name``, its digit components joined by dots (``""``: none);
        a name is counted once however often it is added."""
        form = self.forms.get(name)
        if form is not None:
            return form, self.digits[name]
        form, digits = self._star(name)
        self.forms[name], self.digits[name] = form, digits
        self.count[form] = self.count.get(form, 0) + 1
        if self._masked:
            self._masked.clear()
        return form, digits

    def _star(self, name: str) -> tuple[str, str]:
        """:func:`star` of ``name`` as ``add`` gives it, from its dotted prefix's (each
        prefix starred once: ``block.3.q.weight`` reuses ``block.3.q``, which reuses
        ``block.3``, what the block's other names made)."""
        got = self._split.get(name)
        if got is not None:
            return got
        head, dot, tail = name.rpartition(".")
        if not dot:
            got = ("*", name) if name.isdigit() else (name, "")
        else:
            form, digits = self._star(head)  # recursion: one level per component
            if tail.isdigit():
                got = form + ".*", (digits + "." + tail if digits else tail)
            else:
                got = (form + "." + tail if digits else name), digits
        self._split[name] = got
        return got

    def matches(self, pattern: str) -> int:
        """How many of the added names ``pattern`` (each ``*`` a whole component)
        matches."""
        segs = pattern.split(".")
        shape = (len(segs), tuple(i for i, s in enumerate(segs) if s == "*"))
        masked = self._masked.get(shape)
        if masked is None:
            masked = self._masked[shape] = {}
            for form, n in self.count.items():
                parts = form.split(".")
                if len(parts) == shape[0]:
                    for i in shape[1]:
                        parts[i] = "*"
                    key = ".".join(parts)
                    masked[key] = masked.get(key, 0) + n
        return masked.get(pattern, 0)


class NameIndex:
    """Names by component count and their last one or two components: the candidates a
    pattern can match, found without matching it against every name."""

    def __init__(self, names: list[str]) -> None:
        self.by_key: dict[tuple, list[str]] = {}
        for name in names:
            segs = name.split(".")
            keys = {(len(segs),), (len(segs), segs[-1]), (len(segs), *segs[-2:])}
            for key in sorted(keys):
                self.by_key.setdefault(key, []).append(name)

    def others(self, pattern: str, own: set[str]) -> list[str]:
        """The names ``pattern`` matches, but for those in ``own``."""
        segs = pattern.split(".")
        key: tuple = (len(segs),)
        if "*" not in segs[-1]:
            key += (segs[-1],)
            if len(segs) > 1 and "*" not in segs[-2]:
                key = (len(segs), *segs[-2:])
        return [x for x in self.by_key.get(key, []) if x not in own
                and match_pattern(pattern, x) is not None]


def _checked(text: str, what: str, source: str, module: bool) -> str:
    """A pattern following the name rule once each ``*`` is read as a letter."""
    check_name(text.replace("*", "x"), what, source, module=module)
    return text


def read_name_map(data: object, source: str) -> dict[str, str]:
    """A ``--names`` mapping of graph parameter (pattern) to module parameter (pattern,
    with an optional part), checked: plain names and equal counts of ``*``."""
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise AbcError(f"{source}: a name map is a mapping of parameter names to module "
                       "parameter names")
    for key, value in data.items():
        _checked(key, "a parameter pattern", source, module=False)
        path, _ = split_part(value)
        _checked(path, f"'{doc_text(key)}' maps to", source, module=True)
        if key.count("*") != path.count("*"):
            raise AbcError(f"{source}: '{doc_text(key)}' maps to '{doc_text(value)}': a "
                           "pattern and its module pattern need the same number of '*'")
    return data


def expand_names(graph: Graph, names: dict[str, str], source: str) -> dict[str, str]:
    """Each graph parameter's module parameter name: a key of ``names`` without ``*``
    maps its parameter; a pattern maps every parameter it matches, its ``*`` filled in
    the value. A parameter matched by two keys, or a key matching none, is an error."""
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    index = NameIndex(list(graph.params))
    for key, value in names.items():
        if "*" not in key:
            hits = [(key, [])] if key in graph.params else []
        else:
            hits = [(p, match_pattern(key, p)) for p in index.others(key, set())]
        if not hits and "*" in key:
            raise AbcError(f"{source}: pattern '{doc_text(key)}' matches no parameter of "
                           f"graph '{doc_text(graph.name)}'")
        path, part = split_part(value)
        for pname, got in hits:
            if pname in origin:
                raise AbcError(f"{source}: parameter '{doc_text(pname)}' is matched by both "
                               f"'{doc_text(origin[pname])}' and '{doc_text(key)}'")
            origin[pname] = key
            out[pname] = fill_pattern(path, got) + (value[len(path):] if part else "")
        if not hits:
            out[key] = value  # check_names reports the unknown name
    return out


def read_names(path: str) -> dict[str, str]:
    """A ``--names`` file: a YAML mapping of graph parameter (or pattern) to module
    parameter name (or pattern, with an optional part)."""
    from abccalc.graph.yamlio import read_yaml

    return read_name_map(read_yaml(path), path)


def default_names(graph: Graph) -> dict[str, str]:
    """Graph parameter → module parameter name: ``<node>.weight`` / ``.bias`` at the
    node of its first use; a norm's gain is ``<node>.weight`` (PyTorch's LayerNorm
    naming). The node's path goes through :func:`module_path`, so a node named like a
    torch attribute (``forward``) or with non-identifier characters gets a safe module."""
    names = {}
    for pname, param in graph.params.items():
        use = param.uses[0]
        attr = "bias" if use.kind is Kind.BIAS else "weight"
        names[pname] = f"{module_path(use.node)}.{attr}"
    return names


def check_names(graph: Graph, names: dict[str, str], source: str) -> None:
    """Every graph parameter mapped, nothing else, no name holding a ``*``, and no two
    onto one module parameter (one tensor with two rules, twice in the optimizer) unless
    they are the parts of one fused tensor: all its parts, each once."""
    starred = [x for x in (*graph.params, *names.values(), *graph.node) if "*" in x]
    if starred:
        raise AbcError(f"{source}: '{doc_text(starred[0])}': a name cannot contain '*' "
                       "(the pattern wildcard)")
    missing = [p for p in graph.params if p not in names]
    if missing:
        raise AbcError(f"{source}: name map misses parameter '{doc_text(missing[0])}'")
    unknown = [p for p in names if p not in graph.params]
    if unknown:
        raise AbcError(f"{source}: name map names '{doc_text(unknown[0])}', which is not a "
                       f"parameter of graph '{doc_text(graph.name)}'")
    first: dict[str, str] = {}  # module parameter → its first graph parameter
    held: dict[str, list[tuple[str, tuple[int, int, int] | None]]] = {}  # parts, or two
    for pname in graph.params:
        path, part = split_part(names[pname])
        if first.setdefault(path, pname) == pname and part is None:
            continue  # one whole tensor (so far): no list for the common case
        owners = held.get(path)
        if owners is None:
            owners = held[path] = [] if first[path] == pname else [
                (first[path], split_part(names[first[path]])[1])]
        owners.append((pname, part))
    order = {path: i for i, path in enumerate(first)}
    for path, owners in sorted(held.items(), key=lambda item: order[item[0]]):
        parts = [part for _, part in owners]
        whole = None not in parts and len({(a, n) for a, _, n in parts}) == 1
        if whole and sorted(i for _, i, _ in parts) == list(range(parts[0][2])):
            continue
        if None in parts:
            a, b = (o for o, _ in owners[:2])
            raise AbcError(f"{source}: parameters '{doc_text(a)}' and '{doc_text(b)}' both "
                           f"map to module parameter '{doc_text(path)}'; tie them in the "
                           "graph (one parameter, several uses) instead")
        listed = ", ".join(f"'{doc_text(o)}'" for o, _ in owners)
        raise AbcError(f"{source}: parameters {listed} map to parts of "
                       f"'{doc_text(path)}': a fused tensor needs each part i/n of one "
                       "split once")
