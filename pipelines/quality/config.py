"""Settings of the quality classifier: how to train one (`ClassifierSettings`) and how curate uses one
(`QualityConfig`, the `quality:` section of a curate config).

Plain pydantic models with no data-stack imports, so the Prefect flows can use them as form parameters without
paying for datatrove or fastText at import time.

Training defaults follow fastText's own text-classification tutorial (word bigrams, learning rate 0.5-1.0, 25
epochs on small data) with fastText's default 100 dimensions and 2M hash buckets, as DCLM's classifier uses
(Li et al. 2024, arXiv:2406.11794, section 4.4: bigram fastText). On the 499 DCLM-labelled texts of the shared
corpora, averaged over five seeded 90/10 splits, lr 0.5 and 25 epochs gave held-out AUC 0.86 against 0.80 at
fastText's supervised defaults (lr 0.1, 5 epochs), whose probabilities stay near the class prior.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ClassifierSettings(BaseModel):
    """fastText training settings; the same seed and settings give a byte-identical model."""

    model_config = ConfigDict(extra="forbid")

    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of each class held out for evaluation.")
    seed: int = Field(0, ge=0, description="Seed of the split, the shuffle and fastText itself.")
    epochs: int = Field(25, ge=1, le=10_000, description="Passes over the training texts.")
    ngrams: int = Field(2, ge=1, le=6, description="Word n-grams (2: words and bigrams, as DCLM).")
    lr: float = Field(0.5, gt=0.0, le=10.0, title="Learning rate", description="Learning rate.")
    dim: int = Field(100, ge=2, le=1024, description="Embedding dimensions.")
    # The model file holds (words + buckets) x dim float32: about 800 MB at 2M buckets and 100 dimensions.
    buckets: int = Field(2_000_000, ge=1_000, le=100_000_000, description="Hash buckets of the word n-grams.")
    min_count: int = Field(1, ge=1, description="Words seen fewer times are ignored.")


class QualityConfig(BaseModel):
    """The curate `quality` stage: score every document that survives the heuristic filters, then cut.

    Give either `threshold` (keep scores >= it) or `keep_fraction` (keep the top share of this run's scores,
    ties broken by document id). With `score_only` every document is kept and only scored.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Run the quality classifier after the heuristic filters.")
    model: str | None = Field(None, description="fastText model from `fineforge quality train` (MODEL.json beside).")
    # 0.5: the more probable class wins, for a probability (or 0/1 labels); FineWeb-Edu cuts its 0-5 scale at 3.
    threshold: float | None = Field(
        0.5, description="Keep documents scoring at least this (a probability, or an expected label value)."
    )
    # DCLM keeps the top 10% of its fastText scores (Li et al. 2024, arXiv:2406.11794, section 4.4).
    keep_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="Instead of a threshold: keep this top share of the scored documents."
    )
    score_only: bool = Field(False, description="Score every document but drop none.")

    @model_validator(mode="after")
    def _one_cut(self) -> QualityConfig:
        """Exactly one of threshold and keep_fraction; a model when enabled."""
        if self.keep_fraction is not None and "threshold" not in self.model_fields_set:
            self.threshold = None  # keep_fraction replaces the default threshold
        if (self.threshold is None) == (self.keep_fraction is None):
            raise ValueError("quality: give either threshold or keep_fraction, not both (and not neither)")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"quality.threshold must be a finite number, not {self.threshold}")
        if self.enabled and not self.model:
            raise ValueError("quality.enabled needs quality.model: a model file from `fineforge quality train`")
        return self

    def model_path(self) -> Path:
        """The model file, absolute (relative paths are taken from the current directory)."""
        if not self.model:
            raise ValueError("quality.model is not set")
        return Path(self.model).expanduser().resolve()
