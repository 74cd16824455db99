"""Small models written in the tests for the check of a live model's own parametrization
(tests/test_current.py), imported through the tracer (:func:`traced`) as a user's would be.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from abccalc.importer.imported import Imported
from abccalc.importer.load import load_model

VOCAB, CTX, N_LAYER, N_HEAD = 48, 8, 2, 2
WIDTHS = (64, 128, 256)  # n_embd; head_dim = n_embd / N_HEAD = 32, 64, 128
HERE = Path(__file__).resolve().parent


@functools.cache
def traced(factory: str, knob: str = "n_embd") -> Imported:
    """``factory`` of this file imported by the tracer at ``knob`` = :data:`WIDTHS`."""
    return load_model(f"{HERE / 'nanogpt_models.py'}:{factory}", {knob: WIDTHS})


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: a fused c_attn, SDPA with ``scale`` (None: its default
    1/sqrt(head_dim)); ``manual``: ``softmax(q @ kᵀ * head_dim^-1/2) @ v`` written out."""

    def __init__(self, n_embd: int, scale_c: float | None, manual: bool = False) -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_embd, self.scale_c, self.manual = n_embd, scale_c, manual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for z in (q, k, v))
        hd = c // N_HEAD
        if self.manual:
            y = ((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))).softmax(-1) @ v
        else:
            scale = None if self.scale_c is None else self.scale_c / hd  # muP: c / head_dim
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd: int, scale_c: float | None, manual: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, scale_c, manual)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(n_embd, 4 * n_embd),
                                  "c_proj": nn.Linear(4 * n_embd, n_embd)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        h = F.gelu(self.mlp["c_fc"](self.ln_2(x)))
        return x + self.mlp["c_proj"](h)


class GPT(nn.Module):
    """A nanoGPT-style GPT (karpathy/nanoGPT's model.py, shrunk): tied wte / lm_head, a
    fused QKV projection, SDPA. ``init="gpt2"`` is nanoGPT's ``_init_weights`` (N(0, 0.02²)
    everywhere, c_proj 0.02/sqrt(2·n_layer)); ``init="torch"`` keeps PyTorch's defaults.
    ``readout`` divides lm_head's input by n_embd / base (microsoft/mup's MuSharedReadout
    does this)."""

    def __init__(self, n_embd: int, *, scale_c: float | None = None, init: str = "gpt2",
                 readout: nn.Module | None = None, manual: bool = False) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(VOCAB, n_embd), "wpe": nn.Embedding(CTX, n_embd),
            "h": nn.ModuleList(Block(n_embd, scale_c, manual) for _ in range(N_LAYER)),
            "ln_f": nn.LayerNorm(n_embd)})
        self.lm_head = readout or nn.Linear(n_embd, VOCAB, bias=False)
        self.transformer["wte"].weight = self.lm_head.weight  # nanoGPT ties this way
        if init == "gpt2":
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * N_LAYER))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        x = t["wte"](idx) + t["wpe"](torch.arange(idx.shape[1], device=idx.device))
        for block in t["h"]:
            x = block(x)
        return self.lm_head(t["ln_f"](x))


class MLP(nn.Module):
    """x → fc1 → relu → fc2 → relu → out, PyTorch's default init."""

    def __init__(self, width: int, d_in: int = 16, d_out: int = 10) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, width), nn.Linear(width, width)
        self.out = nn.Linear(width, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def torch_gpt(n_embd: int) -> GPT:
    """The GPT with PyTorch's default init."""
    return GPT(n_embd, init="torch")


def manual_gpt(n_embd: int) -> GPT:
    """The GPT with its attention written out (``* head_dim^-1/2``, no SDPA)."""
    return GPT(n_embd, manual=True)


def mup_gpt(n_embd: int) -> GPT:
    """The GPT written with microsoft/mup (its README's recipe): MuSharedReadout for the
    tied lm_head, set_base_shapes against the base width, mup.init after it, and SDPA's
    ``scale`` c/head_dim (equal to the default at the base head_dim 32)."""
    import mup

    def make(w: int) -> GPT:
        wte = nn.Parameter(torch.empty(VOCAB, w))
        return GPT(w, scale_c=math.sqrt(32), init="torch",
                   readout=mup.MuSharedReadout(wte, bias=False))

    model = make(n_embd)
    with torch.device("meta"):
        base, delta = make(WIDTHS[0]), make(2 * WIDTHS[0])
    mup.set_base_shapes(model, base, delta=delta)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif ".ln_" in name:
            nn.init.ones_(p)
        else:  # matrix-like: std 0.02/sqrt(fan_in / base fan_in); vector-like: 0.02
            mup.init.normal_(p, std=0.02)
    return model


def mup_adam(model: nn.Module) -> torch.optim.Optimizer:
    import mup

    return mup.MuAdam(model.parameters(), lr=1e-3)


def with_generated(gen, model: GPT | nn.Module) -> nn.Module:
    """``model`` with abccalc's generated code ``gen`` applied: init_, apply_multipliers
    and the tied readout's own multiplier at lm_head (the forward's to apply)."""
    gen.init_(model)
    gen.apply_multipliers(model)
    m = gen.use_multiplier(model, "lm_head", "transformer.wte.weight")
    model.lm_head.register_forward_pre_hook(lambda mod, args: (args[0] * m,))
    return model


def hf_gpt2(n_embd: int) -> nn.Module:
    """Hugging Face GPT-2 from a tiny config (no download): its state_dict names are
    nanoGPT's (Conv1D weights stored [in, out])."""
    from abccalc.importer.model import hide_broken_torchvision

    hide_broken_torchvision()
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(**HF_CONFIG, n_embd=n_embd, use_cache=False))


HF_CONFIG = {"n_head": N_HEAD, "n_layer": N_LAYER, "vocab_size": VOCAB, "n_positions": CTX,
             "bos_token_id": 0, "eos_token_id": 0}
