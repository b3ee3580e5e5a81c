"""Evaluation: validation loss reduced across ranks and bits per byte on a text set.

(Samples from the fixed prompts come from `model.sampling.sample_text`, seeded, so they do not touch the
global RNG streams that an exact resume restores. Multiple-choice tasks, HellaSwag included, are scored by
`trainer.evals`.)

Bits per byte (`text_loss`): the summed next-token loss of a text, in bits, divided by its UTF-8 bytes. Unlike a
per-token loss it does not depend on the tokenizer (a tokenizer with longer tokens has fewer, harder
predictions per byte), so variants and models with other vocabularies compare directly; The Pile and nanochat
report it. The text is scored as training reads it: one stream of `[EOT, doc...]` units cut into windows of
`seq_len` tokens, each token a target exactly once; EOT targets (0 bytes) are left out of both sums.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import tokenizer
from trainer.dist import DistInfo, all_reduce_sum


@torch.no_grad()
def val_sums(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], info: DistInfo, autocast
) -> tuple[float, float]:
    """Summed validation loss and sequence count over every rank's batches (what `val_loss` averages).

    Args:
        model: the (possibly wrapped) model; it is put back in train mode afterwards.
        batches: this rank's (inputs, targets) batches.
        info: rank information (the sums are all-reduced).
        autocast: a context manager factory for mixed precision (a no-op on CPU).

    Returns:
        (sum of per-sequence mean losses, sequences), identical on every rank.
    """
    model.eval()
    total, count = 0.0, 0.0
    for x, y in batches:
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        with autocast():
            _, loss = model(x, y)
        total += loss.item() * x.size(0)
        count += x.size(0)
    model.train()
    total, count = all_reduce_sum([total, count], info)
    return total, count


def val_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], info: DistInfo, autocast) -> float:
    """Mean validation loss over every rank's batches, weighted by sequences (arguments as `val_sums`).

    Returns:
        The mean loss, identical on every rank.
    """
    total, count = val_sums(model, batches, info, autocast)
    return total / max(count, 1.0)


@torch.no_grad()
def text_loss(model: nn.Module, stream: np.ndarray, seq_len: int, device, batch_size: int = 8) -> dict:
    """Mean loss per token and bits per byte of a token stream (see the module docstring).

    Args:
        model: an unwrapped GPT in eval mode.
        stream: GPT-2 tokens of the text set, `<|endoftext|>` before every document.
        seq_len: tokens per window (the context the model was trained with).
        device: the model's device.
        batch_size: windows per forward pass.

    Returns:
        {"tokens" (targets scored), "bytes", "loss" (nats per token), "bpb" (bits per UTF-8 byte)}.

    Raises:
        ValueError: the stream holds no token to score, or seq_len exceeds the model's context.
    """
    if seq_len > model.config.block_size:
        raise ValueError(f"seq_len {seq_len} exceeds the model's context of {model.config.block_size} tokens")
    stream = np.asarray(stream, dtype=np.int64)
    byte_lengths = torch.tensor(tokenizer.token_byte_lengths(), dtype=torch.float64)
    starts = list(range(0, max(stream.size - 1, 0), seq_len))
    nats, tokens, nbytes = 0.0, 0, 0.0
    for lo in range(0, len(starts), batch_size):
        group = starts[lo : lo + batch_size]
        width = min(seq_len, stream.size - 1 - group[0])
        rows = np.full((len(group), width + 1), -1, dtype=np.int64)
        for i, start in enumerate(group):
            window = stream[start : start + width + 1]
            rows[i, : window.size] = window
        batch = torch.from_numpy(rows)
        x, y = batch[:, :-1].clamp(min=0).to(device), batch[:, 1:]  # (B, T); -1 marks padding
        y = torch.where(y == tokenizer.EOT_TOKEN, torch.full_like(y, -1), y)
        logits, _ = model(x)  # (B, T, vocab)
        losses = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y.to(device).reshape(-1), ignore_index=-1, reduction="none"
        )
        scored = y.reshape(-1) >= 0
        nats += float(losses.double().sum())
        tokens += int(scored.sum())
        nbytes += float(byte_lengths[y.reshape(-1)[scored]].sum())
    if tokens == 0 or nbytes == 0:
        raise ValueError("the text set holds no token to score")
    return {"tokens": tokens, "bytes": int(nbytes), "loss": nats / tokens, "bpb": nats / (math.log(2) * nbytes)}
