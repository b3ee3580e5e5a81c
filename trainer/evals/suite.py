"""Score a model on the early-signal suite: `fineforge eval suite` (and `fineforge eval hellaswag`, its one-task case).

Each choice's continuation is scored by the summed log-probability of its tokens after its context (context and
continuation tokenized apart, as llm.c does, and cropped on the left to the model's context). Two predictions per
item, as lighteval reports them (`src/lighteval/metrics/normalizations.py`):

- `acc`: the choice with the highest summed log-probability (lighteval `loglikelihood_acc`);
- `acc_norm`: the highest log-probability per character of the continuation (`LogProbCharNorm`), which removes
  the bias towards short answers that a sum has; characters, not tokens, so that it does not depend on the
  tokenizer.

Per task the result is `n` (items scored), `acc`, `acc_norm` and `random` (the mean chance of guessing an item,
from its number of choices). The aggregate `centered` is the mean over tasks of (acc_norm - random) /
(1 - random): 0 at chance and 1 when every item is right, so 2-choice and 5-choice tasks weigh alike (DCLM's CORE
centres its tasks the same way; Li et al. 2024, section 3.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import tokenizer
from pipelines.common.hashing import file_sha256
from trainer.evals.data import iter_records, published, task_file
from trainer.evals.tasks import TASKS, Item, to_item


@dataclass(frozen=True)
class Encoded:
    """A tokenized item: per choice (context tokens, continuation tokens), continuation characters, the label."""

    pairs: list[tuple[list[int], list[int]]]
    chars: list[int]
    label: int


def encode_item(item: Item) -> Encoded:
    """Tokenize a cloze item (each context and continuation apart)."""
    pairs = [(tokenizer.encode(c), tokenizer.encode(t)) for c, t in item.choices]
    return Encoded(pairs, [len(t) for _, t in item.choices], item.label)


@torch.no_grad()
def continuation_logprobs(model: nn.Module, pairs: list[tuple[list[int], list[int]]], device) -> list[float]:
    """The summed log-probability of each continuation after its context, in one padded batch.

    Args:
        model: an unwrapped GPT in eval mode.
        pairs: (context tokens, continuation tokens) per choice; a row longer than the model's context keeps its
            last `block_size` tokens.
        device: the model's device.

    Returns:
        One log-probability (nats, <= 0) per pair.
    """
    block = model.config.block_size
    rows, masks = [], []
    for context, continuation in pairs:
        rows.append((list(context) + list(continuation))[-block:])
        masks.append(([0] * len(context) + [1] * len(continuation))[-block:])
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
    return (-(losses * mask[:, 1:].float()).sum(dim=1)).tolist()


def predict(model: nn.Module, item: Encoded, device) -> tuple[int, int]:
    """The predicted choice of an item by summed log-probability (`acc`) and per character (`acc_norm`)."""
    logprobs = continuation_logprobs(model, item.pairs, device)
    norm = [lp / max(c, 1) for lp, c in zip(logprobs, item.chars, strict=True)]
    return max(range(len(logprobs)), key=logprobs.__getitem__), max(range(len(norm)), key=norm.__getitem__)


def read_items(task: str, path: Path, limit: int | None = None) -> list[Encoded]:
    """The first `limit` (all when None) items of a task file, checked and tokenized.

    Raises:
        ValueError: a record not in the task's layout (naming the file and line or row), or no items.
    """
    items = []
    for where, record in iter_records(path):
        if limit is not None and len(items) >= limit:
            break
        items.append(encode_item(to_item(TASKS[task], record, where)))
    if not items:
        raise ValueError(f"{path}: no {task} items")
    return items


def score_items(model: nn.Module, items: list[Encoded], device) -> dict[str, Any]:
    """A task's result on tokenized items: {"n", "acc", "acc_norm", "random"}."""
    model.eval()
    correct = correct_norm = 0
    for item in items:
        pred, pred_norm = predict(model, item, device)
        correct += pred == item.label
        correct_norm += pred_norm == item.label
    n = len(items)
    chance = sum(1 / len(item.pairs) for item in items) / n
    return {"n": n, "acc": correct / n, "acc_norm": correct_norm / n, "random": chance}


def centered(value: float, random: float) -> float:
    """A score centred on chance: 0 at `random`, 1 at a perfect score."""
    return (value - random) / (1 - random)


def aggregate(results: dict[str, dict[str, Any]]) -> float:
    """The suite's `centered` score: the mean centred acc_norm of its tasks."""
    return sum(centered(r["acc_norm"], r["random"]) for r in results.values()) / len(results)


def run_suite(
    checkpoint: str | Path,
    tasks: list[str],
    data_dir: str | Path | None = None,
    limit: int | None = None,
    files: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Load a model (run folder, checkpoint or Hugging Face folder) and score it on the tasks.

    A missing checkpoint is refused first; then every task's file is found (or downloaded) and read before the
    model is loaded, so a missing or bad file fails in seconds.

    Args:
        checkpoint: a run folder, a trainer checkpoint file or a Hugging Face GPT-2 folder.
        tasks: task names (`tasks.parse_tasks`).
        data_dir: folder of `<task>.jsonl|.parquet`; None: `FINEFORGE_HOME/evals/`, downloaded once.
        limit: score only the first N items of each task.
        files: a file per task that overrides the lookup (`fineforge eval hellaswag --data`).

    Returns:
        {"checkpoint", "tasks" {task: {"n", "acc", "acc_norm", "random", "data", "sha256", "source"}}, "centered"};
        `source` is the published original a downloaded file was made from (`data.published`), else None.

    Raises:
        FileNotFoundError: a task without a file (the message says how to provide it), or no model.
        ValueError: a malformed record (naming file and line) or an unloadable model.
    """
    from trainer.checkpoint import existing_model_path, load_model

    existing_model_path(checkpoint)  # before any task file is looked for or downloaded
    files = files or {}
    paths = {t: Path(files[t]) if t in files else task_file(TASKS[t], data_dir) for t in tasks}
    for task, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {task} data file not found")
    items = {t: read_items(t, p, limit) for t, p in paths.items()}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(checkpoint, device)
    results = {
        t: {**score_items(model, items[t], device), "data": str(p), "sha256": file_sha256(p), "source": published(p)}
        for t, p in paths.items()
    }
    return {"checkpoint": str(checkpoint), "tasks": results, "centered": aggregate(results)}


def format_table(result: dict[str, Any]) -> str:
    """The suite's result as a plain-text table, one task a line and the aggregate last."""
    lines = [f"{'task':<16}{'n':>7}{'acc':>8}{'acc_norm':>10}{'random':>8}"]
    for task, r in result["tasks"].items():
        lines.append(f"{task:<16}{r['n']:>7}{r['acc']:>8.4f}{r['acc_norm']:>10.4f}{r['random']:>8.4f}")
    lines.append(f"centered (mean of (acc_norm - random) / (1 - random)): {result['centered']:.4f}")
    return "\n".join(lines)
