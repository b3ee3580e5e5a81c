"""The quality stage inside curate, as datatrove steps: score once, cut later.

Two passes, so that moving the cut never pays for the model again:

1. `QualityScorer` scores every document that survived the heuristic filters (in batches of 256, one fastText
   call each) and counts its GPT-2 tokens; a ParquetWriter with `score_row` keeps `(id, quality_score, tokens)`
   per task. The token count lets the report show what a threshold costs in tokens, not only documents.
2. `QualitySelector` reads the same documents in the same order, takes each one's score from that table (ids
   are checked, so a misaligned table is an error, not wrong scores), writes it to `metadata["quality_score"]`
   and keeps or drops the document by a `Cutoff`; drops carry the reason `below_quality_threshold`.

A `Cutoff` comes from the settings and every score of the run: a threshold keeps scores >= it; `keep_fraction`
keeps the first ceil(keep_fraction * scored) documents ordered by score, highest first, ties by ascending
document id, so the cut is the same for any task count; `score_only` keeps everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.batching import batched

from pipelines.quality.config import QualityConfig

QUALITY_SCORE = "quality_score"  # the metadata key and the data/ and rejects/ column
BELOW_THRESHOLD = "below_quality_threshold"
SCORE_BATCH = 256
_RESCORE = "the score pass does not match its documents: delete its folder (the parent of scores/) and rerun"
SCORES_SCHEMA = pa.schema([("id", pa.string()), (QUALITY_SCORE, pa.float64()), ("tokens", pa.int64())])


def score_row(_writer: Any, doc: Document) -> dict[str, Any]:
    """The score table row of a scored document (a ParquetWriter adapter)."""
    return {"id": str(doc.id), QUALITY_SCORE: doc.metadata[QUALITY_SCORE], "tokens": doc.metadata["tokens"]}


class QualityScorer(PipelineStep):
    """Score each document with the quality model and count its GPT-2 tokens (metadata `quality_score`, `tokens`).

    The model is loaded, after its sha256 is checked against its card, once per task.

    Args:
        model_path: the `.bin` model file.
    """

    type = "🏅 - QUALITY"
    name = "quality scorer"

    def __init__(self, model_path: str):
        super().__init__()
        self.model_path = model_path

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield the documents with their score and token count."""
        if data is None:
            return
        from model.tokenizer import get_encoding
        from pipelines.quality.model import QualityModel

        model = QualityModel.load(self.model_path)
        encoding = get_encoding()
        for batch in batched(data, SCORE_BATCH):
            with self.track_time("batch"):
                texts = [doc.text for doc in batch]
                scores = model.score(texts)
                tokens = encoding.encode_ordinary_batch(texts, num_threads=1)
            for doc, score, ids in zip(batch, scores.tolist(), tokens, strict=True):
                doc.metadata[QUALITY_SCORE] = score
                doc.metadata["tokens"] = len(ids)
                self.stat_update("scored")
                yield doc


@dataclass(frozen=True)
class Cutoff:
    """Which scores pass the quality stage.

    Attributes:
        score: documents scoring above it pass; None passes everything (`score_only`).
        last_id: at exactly `score`, ids up to this one pass (`keep_fraction`); None passes every such id.
    """

    score: float | None
    last_id: str | None = None

    def keeps(self, score: float, doc_id: str) -> bool:
        """Whether a document with this score and id passes."""
        if self.score is None or score > self.score:
            return True
        return score == self.score and (self.last_id is None or doc_id <= self.last_id)

    def expression(self) -> pl.Expr:
        """The same rule as a polars expression over the columns `quality_score` and `id`."""
        if self.score is None:
            return pl.lit(True)
        at = pl.col(QUALITY_SCORE) == self.score
        if self.last_id is not None:
            at = at & (pl.col("id") <= self.last_id)
        return (pl.col(QUALITY_SCORE) > self.score) | at


def choose_cutoff(config: QualityConfig, scores: pl.DataFrame) -> Cutoff:
    """The cut for this run's settings and scores.

    Args:
        config: the quality settings (threshold, keep_fraction, score_only).
        scores: every scored document: columns `id` and `quality_score`.

    Returns:
        The cutoff.
    """
    if config.score_only:
        return Cutoff(None)
    if config.keep_fraction is None:
        return Cutoff(config.threshold)
    if scores.is_empty():
        return Cutoff(None)
    keep = math.ceil(round(config.keep_fraction * scores.height, 6))  # round: 0.1 * 30 is 3.0000000000000004
    ordered = scores.sort([QUALITY_SCORE, "id"], descending=[True, False])
    last = ordered.row(keep - 1, named=True)
    return Cutoff(last[QUALITY_SCORE], last["id"])


def read_scores(folder: Path) -> pl.DataFrame:
    """Every score table of a score pass (`<rank>.parquet`), in rank order; empty when nothing was scored."""
    files = sorted(Path(folder).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema={"id": pl.String, QUALITY_SCORE: pl.Float64, "tokens": pl.Int64})
    return pl.read_parquet(files)


class QualitySelector(BaseFilter):
    """Attach each document's stored score (`metadata["quality_score"]`) and drop those the cutoff does not keep.

    Args:
        scores_folder: the score pass's tables; task `rank` reads `<rank>.parquet`, written for the same documents.
        cutoff: which scores pass.
        exclusion_writer: receives dropped documents (reason `below_quality_threshold`).
    """

    name = "quality"

    def __init__(self, scores_folder: str, cutoff: Cutoff, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.scores_folder = scores_folder
        self.cutoff = cutoff

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Attach the scores, then filter (datatrove's BaseFilter counts and writes the drops)."""
        return super().run(self._scored(data, rank), rank, world_size)

    def _scored(self, data: DocumentsPipeline, rank: int) -> Iterator[Document]:
        path = Path(self.scores_folder) / f"{rank:05d}.parquet"
        table = pl.read_parquet(path) if path.exists() else pl.DataFrame({"id": [], QUALITY_SCORE: []})
        ids, scores = table["id"].to_list(), table[QUALITY_SCORE].to_list()
        count = 0
        for count, doc in enumerate(data or (), start=1):
            if count > len(ids) or ids[count - 1] != str(doc.id):
                raise RuntimeError(f"{path}: row {count} does not score document {doc.id!r}; {_RESCORE}")
            doc.metadata[QUALITY_SCORE] = scores[count - 1]
            yield doc
        if count != len(ids):
            raise RuntimeError(f"{path}: {len(ids)} scores for {count} documents; {_RESCORE}")

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Keep the document when the cutoff keeps its score."""
        return self.cutoff.keeps(doc.metadata[QUALITY_SCORE], str(doc.id)) or (False, BELOW_THRESHOLD)
