"""Small models written in the tests, and their hand-written graphs, for the check of a live
model's own parametrization (tests/test_current.py).

The graphs stand in for the tracer's output (issue 14 point 1): their parameter names are the
models' ``state_dict`` names, and the constants each model applies are recorded by hand
(:class:`abccalc.importer.imported.Recorded`), so ``abccalc.verify.current`` is tested
without the tracer.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from abccalc.graph.spec import parse_builder
from abccalc.importer.imported import Imported, Recorded

VOCAB, CTX, N_LAYER, N_HEAD = 48, 8, 2, 2
WIDTHS = (64, 128, 256)  # n_embd; head_dim = n_embd / N_HEAD = 32, 64, 128


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: a fused c_attn, SDPA with ``scale`` (None: its default
    1/sqrt(head_dim))."""

    def __init__(self, n_embd: int, scale_c: float | None) -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_embd, self.scale_c = n_embd, scale_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for z in (q, k, v))
        hd = c // N_HEAD
        scale = None if self.scale_c is None else self.scale_c / hd  # muP: c / head_dim
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd: int, scale_c: float | None) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, scale_c)
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
                 readout: nn.Module | None = None) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(VOCAB, n_embd), "wpe": nn.Embedding(CTX, n_embd),
            "h": nn.ModuleList(Block(n_embd, scale_c) for _ in range(N_LAYER)),
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


def _block(readout_scale: bool) -> str:
    """The hand-written graph of :class:`GPT`, named as its state_dict (the tracer's job).
    The fused c_attn writes [n_head, d_qkv] with d_qkv = 3·head_dim, sliced into q, k, v
    (docs/spec.md §4.1); SDPA is scores / softmax / mix."""
    lm_in = "transformer.ln_f"
    head = ""
    if readout_scale:  # MuSharedReadout: lm_head(x / width_mult)
        head = "  - {name: lm_head.width_mult, op: scale, inputs: transformer.ln_f}\n"
        lm_in = "lm_head.width_mult"
    return f"""\
graph: nanogpt
dims: {{vocab: {VOCAB}, ctx: {CTX}, ctx_k: {CTX}, n_head: {N_HEAD}, n_embd: {{base: 64}},
       head_dim: {{base: 32}}, d_qkv: {{times: 3, of: head_dim}}, d_ff: {{times: 4, of: n_embd}}}}
values: {{n_layer: {N_LAYER}}}
nodes:
  - {{name: idx, op: input, dims: [ctx]}}
  - {{name: pos, op: input, dims: [ctx]}}
  - {{name: transformer.wte, op: embedding, inputs: idx, vocab: vocab, dims: [ctx, n_embd],
     weight: transformer.wte.weight}}
  - {{name: transformer.wpe, op: embedding, inputs: pos, vocab: ctx, dims: [ctx, n_embd],
     weight: transformer.wpe.weight}}
  - {{name: emb, op: add, inputs: [transformer.wte, transformer.wpe]}}
  - repeat: n_layer
    name: transformer.h
    input: emb
    carry: x
    output: r2
    nodes:
      - {{name: ln_1, op: layernorm, inputs: x, gain: ln_1.weight, bias: ln_1.bias}}
      - {{name: attn.c_attn, op: linear, inputs: ln_1, dims: [ctx, n_head, d_qkv],
         weight: attn.c_attn.weight, bias: attn.c_attn.bias}}
      - {{name: attn.q, op: slice, inputs: attn.c_attn, along: d_qkv,
         parts: [head_dim, head_dim, head_dim], index: 0}}
      - {{name: attn.k, op: slice, inputs: attn.c_attn, along: d_qkv,
         parts: [head_dim, head_dim, head_dim], index: 1}}
      - {{name: attn.v, op: slice, inputs: attn.c_attn, along: d_qkv,
         parts: [head_dim, head_dim, head_dim], index: 2}}
      - {{name: attn.scores, op: contract, inputs: [attn.q, attn.k], rename: {{ctx: ctx_k}},
         over: head_dim, dims: [ctx, n_head, ctx_k]}}
      - {{name: attn.probs, op: softmax, inputs: attn.scores, over: ctx_k, causal: [ctx, ctx_k]}}
      - {{name: attn.mix, op: contract, inputs: [attn.probs, attn.v], rename: {{ctx: ctx_k}},
         over: ctx_k, dims: [ctx, n_head, head_dim]}}
      - {{name: attn.c_proj, op: linear, inputs: attn.mix, in: [n_head, head_dim],
         dims: [ctx, n_embd], weight: attn.c_proj.weight, bias: attn.c_proj.bias}}
      - {{name: r1, op: add, inputs: [x, attn.c_proj]}}
      - {{name: ln_2, op: layernorm, inputs: r1, gain: ln_2.weight, bias: ln_2.bias}}
      - {{name: mlp.c_fc, op: linear, inputs: ln_2, dims: [ctx, d_ff],
         weight: mlp.c_fc.weight, bias: mlp.c_fc.bias}}
      - {{name: mlp.act, op: gelu, inputs: mlp.c_fc}}
      - {{name: mlp.c_proj, op: linear, inputs: mlp.act, dims: [ctx, n_embd],
         weight: mlp.c_proj.weight, bias: mlp.c_proj.bias}}
      - {{name: r2, op: add, inputs: [r1, mlp.c_proj]}}
  - {{name: transformer.ln_f, op: layernorm, inputs: transformer.h,
     gain: transformer.ln_f.weight, bias: transformer.ln_f.bias}}
{head}  - {{name: lm_head, op: linear, inputs: {lm_in}, dims: [ctx, vocab],
     weight: transformer.wte.weight}}
  - {{name: out, op: output, inputs: lm_head}}
"""


def _sdpa(scale_c: float | None) -> dict[str, Recorded]:
    """What the tracer records at each SDPA: its scale at each width, value ∝ n^-exponent."""
    hds = [w // N_HEAD for w in WIDTHS]
    if scale_c is None:
        values, exp, what = [hd ** -0.5 for hd in hds], Fraction(1, 2), \
            "scaled_dot_product_attention default scale 1/sqrt(head_dim)"
    else:
        values, exp, what = [scale_c / hd for hd in hds], Fraction(1), \
            f"scaled_dot_product_attention scale={scale_c:g}/head_dim"
    return {f"transformer.h.{i}.attn.scores": Recorded(
        f"transformer.h.{i}.attn.scores", tuple(values), exp, what,
        f"transformer.h.{i}.attn", "tests/nanogpt_models.py:42") for i in range(N_LAYER)}


def imported_gpt(build, *, scale_c: float | None = None, readout_scale: bool = False
                 ) -> Imported:
    """An :class:`Imported` as the tracer would give for ``build(n_embd) -> GPT``."""
    graph = parse_builder(_block(readout_scale), "nanogpt.yaml").build()
    constants = _sdpa(scale_c)
    if readout_scale:
        constants["lm_head.width_mult"] = Recorded(
            "lm_head.width_mult", tuple(64 / w for w in WIDTHS), Fraction(1),
            "x / width_mult (mup.MuSharedReadout)", "lm_head")
    return Imported(graph, "tests/nanogpt_models.py:GPT", {"n_embd": WIDTHS},
                    lambda knobs, device: build(knobs["n_embd"]), constants)


class MLP(nn.Module):
    """x → fc1 → relu → fc2 → relu → out, PyTorch's default init."""

    def __init__(self, width: int, d_in: int = 16, d_out: int = 10) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, width), nn.Linear(width, width)
        self.out = nn.Linear(width, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


MLP_GRAPH = """\
graph: mlp
dims: {d_in: 16, width: {base: 64}, d_out: 10}
nodes:
  - {name: x, op: input, dims: [d_in]}
  - {name: fc1, op: linear, inputs: x, dims: [width], weight: fc1.weight, bias: fc1.bias}
  - {name: a1, op: relu, inputs: fc1}
  - {name: fc2, op: linear, inputs: a1, dims: [width], weight: fc2.weight, bias: fc2.bias}
  - {name: a2, op: relu, inputs: fc2}
  - {name: out, op: linear, inputs: a2, dims: [d_out], weight: out.weight, bias: out.bias}
  - {name: y, op: output, inputs: out}
"""


def imported_mlp() -> Imported:
    return Imported(parse_builder(MLP_GRAPH, "mlp.yaml").build(), "tests:MLP",
                    {"width": WIDTHS}, lambda knobs, device: MLP(knobs["width"]))


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


def hf_gpt2(n_embd: int) -> nn.Module:
    """Hugging Face GPT-2 from a tiny config (no download), named as :class:`GPT`'s graph:
    its state_dict names are nanoGPT's (Conv1D weights stored [in, out])."""
    import transformers.utils.import_utils as iu

    found = iu._is_package_available

    def no_torchvision(name: str, *args: object, **kwargs: object) -> object:
        # torchvision 0.28.0 here fails to import against torch 2.13.0+cpu (no
        # torchvision::nms); GPT-2 needs none of it
        return (False, "N/A") if name == "torchvision" else found(name, *args, **kwargs)

    iu._is_package_available = no_torchvision
    iu.is_torchvision_available.cache_clear()
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    finally:
        iu._is_package_available = found
        iu.is_torchvision_available.cache_clear()
    config = GPT2Config(n_embd=n_embd, n_head=N_HEAD, n_layer=N_LAYER, vocab_size=VOCAB,
                        n_positions=CTX, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)
