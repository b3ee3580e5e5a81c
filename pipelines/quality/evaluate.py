"""Held-out metrics of a quality classifier, next to a one-heuristic baseline on the same texts.

- accuracy: the share of test texts whose most probable class is their label;
- AUC: the probability that a random positive text scores above a random negative one (ties count half), i.e.
  the Mann-Whitney U statistic over n_pos * n_neg. Positive means label == positive_label for class names and
  label >= positive_label for integer labels (FineWeb-Edu counts scores >= 3 as educational).
- baseline: FineWeb's line-punctuation ratio (the share of non-empty lines ending in terminal punctuation;
  Penedo et al. 2024, arXiv:2406.17557, threshold 0.12) used as the score on the same test texts: its AUC, and
  for two classes its accuracy when predicting positive at ratio >= 0.12, as FineWeb keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from datatrove.utils.text import TERMINAL_PUNCTUATION

from pipelines.quality.model import Label, ModelCard, QualityModel, fasttext_label

_STOP_CHARS = tuple(TERMINAL_PUNCTUATION)  # what datatrove's FineWebQualityFilter tests line ends against
# FineWeb's value (Penedo et al. 2024), the default of datatrove's FineWebQualityFilter and of curate's
# `FineWebQualityConfig.line_punct_thr` (tests/test_quality.py holds them equal; this package does not import curate).
LINE_PUNCT_THRESHOLD = 0.12


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve from ranks, ties averaged.

    Args:
        positive: bool per example.
        scores: score per example (higher should mean positive).

    Returns:
        The AUC in [0, 1], or None when one of the two groups is empty.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based mean rank of each tie group
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def line_punct_ratio(text: str) -> float:
    """FineWeb's line-punctuation ratio: non-empty lines ending in terminal punctuation over non-empty lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    return sum(line.endswith(_STOP_CHARS) for line in lines) / len(lines) if lines else 0.0


def positives(labels: Sequence[Label], card: ModelCard) -> np.ndarray:
    """Which labels count as positive for AUC (see the module docstring)."""
    if card.score == "expected_value":
        return np.array([label >= card.positive_label for label in labels], dtype=bool)
    return np.array([label == card.positive_label for label in labels], dtype=bool)


def evaluate(model: QualityModel, texts: Sequence[str], labels: Sequence[Label]) -> dict[str, Any]:
    """Accuracy and AUC of `model` on labelled texts, with the line-punctuation baseline on the same texts.

    Args:
        model: the classifier.
        texts: held-out texts.
        labels: their labels.

    Returns:
        {"accuracy", "auc", "baseline": {"name", "threshold", "accuracy", "auc"}}; a metric that the texts cannot
        define (no texts, one class only) is None.
    """
    if not texts:
        return {"accuracy": None, "auc": None, "baseline": None}
    card = model.card
    truth = positives(labels, card)
    top = [max(row.items(), key=lambda kv: kv[1])[0] for row in model.probabilities(texts)]
    accuracy = float(np.mean([name == fasttext_label(label) for name, label in zip(top, labels, strict=True)]))
    ratios = np.array([line_punct_ratio(t) for t in texts])
    binary = len(card.labels) == 2
    return {
        "accuracy": accuracy,
        "auc": roc_auc(truth, model.score(texts)),
        "baseline": {
            "name": "fineweb_line_punct_ratio",
            "threshold": LINE_PUNCT_THRESHOLD,
            "accuracy": float(np.mean((ratios >= LINE_PUNCT_THRESHOLD) == truth)) if binary else None,
            "auc": roc_auc(truth, ratios),
        },
    }
