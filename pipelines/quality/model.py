"""A trained quality classifier: the fastText file `MODEL.bin` and its card `MODEL.json`, checked before use.

The card (written by `pipelines.quality.train`) says what the model's labels mean and how to turn its label
probabilities into one score:

- `score: "probability"`: class-name labels; the score is the probability of `positive_label`.
- `score: "expected_value"`: integer labels (0/1, or FineWeb-Edu's 0-5); the score is the expected label,
  sum(p(label) * label), so 0/1 labels give p(1) and 0-5 labels a score on the same 0-5 scale.

A model is checked before any document is read: the file must exist, its card must be valid, the file's sha256
must equal the card's `model_sha256`, and its structure must be whole (`pipelines.quality.fasttext_file`). Neither
check is optional: fastText 0.9.2 does not reject a truncated `.bin` file but allocates without bound while
reading it (16 GB in 10 minutes here before it was killed), loops for minutes on random bytes, or loads half a
file and scores everything 0.0; and a card's hash can be edited to match a damaged file. So fastText only ever
reads a file whose every size has been checked against its length, and first in a child process capped in memory
and time (`pipelines.quality.trial_load`), so that a load that still failed could not take a run down or hang it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.hashing import file_sha256
from pipelines.quality.fasttext_file import MAGIC, FastTextFileError, check_fasttext_file
from pipelines.quality.text import normalise
from pipelines.quality.trial_load import TrialLoadError, trial_load

LABEL_PREFIX = "__label__"  # fastText's default label prefix
SCORE_KINDS = ("probability", "expected_value")
CARD_FIELDS = ("model_sha256", "labels", "positive_label", "score")

Label = int | str


class QualityModelError(ValueError):
    """A model file or card that cannot be used; the message names the file and the problem."""


def card_path(model_path: str | Path) -> Path:
    """The card beside a model file: `MODEL.bin` -> `MODEL.json`."""
    return Path(model_path).with_suffix(".json")


def fasttext_label(label: Label) -> str:
    """The fastText label string of a class (`__label__1`, `__label__positive`)."""
    return f"{LABEL_PREFIX}{label}"


@dataclass(frozen=True)
class ModelCard:
    """What a model's labels mean, read from its `MODEL.json` (see the module docstring).

    Attributes:
        path: the model file (absolute).
        sha256: the model file's sha256 as the card records it.
        labels: the classes, in the order the card lists them.
        positive_label: the class whose probability is the score (`probability`), or the lowest class counted
            as positive when measuring AUC (`expected_value`).
        score: `probability` or `expected_value`.
        fields: the whole card.
    """

    path: Path
    sha256: str
    labels: tuple[Label, ...]
    positive_label: Label
    score: str
    fields: dict[str, Any]

    @classmethod
    def read(cls, model_path: str | Path) -> ModelCard:
        """Read and validate the card of `model_path` (the model file itself is not read).

        Args:
            model_path: the `.bin` model file.

        Returns:
            The card.

        Raises:
            QualityModelError: the model file or its card is missing, or the card is not valid.
        """
        path = Path(model_path).expanduser().resolve()
        if path.is_dir():
            raise QualityModelError(f"quality model {path} is a folder; give the MODEL.bin file inside it")
        if not path.is_file():
            raise QualityModelError(f"quality model {path} does not exist (train one with `fineforge quality train`)")
        card_file = card_path(path)
        try:
            fields = json.loads(card_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise QualityModelError(
                f"quality model {path} has no card {card_file.name} beside it (written by `fineforge quality "
                "train`; it holds the labels, the positive label and the model's sha256)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise QualityModelError(f"{card_file}: not a readable JSON card ({err})") from err
        if not isinstance(fields, dict) or (missing := [k for k in CARD_FIELDS if k not in fields]):
            raise QualityModelError(
                f"{card_file}: the card lacks {missing if isinstance(fields, dict) else CARD_FIELDS}"
            )
        labels = fields["labels"]
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, int | str) for x in labels):
            raise QualityModelError(f"{card_file}: `labels` must list at least two class names or integers")
        if fields["positive_label"] not in labels:
            raise QualityModelError(f"{card_file}: positive_label {fields['positive_label']!r} is not in {labels}")
        if fields["score"] not in SCORE_KINDS:
            raise QualityModelError(f"{card_file}: `score` must be one of {SCORE_KINDS}, not {fields['score']!r}")
        if fields["score"] == "expected_value" and not all(type(x) is int for x in labels):
            raise QualityModelError(f"{card_file}: an expected_value score needs integer labels, not {labels}")
        return cls(path, str(fields["model_sha256"]), tuple(labels), fields["positive_label"], fields["score"], fields)

    def verify(self) -> None:
        """Check the model file against its card (sha256), walk its fastText structure, then trial-load it.

        The trial load runs in a child process bounded in memory and time (`pipelines.quality.trial_load`).

        Raises:
            QualityModelError: the file was changed, truncated or replaced since the card was written, its
                structure is broken (even where the card's sha256 was edited to match it), or fastText could not
                load it within the trial's memory and time bounds.
        """
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head != MAGIC.to_bytes(4, "little"):
            raise QualityModelError(f"quality model {self.path} is not a fastText .bin file")
        actual = file_sha256(self.path)
        if actual != self.sha256:
            raise QualityModelError(
                f"quality model {self.path} is damaged or replaced: its sha256 is {actual}, its card "
                f"{card_path(self.path).name} says {self.sha256}"
            )
        try:
            check_fasttext_file(self.path)
        except FastTextFileError as err:
            raise QualityModelError(f"quality model {self.path} is damaged: {err}") from None
        try:
            trial_load(self.path)
        except TrialLoadError as err:
            raise QualityModelError(f"quality model {err}") from None


def check_model(model_path: str | Path) -> ModelCard:
    """Validate a model before a run uses it: card, sha256, fastText structure, and a bounded trial load.

    Args:
        model_path: the `.bin` model file.

    Returns:
        Its card.

    Raises:
        QualityModelError: naming the file and what is wrong with it.
    """
    card = ModelCard.read(model_path)
    card.verify()
    return card


class QualityModel:
    """A classifier that scores documents: a fastText model and the card that says what its labels mean.

    Args:
        card: the model's card.
        fasttext_model: the loaded (or just trained) fastText model; `QualityModel.load` checks the file first.
    """

    def __init__(self, card: ModelCard, fasttext_model: Any):
        known = set(fasttext_model.get_labels())
        if missing := [x for x in card.labels if fasttext_label(x) not in known]:
            raise QualityModelError(f"quality model {card.path} has no class {missing} that its card lists")
        self.card = card
        self._model = fasttext_model
        self._values = {fasttext_label(x): x for x in card.labels}
        self._positive = fasttext_label(card.positive_label)

    @classmethod
    def load(cls, model_path: str | Path) -> QualityModel:
        """Check a model file against its card (`check_model`), then load it.

        Args:
            model_path: the `.bin` model file (its card `MODEL.json` beside it).

        Returns:
            The loaded model.

        Raises:
            QualityModelError: as `check_model`, or fastText refuses the file.
        FastTextBackendError: the installed `fasttext` module is the prediction-only one.
        """
        from pipelines.quality.backend import training_fasttext

        card = check_model(model_path)
        try:
            return cls(card, training_fasttext().load_model(str(card.path)))
        except ValueError as err:
            raise QualityModelError(f"quality model {card.path}: fastText cannot load it ({err})") from err

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """fastText label -> probability for each text (normalised with `pipelines.quality.text.normalise`)."""
        labels, probs = self._model.predict([normalise(t) for t in texts], k=-1)
        return [dict(zip(names, p.tolist(), strict=True)) for names, p in zip(labels, probs, strict=True)]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """One score per text: p(positive label), or the expected label value (see the module docstring).

        Args:
            texts: raw document texts.

        Returns:
            float64 array of the scores, in input order.
        """
        if not texts:
            return np.zeros(0, dtype=np.float64)
        rows = self.probabilities(texts)
        if self.card.score == "probability":
            return np.array([row.get(self._positive, 0.0) for row in rows], dtype=np.float64)
        scores = np.empty(len(rows), dtype=np.float64)
        for i, row in enumerate(rows):
            total = sum(row.values())
            scores[i] = sum(p * self._values[name] for name, p in row.items()) / total if total else 0.0
        return scores
