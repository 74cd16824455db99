"""The GPT of examples/gpt.yaml written by hand for microsoft/mup (the peer in the sweep).

Pre-LN blocks of causal multi-head attention (1/d attention, equal to 1/sqrt(d) at the
base head size, as mup's README recommends) and a 4x MLP; token and position embeddings;
a final LayerNorm and an untied MuReadout. Widths are set with mup's ``set_base_shapes``
from a base and a delta model; the optimizer is ``mup.MuAdam``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def import_mup():
    import mup  # checked by mutransfer.py before any run

    return mup


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_head0: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.d_head = d_model // n_head
        self.scale = math.sqrt(d_head0) / self.d_head  # 1/d, equal to 1/sqrt(d) at base
        self.ln1 = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.ln1(x)
        q, k, v = (m(h).view(b, t, self.n_head, self.d_head).transpose(1, 2)
                   for m in (self.q, self.k, self.v))
        att = (q @ k.transpose(-2, -1)) * self.scale
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(y)
        return x + self.proj(nn.functional.gelu(self.fc(self.ln2(x))))


class MupGPT(nn.Module):
    def __init__(self, width: int, *, vocab: int, ctx: int, n_layer: int, n_head: int,
                 d_head0: int) -> None:
        super().__init__()
        mup = import_mup()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Embedding(ctx, width)
        self.blocks = nn.ModuleList(Block(width, n_head, d_head0) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(width)
        self.readout = mup.MuReadout(width, vocab, bias=False, readout_zero_init=False)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.ln_f(x))


def build(width: int, base: int, **kw) -> nn.Module:
    """A width-``width`` model with mup's base shapes from widths ``base`` and 2·base."""
    mup = import_mup()
    model = MupGPT(width, **kw)
    mup.set_base_shapes(model, MupGPT(base, **kw), delta=MupGPT(2 * base, **kw))
    return model


def optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return import_mup().MuAdam(model.parameters(), lr=lr)
