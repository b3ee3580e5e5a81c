"""`fineforge quality train`: a fastText classifier on your own labels, with its card and held-out metrics.

The texts (`pipelines.quality.examples`) are split per class into training and test sets by a seed, normalised
(`pipelines.quality.text`) and written as fastText's `__label__<class> <tokens>` lines in the seeded training
order; fastText trains a supervised model on word n-grams with one thread, in a process of its own
(`pipelines.quality.fit`), which with a fixed seed makes the model file byte-identical from run to run. (With one
thread fastText 0.9.2 initialises only the first tenth of the embedding rows at random and leaves the rest at
zero; the words come first and are all covered unless the vocabulary exceeds a tenth of the rows, while most
n-gram buckets start at zero and learn from there. Deterministic models are worth that.) The test texts are
then scored by the trained model exactly as a curate run will score documents, and `MODEL.json` is written last,
atomically:

`{format, model, model_sha256, labels, positive_label, score, n_train, n_test, accuracy, auc, baseline, settings,
data: [{path, sha256, role, documents, skipped_empty}], created}`

A model file is replaced only when it is FineForge's (its card says so): an `--out` that holds some other file
is refused. Between the new model and its new card the old card no longer matches the file's sha256, so a crash
there leaves a model that every reader refuses, never a model with someone else's card.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.common.files import check_replaceable, read_json, write_json_atomic
from pipelines.common.hashing import file_sha256
from pipelines.quality.backend import training_fasttext
from pipelines.quality.config import ClassifierSettings
from pipelines.quality.evaluate import evaluate
from pipelines.quality.examples import NEGATIVE, POSITIVE, Examples, read_examples, split
from pipelines.quality.fit import fit
from pipelines.quality.model import Label, ModelCard, QualityModel, card_path, fasttext_label
from pipelines.quality.text import normalise

CARD_FORMAT = "fineforge.quality-classifier/1"


class ModelOutputError(ValueError):
    """`--out` cannot take the model (wrong suffix, or a file FineForge did not write)."""


def check_output(out: Path) -> None:
    """Refuse an output path that is not `*.bin` or that holds a file other than a FineForge model.

    Args:
        out: the model path.

    Raises:
        ModelOutputError: naming the path and why.
    """
    if out.suffix != ".bin":
        raise ModelOutputError(f"{out}: the model file must end in .bin (its card goes beside it as .json)")
    card = card_path(out)
    ours = (read_json(card) or {}).get("format") == CARD_FORMAT if card.is_file() else False
    for path in (out, card):  # the model is FineForge's only where its card says so
        check_replaceable(path, ours, "a FineForge quality model", "--out", ModelOutputError)


def resolve_labels(labels: list[Label], positive_label: str | None) -> tuple[list[Label], Label, str]:
    """The classes in order, the positive class and the kind of score.

    Args:
        labels: every example's label (all int or all str).
        positive_label: the user's choice, as typed (None: the default).

    Returns:
        (sorted classes, positive class, "expected_value" for integer labels or "probability").

    Raises:
        ValueError: the positive label is not a class, or class names leave it ambiguous.
    """
    classes = sorted(set(labels))
    integers = all(type(x) is int for x in classes)
    if positive_label is None:
        if integers:
            return classes, classes[-1], "expected_value"
        if set(classes) == {NEGATIVE, POSITIVE}:
            return classes, POSITIVE, "probability"
        raise ValueError(f"classes {classes}: say which one is good with --positive-label")
    chosen: Label = positive_label
    if integers:
        try:
            chosen = int(positive_label)
        except ValueError:
            raise ValueError(
                f"--positive-label {positive_label!r} is not one of the integer classes {classes}"
            ) from None
    if chosen not in classes:
        raise ValueError(f"--positive-label {positive_label!r} is not one of the classes {classes}")
    return classes, chosen, "expected_value" if integers else "probability"


def fasttext_options(settings: ClassifierSettings) -> dict[str, Any]:
    """`train_supervised` keyword arguments for the settings: one thread, seeded, silent."""
    return {
        "epoch": settings.epochs,
        "lr": settings.lr,
        "wordNgrams": settings.ngrams,
        "dim": settings.dim,
        "bucket": settings.buckets,
        "minCount": settings.min_count,
        "seed": settings.seed,
        "thread": 1,  # fastText's Hogwild threads make the training order, and so the model, vary from run to run
        "verbose": 0,
    }


def train_classifier(
    examples: Examples, out: Path, settings: ClassifierSettings, positive_label: str | None = None
) -> dict[str, Any]:
    """Train, save and evaluate a quality classifier; write `out` and its card `out.json`.

    Args:
        examples: labelled texts.
        out: the model file (`*.bin`).
        settings: split and fastText settings.
        positive_label: the good class (default: the highest integer, or `positive`).

    Returns:
        The card (also written beside the model).

    Raises:
        ModelOutputError: `out` cannot be written.
        TrainingDivergedError: fastText met a NaN on every attempt (lower the learning rate).
        ValueError: the labels do not define a positive class.
    """
    out = Path(out).expanduser().resolve()
    check_output(out)
    classes, positive, score = resolve_labels(examples.labels, positive_label)
    train_idx, test_idx = split(examples.labels, settings.test_fraction, settings.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quality-train-") as tmp:
        lines = Path(tmp) / "train.txt"
        with open(lines, "w", encoding="utf-8") as f:
            for i in train_idx:
                f.write(f"{fasttext_label(examples.labels[i])} {normalise(examples.texts[i])}\n")
        saved = Path(tmp) / "model.bin"
        fit(lines, saved, fasttext_options(settings))
        os.replace(saved, out)
    model = training_fasttext().load_model(str(out))
    card = ModelCard(out, file_sha256(out), tuple(classes), positive, score, {})
    metrics = evaluate(
        QualityModel(card, model), [examples.texts[i] for i in test_idx], [examples.labels[i] for i in test_idx]
    )
    fields = {
        "format": CARD_FORMAT,
        "model": out.name,
        "model_sha256": card.sha256,
        "labels": classes,
        "positive_label": positive,
        "score": score,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        **metrics,
        "settings": settings.model_dump(),
        "data": examples.data,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(card_path(out), fields)
    return fields


def train_from_inputs(
    out: Path,
    settings: ClassifierSettings,
    data: list[str] | None = None,
    positive: list[str] | None = None,
    negative: list[str] | None = None,
    text_field: str = "text",
    label_field: str = "label",
    positive_label: str | None = None,
) -> dict[str, Any]:
    """The whole of `fineforge quality train` (and the `quality-train` flow): check `out`, read, train.

    Args:
        out: the model file (`*.bin`), checked before any input is read.
        settings: split and fastText settings.
        data: labelled JSONL/Parquet inputs, or
        positive: collections of good text, with
        negative: collections of text to filter out.
        text_field: field or column holding the text.
        label_field: field or column holding the label (labelled inputs).
        positive_label: the good class (default: the highest integer, or `positive`).

    Returns:
        The model's card.
    """
    out = Path(out).expanduser().resolve()
    check_output(out)
    examples = read_examples(data or [], positive or [], negative or [], text_field, label_field)
    return train_classifier(examples, out, settings, positive_label)
