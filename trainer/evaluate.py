"""Evaluation: validation loss reduced across ranks, and HellaSwag completion scoring.

(Samples from the fixed prompts come from `model.sampling.sample_text`, seeded, so they do not touch the
global RNG streams that an exact resume restores.)

HellaSwag (Zellers et al. 2019) is scored as llm.c (`dev/data/hellaswag.py`) and build-nanogpt do for a
base model without instruction tuning: for each of the 4 endings, the model reads context + " " + ending
and the ending's tokens are scored by their mean cross-entropy; the ending with the lowest mean loss is the
prediction (`acc_norm`; the sum of losses gives `acc`). GPT-2 124M scores about 0.294 acc_norm this way
(llm.c README), 0.25 is chance. The official validation file (10,042 items) is downloaded once into
`FINEFORGE_HOME/hellaswag/` when online (from `FINEFORGE_HELLASWAG_URL` when set, a mirror); a failed download
creates nothing; `--data` takes any file in the same JSONL format offline.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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
def val_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], info: DistInfo, autocast) -> float:
    """Mean validation loss over every rank's batches, weighted by sequences.

    Args:
        model: the (possibly wrapped) model; it is put back in train mode afterwards.
        batches: this rank's (inputs, targets) batches.
        info: rank information (the sums are all-reduced).
        autocast: a context manager factory for mixed precision (a no-op on CPU).

    Returns:
        The mean loss, identical on every rank.
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


def iter_hellaswag(path: Path, limit: int | None = None) -> Iterator[dict]:
    """Yield HellaSwag items (official JSONL: `ctx`, `endings` (4 strings), `label`), checking each one.

    Raises:
        ValueError: naming the file and line of a malformed record.
    """
    for n, (lineno, item) in enumerate(iter_json_lines(str(path))):
        if limit is not None and n >= limit:
            return
        try:
            ok = isinstance(item["ctx"], str) and len(item["endings"]) == 4 and int(item["label"]) in range(4)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: line {lineno}: not a HellaSwag record ({e})") from e
        if not ok:
            raise ValueError(f"{path}: line {lineno}: a HellaSwag record needs ctx, 4 endings and a label in 0..3")
        yield item


@torch.no_grad()
def score_hellaswag_item(model: nn.Module, item: dict, device: torch.device) -> tuple[int, int]:
    """Score one item; return (prediction by summed loss, prediction by mean loss) of the 4 endings."""
    ctx = tokenizer.encode(item["ctx"])
    endings = [tokenizer.encode(" " + e) for e in item["endings"]]
    block = model.config.block_size
    rows, masks = [], []
    for end in endings:
        seq, mask = (ctx + end)[-block:], ([0] * len(ctx) + [1] * len(end))[-block:]
        rows.append(seq)
        masks.append(mask)
    width = max(len(r) for r in rows)
    tokens = torch.zeros(4, width, dtype=torch.long)
    mask = torch.zeros(4, width, dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    tokens, mask = tokens.to(device), mask.to(device)
    logits, _ = model(tokens)  # (4, width, vocab)
    losses = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1), reduction="none"
    ).view(4, -1)  # (4, width - 1): loss of predicting token t+1
    target_mask = mask[:, 1:].float()
    summed = (losses * target_mask).sum(dim=1)
    mean = summed / target_mask.sum(dim=1)
    return int(summed.argmin()), int(mean.argmin())


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
