"""Names that reach generated Python: as strings through ``repr``, in docstrings and
comments through :func:`doc_text`, as identifiers through :func:`ident`, and as module
attribute paths through :func:`module_part`."""

from __future__ import annotations

import keyword
import re
from functools import lru_cache

from abccalc.errors import AbcError

# Public attributes of torch.nn.Module, ModuleDict, Linear, Conv1d/2d/3d and Embedding
# (torch 2.x; a test checks the installed torch adds none) and of the generated Model and
# Params: a submodule of that name cannot be added (``add_module`` refuses it).
MODULE_ATTRIBUTES = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu
cuda dilation double dump_patches embedding_dim eval extra_repr float forward
from_pretrained get_buffer get_extra_state get_parameter get_submodule groups half
in_channels in_features ipu items kernel_size keys load_state_dict max_norm modules mtia
named_buffers named_children named_modules named_parameters norm_type num_embeddings
out_channels out_features output_padding padding padding_idx padding_mode parameters pop
register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
register_parameter register_state_dict_post_hook register_state_dict_pre_hook
requires_grad_ reset_parameters scale_grad_by_freq set_extra_state set_submodule
share_memory sparse state_dict stride to to_empty train training transposed type update
values xpu zero_grad weight bias sizes mult const applies_multipliers
""".split())
# Names a generated function's argument must not shadow.
PY_RESERVED = frozenset({"math", "torch"})
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def doc_text(text: str) -> str:
    """``text`` safe inside a generated docstring or comment: one ASCII line in which a
    backslash, quote or control character is written as its Python escape, so it can end
    neither the comment nor the string."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _hex(name: str) -> str:
    return name.encode("utf-8", "surrogatepass").hex()


def ident(name: str) -> str:
    """A Python identifier for ``name``: ``name`` itself when it is a plain ASCII
    identifier (letter first) that is no keyword and shadows nothing the generated code
    uses, else ``_x_`` + its UTF-8 hex. Injective: kept names never start with ``_``."""
    if _PLAIN.fullmatch(name) and not keyword.iskeyword(name) and name not in PY_RESERVED:
        return name
    return f"_x_{_hex(name)}"


@lru_cache(maxsize=4096)
def module_part(name: str) -> str:
    """One component of a generated module path (``add_module`` name): a plain
    identifier or a block index kept as is; a name that is an attribute of torch's
    modules (``forward``, ``weight``, …) gets ``_r_``; anything else ``_x_`` + hex."""
    if re.fullmatch(r"[0-9]+", name):
        return name
    if _PLAIN.fullmatch(name) and not keyword.iskeyword(name):
        return f"_r_{name}" if name in MODULE_ATTRIBUTES else name
    return f"_x_{_hex(name)}"


def module_path(node: str) -> str:
    """The generated Model's module for graph node ``node``: its dotted components, each
    through :func:`module_part` (``block.0.attn`` stays ``block.0.attn``)."""
    return ".".join(module_part(c) for c in node.split("."))


def check_module_path(path: str, what: str) -> None:
    """Refuse a ``--names`` module path the generated Model could not hold."""
    for part in path.split("."):
        if module_part(part) != part and not re.fullmatch(r"_[rx]_[0-9A-Za-z_]+", part):
            raise AbcError(f"--names: {what} maps to '{doc_text(path)}', whose component "
                           f"'{doc_text(part)}' is not a plain identifier or index, or is "
                           "an attribute of torch.nn.Module")
