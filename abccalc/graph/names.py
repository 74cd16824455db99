"""The identifier rule for every name a user gives (graph, dim, value, node, parameter,
repeat block, module path), and :func:`clean` for echoing user text to a terminal.

A name is ASCII ``[A-Za-z_][A-Za-z0-9_]*`` segments joined by dots, where a segment after
the first may also start with a digit (``block.0.attn``), at most :data:`MAX_LEN`
characters, with no segment a Python keyword or starting with ``__``. Node names and module
paths also become ``torch.nn.Module`` attribute paths in generated code, so none of their
segments may start with ``_`` or be a name :data:`RESERVED_MODULE` already takes
(``forward``, ``to``, ``training``, ...). Dim names are symbols of the params-file grammar,
so ``fan_in``, ``fan_out`` and ``sqrt`` are not dim names. ``docs/spec.md`` lists the rule.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from functools import lru_cache
from typing import Any

from abccalc.errors import AbcError

MAX_LEN = 200
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")

# Attributes of torch.nn.Module (public), torch.nn.ModuleDict and the generated Model:
# a module path segment equal to one of them would shadow it (`add_module` refuses).
RESERVED_MODULE = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu
    cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state
    get_parameter get_submodule half ipu load_state_dict modules mtia named_buffers
    named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train
    training type xpu zero_grad
    clear items keys pop update values
    sizes mult const
""".split())
RESERVED_DIM = frozenset({"fan_in", "fan_out", "sqrt"})


def clean(text: Any) -> str:
    """``text`` safe to print: control characters (newlines included), lone surrogates and
    other unprintable code points become ``\\x..``/``\\u....`` escapes; other Unicode
    (μ, →, ½) is kept."""
    text = str(text)
    if text.isprintable():  # every escaped category (Cc, Cs, Co, Cn, Zl, Zp) is not
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                       if unicodedata.category(ch) != "Cs" else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def clean_text(text: str) -> str:
    """Multi-line output made safe to print: :func:`clean` on every line, keeping the line
    breaks and tabs."""
    return "\n".join("\t".join(clean(part) for part in line.split("\t"))
                     for line in text.split("\n"))


def shown(value: Any) -> str:
    """``repr(value)`` for a message: cleaned, short, and never a huge integer's digits
    (Python refuses to write an int of more than 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = clean(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def to_name(text: str) -> str:
    """A name following the rule made from ``text`` (a file's stem, for a graph that gives
    no ``graph:`` name): other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)[:MAX_LEN - 2] or "graph"
    name = name if re.match(r"[A-Za-z]", name) else f"g{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def name_error(name: Any, module: bool = False, dim: bool = False) -> str | None:
    """Why ``name`` breaks the identifier rule, or None when it follows it."""
    if type(name) is str:
        return _str_error(name, module, dim)
    if not isinstance(name, str):
        return f"{shown(name)} is not a name (a {type(name).__name__}, not a string)"
    return _str_error.__wrapped__(name, module, dim)


@lru_cache(maxsize=4096)
def _str_error(name: str, module: bool, dim: bool) -> str | None:
    """:func:`name_error` of a string (a spec names the same dims and parameters again and
    again: each is checked once)."""
    if len(name) > MAX_LEN:
        return f"name longer than {MAX_LEN} characters"
    if not _NAME.fullmatch(name):
        return (f"{shown(name)} is not a name: use letters, digits and '_' (not first), "
                "joined by '.' (docs/spec.md, Names)")
    for seg in name.split("."):  # the message's repr of the name is made only on failure
        if keyword.iskeyword(seg):
            return f"{shown(name)} is not a name: '{seg}' is a Python keyword"
        if seg.startswith("__"):
            return f"{shown(name)} is not a name: '{seg}' starts with '__'"
        if module and seg.startswith("_"):
            return f"{shown(name)}: a node or module name may not start a segment with '_'"
        if module and seg in RESERVED_MODULE:
            return (f"{shown(name)}: '{seg}' is reserved (an attribute of torch.nn.Module or "
                    "of the generated Model); rename it")
    if dim and name in RESERVED_DIM:
        return f"{shown(name)}: '{name}' is reserved in params-file rules; rename the dim"
    return None


def check_name(name: Any, what: str, source: str, module: bool = False,
               dim: bool = False) -> str:
    """``name`` if it follows the identifier rule, else AbcError naming ``what``."""
    why = name_error(name, module=module, dim=dim)
    if why is not None:
        raise AbcError(f"{source}: {what}: {why}")
    return name
