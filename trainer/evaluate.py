"""Evaluation: validation loss reduced across ranks, bits per byte on a text set, HellaSwag completion scoring.

(Samples from the fixed prompts come from `model.sampling.sample_text`, seeded, so they do not touch the
global RNG streams that an exact resume restores.)

HellaSwag (Zellers et al. 2019) is scored as llm.c (`dev/data/hellaswag.py`) and build-nanogpt do for a
base model without instruction tuning: for each of the 4 endings, the model reads context + " " + ending
and the ending's tokens are scored by their mean cross-entropy; the ending with the lowest mean loss is the
prediction (`acc_norm`; the sum of losses gives `acc`). GPT-2 124M scores about 0.294 acc_norm this way
(llm.c README), 0.25 is chance. The official validation file (10,042 items) is downloaded once into
`FINEFORGE_HOME/hellaswag/` when online (from `FINEFORGE_HELLASWAG_URL` when set, a mirror); a failed download
creates nothing; `--data` takes any file in the same JSONL format offline. `score_choices` scores already
tokenized items, so an ablation tokenizes its sets once for every run.

Bits per byte (`text_loss`): the summed next-token loss of a text, in bits, divided by its UTF-8 bytes. Unlike a
per-token loss it does not depend on the tokenizer (a tokenizer with longer tokens has fewer, harder
predictions per byte), so variants and models with other vocabularies compare directly; The Pile and nanochat
report it. The text is scored as training reads it: one stream of `[EOT, doc...]` units cut into windows of
`seq_len` tokens, each token a target exactly once; EOT targets (0 bytes) are left out of both sums.
"""

from __future__ import annotations

import math
import os
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import tokenizer
from pipelines.common.files import atomic_write
from pipelines.common.home import fineforge_home
from pipelines.common.inputs import iter_json_lines
from trainer.dist import DistInfo, all_reduce_sum

HELLASWAG_VAL_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
HELLASWAG_URL_ENV = "FINEFORGE_HELLASWAG_URL"  # a mirror of the file, where GitHub is out of reach


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


def hellaswag_file(data: str | Path | None = None) -> Path:
    """Return the HellaSwag JSONL to score: `data` if given, else the cached official val file (downloading it).

    Raises:
        FileNotFoundError: when no file is given and the download fails (offline), saying what to do.
    """
    if data is not None:
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: HellaSwag data file not found")
        return path
    cache = fineforge_home() / "hellaswag" / "hellaswag_val.jsonl"
    if not cache.is_file():
        url = os.environ.get(HELLASWAG_URL_ENV) or HELLASWAG_VAL_URL
        try:  # the whole file first, so that a failed download leaves nothing behind
            with urllib.request.urlopen(url, timeout=60) as response:
                body = response.read()
        except OSError as e:
            raise FileNotFoundError(
                f"cannot download {url} ({e}); pass --data with a local copy of hellaswag_val.jsonl"
            ) from e
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache) as f:
            f.write(body)
    return cache


def check_hellaswag_record(item: dict, where: str) -> dict:
    """Check one parsed HellaSwag record (`ctx`, 4 string `endings`, `label` in 0..3).

    Args:
        item: the JSON object.
        where: `file: line N`, for the error message.

    Returns:
        The record.

    Raises:
        ValueError: naming `where` when the object is not such a record.
    """
    try:
        ok = (
            isinstance(item["ctx"], str)
            and len(item["endings"]) == 4
            and all(isinstance(e, str) for e in item["endings"])
            and int(item["label"]) in range(4)
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: not a HellaSwag record ({e})") from e
    if not ok:
        raise ValueError(f"{where}: a HellaSwag record needs ctx, 4 endings and a label in 0..3")
    return item


def iter_hellaswag(path: Path, limit: int | None = None) -> Iterator[dict]:
    """Yield HellaSwag items (official JSONL: `ctx`, `endings` (4 strings), `label`), checking each one.

    Raises:
        ValueError: naming the file and line of a malformed record.
    """
    for n, (lineno, item) in enumerate(iter_json_lines(str(path))):
        if limit is not None and n >= limit:
            return
        yield check_hellaswag_record(item, f"{path}: line {lineno}")


@torch.no_grad()
def score_choices(
    model: nn.Module, context: Sequence[int], endings: Sequence[Sequence[int]], device
) -> tuple[int, int]:
    """Score tokenized completions of one context; return (prediction by summed loss, by mean loss).

    Args:
        model: an unwrapped GPT in eval mode.
        context: the context's tokens.
        endings: each candidate ending's tokens (as it follows the context, leading space included).
        device: the model's device.

    Returns:
        The index of the ending with the lowest summed loss (`acc`) and with the lowest mean loss (`acc_norm`).
    """
    block = model.config.block_size
    rows, masks = [], []
    for end in endings:
        rows.append((list(context) + list(end))[-block:])
        masks.append(([0] * len(context) + [1] * len(end))[-block:])
    n, width = len(rows), max(len(r) for r in rows)
    tokens = torch.zeros(n, width, dtype=torch.long)
    mask = torch.zeros(n, width, dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    tokens, mask = tokens.to(device), mask.to(device)
    logits, _ = model(tokens)  # (n, width, vocab)
    losses = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1), reduction="none"
    ).view(n, -1)  # (n, width - 1): loss of predicting token t+1
    target_mask = mask[:, 1:].float()
    summed = (losses * target_mask).sum(dim=1)
    mean = summed / target_mask.sum(dim=1)
    return int(summed.argmin()), int(mean.argmin())


def hellaswag_tokens(item: dict) -> tuple[list[int], list[list[int]]]:
    """Tokenize a HellaSwag item as llm.c does: the context, and each ending with a leading space."""
    return tokenizer.encode(item["ctx"]), [tokenizer.encode(" " + e) for e in item["endings"]]


def score_hellaswag_item(model: nn.Module, item: dict, device: torch.device) -> tuple[int, int]:
    """Score one item; return (prediction by summed loss, prediction by mean loss) of the 4 endings."""
    return score_choices(model, *hellaswag_tokens(item), device)


def hellaswag(model: nn.Module, path: Path, device: torch.device, limit: int | None = None) -> dict:
    """Evaluate HellaSwag completion accuracy.

    Args:
        model: an unwrapped GPT in eval mode.
        path: HellaSwag JSONL file.
        device: the model's device.
        limit: score only the first N items.

    Returns:
        {"items", "acc", "acc_norm", "data"}.

    Raises:
        ValueError: when the file holds no items.
    """
    model.eval()
    n = correct = correct_norm = 0
    for item in iter_hellaswag(path, limit):
        pred, pred_norm = score_hellaswag_item(model, item, device)
        label = int(item["label"])
        n += 1
        correct += pred == label
        correct_norm += pred_norm == label
    if n == 0:
        raise ValueError(f"{path}: no HellaSwag items")
    return {"items": n, "acc": correct / n, "acc_norm": correct_norm / n, "data": str(path)}


def run_hellaswag(checkpoint: str | Path, data: str | Path | None = None, limit: int | None = None) -> dict:
    """Load a model (training checkpoint or HF folder) and score HellaSwag on the best available device.

    Args:
        checkpoint: a trainer checkpoint file or a Hugging Face GPT-2 folder.
        data: HellaSwag JSONL; None means the official val file (downloaded once when online).
        limit: score only the first N items.

    Returns:
        {"items", "acc", "acc_norm", "data", "checkpoint"}.
    """
    from trainer.checkpoint import load_model

    path = hellaswag_file(data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(checkpoint, device)
    return {**hellaswag(model, path, device, limit), "checkpoint": str(checkpoint)}


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
