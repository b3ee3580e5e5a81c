"""GPT-2 as published (Radford et al. 2019), in one readable PyTorch module.

Learned absolute positions, pre-LayerNorm blocks, GELU with the tanh approximation, input and output
embeddings tied, and residual projections initialised with std 0.02/sqrt(2 * n_layer) (GPT-2 paper,
section 2.3). Parameter names follow the published checkpoints (`wte`, `wpe`, `h.N.attn.c_attn`,
`c_proj`, `ln_f`), so loading Hugging Face weights is a name mapping plus Conv1D transposes.

The embedding may be padded from 50257 to 50304 rows (a multiple of 128) for faster matmuls on GPUs; the
padded logits are masked to -inf, so they never win a softmax or a sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT-2 model."""

    block_size: int = 1024  # context length (GPT-2: 1024)
    vocab_size: int = 50257  # GPT-2 BPE vocabulary
    padded_vocab_size: int = 50304  # embedding rows; >= vocab_size, extra rows are masked
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # GPT-2 uses biases in Linear and LayerNorm

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.padded_vocab_size < self.vocab_size:
            raise ValueError("padded_vocab_size must be >= vocab_size")

    def to_dict(self) -> dict:
        """Return the config as a plain dict (for checkpoints and run.json)."""
        return asdict(self)


# GPT-2 sizes from the paper (table 2) and the released checkpoints. The dN presets are llm.c's names
# for depth N at the matching GPT-2 width (train_gpt2.cu: d12 = 124M ... d48 = 1558M).
PRESETS: dict[str, dict] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),
    "d6": dict(n_layer=6, n_head=6, n_embd=384),
    "d12": dict(n_layer=12, n_head=12, n_embd=768),
    "d24": dict(n_layer=24, n_head=16, n_embd=1024),
    "d36": dict(n_layer=36, n_head=20, n_embd=1280),
    "d48": dict(n_layer=48, n_head=25, n_embd=1600),
    # Tiny models for CPU tests and the demo.
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=256),
    "small-cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=256),
}


def config_from_preset(name: str, **overrides) -> GPTConfig:
    """Build a `GPTConfig` from a preset name, with field overrides (e.g. `block_size=512`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through `scaled_dot_product_attention`."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_SCALE_INIT = True
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: 4x expansion, GELU (tanh approximation, as GPT-2)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_SCALE_INIT = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The GPT-2 language model."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied embeddings (GPT-2)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "RESIDUAL_SCALE_INIT", False):
                std = 0.02 / math.sqrt(2 * self.config.n_layer)  # GPT-2 paper, section 2.3
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Count parameters as the published models do: real vocab rows only, tied weights once.

        Args:
            non_embedding: leave out the position and token embeddings.
        """
        n = sum(p.numel() for p in self.parameters())
        n -= (self.config.padded_vocab_size - self.config.vocab_size) * self.config.n_embd
        if non_embedding:
            n -= self.transformer.wpe.weight.numel() + self.config.vocab_size * self.config.n_embd
        return n

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return logits (B, T, vocab_size) and, given targets (B, T), the mean cross-entropy loss."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds the context length {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)[..., : self.config.vocab_size]  # (B, T, vocab); padded rows dropped
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def flops_per_token(config: GPTConfig, seq_len: int) -> float:
    """Training FLOPs per token, as llm.c counts them: 6N plus the attention term 6 * L * T * C.

    N counts the non-embedding parameters plus the output projection (the tied embedding used as the
    classifier is a real matmul). Forward is 1/3 and backward 2/3 of the total.
    """
    c, l = config.n_embd, config.n_layer
    n_block = l * (12 * c * c + 13 * c)  # attention + MLP matrices and biases, two LayerNorms
    n_matmul = n_block + config.padded_vocab_size * c
    return 6 * n_matmul + 6 * l * seq_len * c
