"""Small models for the importer's edge cases: recorded multipliers, ops it cannot see,
control flow that depends on the width."""

from __future__ import annotations

import math

import torch
from torch import nn


class MuReadout(nn.Module):
    """An MLP whose readout is divided by width/32 (a μP output multiplier, as in
    microsoft/mup's MuReadout) and whose hidden layer is scaled by a fixed 0.5."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width_mult = width / 32
        self.fc1 = nn.Linear(16, width)
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x)) * 0.5
        h = torch.tanh(self.fc2(h))
        return self.out(h) / self.width_mult


def mu_readout(width: int) -> MuReadout:
    return MuReadout(width)


class Cumulative(nn.Module):
    """A hidden layer followed by a cumulative sum (an op outside the calculus)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, width)
        self.fc2 = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.cumsum(self.fc1(x), dim=-1))


def cumulative(width: int) -> Cumulative:
    return Cumulative(width)


class Branchy(nn.Module):
    """Runs an extra nonlinearity only when wide: its trace differs across widths."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.fc1 = nn.Linear(16, width)
        self.fc2 = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.width > 48:
            h = torch.relu(h)
        return self.fc2(h)


def branchy(width: int) -> Branchy:
    return Branchy(width)


class Reserved(nn.Module):
    """Module and input names that are attributes of torch.nn.Module (``values``, ``type``),
    and a ModuleDict key of the caller's choice (``in-proj`` is not a name)."""

    def __init__(self, width: int, key: str = "in_proj") -> None:
        super().__init__()
        self.key = key
        self.layers = nn.ModuleDict({key: nn.Linear(16, width)})
        self.values = nn.Linear(width, 10)

    def forward(self, type: torch.Tensor) -> torch.Tensor:
        return self.values(torch.relu(self.layers[self.key](type)))


def reserved(width: int) -> Reserved:
    return Reserved(width)


def hyphen(width: int) -> Reserved:
    return Reserved(width, "in-proj")


class ManualAttention(nn.Module):
    """Attention written out: softmax(q·kᵀ/√d_head, masked) · v, no SDPA."""

    def __init__(self, d_model: int, n_head: int = 4) -> None:
        super().__init__()
        self.n_head = n_head
        self.wte = nn.Embedding(64, d_model)
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.head = nn.Linear(d_model, 64)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx)
        b, t, c = x.shape
        q, k, v = (f(x).view(b, t, self.n_head, -1).transpose(1, 2)
                   for f in (self.q, self.k, self.v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.tril(torch.ones(t, t, device=x.device)).view(1, 1, t, t)
        att = att.masked_fill(mask == 0, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        return self.head(x + self.o(y))


def manual_attention(d_model: int) -> ManualAttention:
    return ManualAttention(d_model)


class TorchEncoder(nn.Module):
    """PyTorch's own nn.TransformerEncoderLayer (nn.MultiheadAttention with its packed
    in_proj_weight), post-LN, between an embedding and a readout."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, d_model)
        self.enc = nn.TransformerEncoderLayer(d_model, 4, 4 * d_model, dropout=0.0,
                                              batch_first=True)
        self.out = nn.Linear(d_model, 50)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.out(self.enc(self.emb(idx)))


def torch_encoder(d_model: int) -> TorchEncoder:
    return TorchEncoder(d_model)


class RoundSTE(torch.autograd.Function):
    """Rounding with a straight-through gradient (a custom backward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class Quantized(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, width)
        self.fc2 = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(RoundSTE.apply(self.fc1(x)))


def quantized(width: int) -> Quantized:
    return Quantized(width)
