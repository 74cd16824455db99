"""The generated Model's fixed text: the module-level definitions before its classes
(``DIMS``, ``INPUTS``, ``dim_sizes``) and the helpers an op's emission may ask for
(``ctx.helper(name)``), each written once and only when used."""

HEAD = '''

# -- the model -----------------------------------------------------------------------
F = torch.nn.functional

DIMS: dict[str, dict] = @DIMS@

INPUTS: list[str] = @INPUTS@


def dim_sizes(widths: dict[str, int]) -> dict[str, int]:
    """Sizes of every dim. Finite dims keep their size; an independent infinite dim takes
    its width from ``widths``, or else scales with the named ones by their common width
    multiplier (all stay at base size when ``widths`` is empty; named dims of different
    multipliers must name every independent dim); a multiple (``times``) follows its dim."""
    free = [d for d, v in DIMS.items() if v["infinite"] and "of" not in v]
    unknown = sorted(set(widths) - set(free))
    if unknown:
        raise KeyError(f"not an independent infinite dim: {unknown} (those are {free})")
    for d, w in widths.items():
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"width of {d!r} must be a positive integer, got {w!r}")
    ratios = {widths[d] / DIMS[d]["size"] for d in widths}
    missing = [d for d in free if d not in widths]
    if missing and len(ratios) > 1:
        raise ValueError(f"widths {widths} scale dims by different multipliers, so the "
                         f"others cannot follow them: also give {missing}")
    ratio = ratios.pop() if ratios else 1.0
    sizes: dict[str, int] = {}
    for name, d in DIMS.items():  # multiples come after the dim they multiply
        if "of" in d:
            num, den = d["times"]
            sizes[name] = max(1, sizes[d["of"]] * num // den)
        elif name in widths:
            sizes[name] = widths[name]
        else:
            sizes[name] = max(1, round(d["size"] * ratio)) if d["infinite"] else d["size"]
    return sizes
'''

HELPERS = {
    "Params": '''

class Params(torch.nn.Module):
    """Parameters with no torch module of their own: a norm's gain (``weight``, ones) and
    bias (zeros) as nn.LayerNorm, a learned tensor, the bias of a linear whose weight is
    tied elsewhere; each flat, but a linear weight stored (in, out) keeps its two axes."""

    def __init__(self, weight: int | tuple[int, int] | None = None,
                 bias: int | None = None) -> None:
        super().__init__()
        if weight is not None:
            self.weight = torch.nn.Parameter(torch.ones(weight))
        if bias is not None:
            self.bias = torch.nn.Parameter(torch.zeros(bias))
''',
    "fused_linear": '''

def fused_linear(x: torch.Tensor, *linears: torch.nn.Linear) -> tuple[torch.Tensor, ...]:
    """``tuple(m(x) for m in linears)`` as one matmul: the weights (and biases) concatenated
    along the output dim, the result split. Each module keeps its own parameters; its
    forward hooks do not run."""
    weight = torch.cat([m.weight for m in linears])
    bias = None if linears[0].bias is None else torch.cat([m.bias for m in linears])
    return F.linear(x, weight, bias).split([m.out_features for m in linears], dim=-1)
''',
    "causal_mask": '''

def causal_mask(n: int, device: torch.device) -> torch.Tensor:
    """True where key position > query position (masked out), for n positions."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
''',
    "conv_last": '''

def conv_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
              ) -> torch.Tensor:
    """A "same"-padded convolution with channels last: x is (..., *spatial, in), the
    spatial axes the weight's kernel axes slide over; returns (..., *spatial, out)."""
    k = weight.dim() - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[k - 1]
    y = conv(x.reshape(-1, *x.shape[-k - 1:]).movedim(-1, 1), weight, bias, padding="same")
    return y.movedim(1, -1).reshape(*x.shape[:-1], -1)
''',
}
