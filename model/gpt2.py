"""GPT-2 as published (Radford et al. 2019), in one readable PyTorch module, with a KV cache.

Learned absolute positions, pre-LayerNorm blocks, GELU with the tanh approximation, input and output
embeddings tied, and residual projections initialised with std 0.02/sqrt(2 * n_layer) (GPT-2 paper,
section 2.3). Parameter names follow the published checkpoints (`wte`, `wpe`, `h.N.attn.c_attn`,
`c_proj`, `ln_f`), so loading Hugging Face weights is a name mapping plus Conv1D transposes
(`trainer.hf`). This module does no file or network I/O.

The embedding may be padded from 50257 to 50304 rows (a multiple of 128) for faster matmuls on GPUs; the
logits of the padded rows are sliced off, so they never win a softmax or a sample.

Generation keeps a key/value cache: after the prompt, each new token costs one position of compute instead
of the whole sequence (`benchmarks/sample.py` measures the speed-up). Training never passes a cache and
runs exactly the cache-free code. Sampling draws one Gumbel variable per vocabulary entry and takes the
argmax of logits + noise (the Gumbel-max trick, equivalent to sampling the softmax). Cached and uncached
logits differ by float rounding (about 1e-6); an inverse-CDF sampler over 50257 entries flips a token when
any of its 50k boundaries moves past the uniform draw (measured here with random `small-cpu` weights, batch
4: 4 of 5 seeds diverged within 90 tokens), whereas Gumbel-max flips only when the two best scores lie
within that rounding of each other (no divergence in 20 seeds x 4 rows x 240 tokens).
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
    padded_vocab_size: int = 50304  # embedding rows; >= vocab_size, extra rows are never sampled
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


class KVCache:
    """Keys and values of the positions seen so far, one preallocated buffer for all layers.

    `pos` is the number of cached positions; `GPT.forward` appends its input's keys/values at `pos` and
    then advances it. The buffer takes the dtype and device of the first keys written (so it follows
    autocast), and holds at most `capacity` positions.
    """

    def __init__(self, n_layer: int, capacity: int):
        self.n_layer = n_layer
        self.capacity = capacity
        self.pos = 0
        self.kv: torch.Tensor | None = None  # (n_layer, 2, B, nh, capacity, hs)

    def reset(self) -> None:
        """Forget every cached position (the buffer is kept)."""
        self.pos = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys/values (B, nh, T, hs) of `layer` at `pos`; return all cached ones so far."""
        B, nh, T, hs = k.shape
        if self.pos + T > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; {self.pos} cached + {T} new overflow it")
        if self.kv is None:
            self.kv = torch.empty((self.n_layer, 2, B, nh, self.capacity, hs), dtype=k.dtype, device=k.device)
        end = self.pos + T
        self.kv[layer, 0, :, :, self.pos : end] = k
        self.kv[layer, 1, :, :, self.pos : end] = v
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]  # 2 x (B, nh, pos + T, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through `scaled_dot_product_attention`."""

    def __init__(self, config: GPTConfig, layer_idx: int = 0):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.layer_idx = layer_idx
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_SCALE_INIT = True
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        if cache is None:  # training and plain inference: one causal pass over the sequence
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )  # (B, nh, T, hs)
        else:
            start = cache.pos
            k, v = cache.update(self.layer_idx, k, v)  # (B, nh, start + T, hs)
            mask = None  # one new query sees every cached key
            if T > 1:  # SDPA's is_causal aligns the mask top-left, so queries after `start` need it spelled out
                key_pos = torch.arange(start + T, device=x.device)
                mask = key_pos[None, :] <= (start + torch.arange(T, device=x.device))[:, None]  # (T, start + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
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

    def __init__(self, config: GPTConfig, layer_idx: int = 0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)
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
                h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
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

    def _hidden(self, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """Run the trunk on tokens (B, T) placed after the cached positions; return ln_f output (B, T, C)."""
        B, T = idx.shape
        start = 0 if cache is None else cache.pos
        if start + T > self.config.block_size:
            raise ValueError(f"sequence length {start + T} exceeds the context length {self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, cache)
        if cache is not None:
            cache.pos += T
        return self.transformer.ln_f(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return logits (B, T, vocab_size) and, given targets (B, T), the mean cross-entropy loss.

        Args:
            idx: token ids (B, T).
            targets: next-token ids (B, T), -1 to ignore a position; None for no loss.
            cache: for incremental decoding, the keys/values of earlier positions; `idx` continues them
                (positions start at `cache.pos`) and the cache is extended. None for training.
        """
        x = self._hidden(idx, cache)
        logits = self.lm_head(x)[..., : self.config.vocab_size]  # (B, T, vocab); padded rows dropped
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Continue token sequences by sampling, one token at a time.

        The cached and the uncached paths produce the same tokens for the same generator state. Beyond
        `block_size` the context is cropped to the last `block_size` tokens; the cache is then refilled
        from the cropped window each step (as costly as no cache, and identical to it).

        Args:
            idx: prompt token ids (B, T), T >= 1.
            max_new_tokens: number of tokens to append.
            temperature: softmax temperature; 0 picks the most likely token (greedy).
            top_k: sample only among the k most likely tokens (None: all).
            top_p: sample only from the smallest set of tokens whose probability reaches top_p (1.0: all).
            generator: random source (on the model's device) for reproducible samples.
            use_cache: keep a KV cache between steps.

        Returns:
            The token ids (B, T + max_new_tokens), prompt included.
        """
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"generate needs a non-empty (B, T) prompt, got shape {tuple(idx.shape)}")
        block_size = self.config.block_size
        cache = KVCache(self.config.n_layer, min(block_size, idx.size(1) + max_new_tokens)) if use_cache else None
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                if cache is not None and cache.pos == idx.size(1) - 1 < cache.capacity:
                    x = idx[:, -1:]  # only the newest token is not cached yet
                else:
                    x = idx[:, -block_size:]
                    if cache is not None:
                        cache.reset()
                hidden = self._hidden(x, cache)[:, -1]  # (B, C)
                logits = self.lm_head(hidden)[:, : self.config.vocab_size]  # (B, vocab)
                next_token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
                idx = torch.cat([idx, next_token], dim=1)
        finally:
            self.train(was_training)
        return idx


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from logits (B, V) with temperature, top-k and top-p filtering.

    Computes in float32 and samples by Gumbel-max (argmax of logits/temperature + Gumbel noise), so the
    draw moves only when two candidates are within rounding of each other (see the module docstring).

    Args:
        logits: unnormalised scores (B, V).
        temperature: >= 0; 0 returns the argmax.
        top_k: keep the k largest logits (None or >= V: all).
        top_p: in (0, 1]; keep the smallest prefix of tokens, by probability, whose mass reaches top_p.
        generator: random source on the logits' device.

    Returns:
        Token ids (B, 1).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # mass before the token already reaches top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float32).tiny)))  # (B, V)
    return (logits + gumbel).argmax(dim=-1, keepdim=True)


def flops_per_token(config: GPTConfig, seq_len: int) -> float:
    """Training FLOPs per token, exactly as llm.c's `gpt2_estimate_mfu` counts them: 6N + 6 * L * C * T.

    N is every parameter of the model as llm.c allocates it: the padded token embedding (it is also the
    classifier, a real matmul), positions, LayerNorms and biases (a slight over-count llm.c accepts). The
    second term is the attention matmuls (QK^T and AV), forward plus backward.

    Args:
        config: model shape.
        seq_len: tokens per sequence T in training.

    Returns:
        FLOPs per trained token (forward + backward); 124M at T=1024: 803,478,528.
    """
    c, n_layer = config.n_embd, config.n_layer
    n_block = 12 * c * c + 13 * c  # qkv, attn proj, fc, fc proj matrices; their biases; two LayerNorms
    n = config.padded_vocab_size * c + config.block_size * c + n_layer * n_block + 2 * c  # + wte, wpe, ln_f
    return float(6 * n + 6 * n_layer * c * seq_len)


# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, in FLOP/s. Matched as substrings of
# `torch.cuda.get_device_name()`, first match wins, so specific names come before general ones.
_PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835.5e12),
    ("H100", 989.5e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989.5e12),  # also GH200
    ("A100", 312e12),
    ("L40S", 362.05e12),
    ("L4", 121e12),
)


def gpu_peak_flops(name: str) -> float | None:
    """Return the dense bf16 peak FLOP/s of a GPU by its device name, or None if unknown.

    Args:
        name: a name as `torch.cuda.get_device_name()` reports it, e.g. "NVIDIA H100 80GB HBM3".
    """
    return next((flops for key, flops in _PEAK_BF16_FLOPS if key in name), None)


def peak_flops(device: torch.device | str) -> float | None:
    """Return the dense bf16 peak FLOP/s of a device for MFU, or None (CPU, unknown GPU).

    Args:
        device: a torch device, e.g. "cuda:0" or "cpu".
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return gpu_peak_flops(torch.cuda.get_device_name(device))


def build_from_state_dict(config: GPTConfig, state_dict: dict[str, torch.Tensor]) -> GPT:
    """Build a GPT from a config and a complete state dict without a random initialisation first.

    Args:
        config: model shape.
        state_dict: our parameter names; `lm_head.weight` may be absent (it is tied to `transformer.wte`).

    Returns:
        The model on the state dict's device, in eval mode.
    """
    state_dict = dict(state_dict)
    state_dict.setdefault("lm_head.weight", state_dict.get("transformer.wte.weight"))
    with torch.device("meta"):
        model = GPT(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # assign=True loads the two names separately
    return model.eval()
