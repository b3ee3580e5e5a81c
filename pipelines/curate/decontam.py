"""The `decontaminate` stage: drop (or flag) documents that share a word n-gram with an evaluation set.

Runs in the first pass after the filters, on the text the filters leave (C4 removes lines), against an index
from `fineforge decontam index` (format and normalisation: `pipelines.curate.decontam_index`). A document
that shares at least one n-gram (13 words by default, GPT-3's rule) with an eval set is contaminated by it:

- `action: drop` drops it with reason `contaminated:<set>` (the set with the most shared n-grams; ties by
  name); `action: flag` keeps it. Either way `metadata["contamination"]` holds, per set, the number of distinct
  shared n-grams and the first few of them (`{"<set>": {"ngrams": k, "examples": [...]}}`).
- Counters: `contaminated/<set>` (documents per set, either action) and `flagged`. The shared n-grams are
  counted apart from datatrove's stats (which datatrove prints in every task's log): each task writes
  `<ngram_dir>/<rank>.json`, {set: {n-gram: documents}} for the first 1,000 distinct n-grams per set, when it
  finishes, so a rerun task rewrites its own file and a badly contaminated crawl cannot bloat anything.
  `summary.json` shows `action`, `index`, `contaminated` {set: documents} and `matched_ngrams` {set: [{ngram,
  docs}]} (the 10 most frequent over all tasks).

Cost: one regex pass, one xxh3 call per word and 13 vectorised numpy passes per document, then a binary search
per set; the index is loaded once per task (lazily, in the worker: it is not pickled with the step).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter
from pydantic import BaseModel, ConfigDict, model_validator

from pipelines.common.files import write_json_atomic
from pipelines.curate.decontam_index import DecontamIndex, load_index, ngram_keys, words
from pipelines.curate.stats import StageStats, stage_from_counts

REASON_PREFIX = "contaminated:"
EXAMPLES_PER_DOC = 5
NGRAMS_PER_TASK = 1000
TOP_NGRAMS = 10


class DecontamConfig(BaseModel):
    """Benchmark decontamination (off by default: it needs an index of your eval sets)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    index: str | None = None  # file written by `fineforge decontam index`
    action: Literal["drop", "flag"] = "drop"  # flag: keep the document, mark it in metadata["contamination"]

    @model_validator(mode="after")
    def _index_when_enabled(self) -> DecontamConfig:
        """An enabled stage needs an index."""
        if self.enabled and not self.index:
            raise ValueError("decontaminate.index: give the index file (fineforge decontam index) when enabled")
        return self


def shared_ngrams(index: DecontamIndex, text: str) -> dict[str, list[str]]:
    """The distinct n-grams of `text` found in each eval set of the index.

    Args:
        index: a loaded index.
        text: a document's text.

    Returns:
        {set name: distinct shared n-grams (normalised words joined by spaces) in text order}; sets without
        a shared n-gram are absent.
    """
    tokens = words(text)
    keys = ngram_keys(tokens, index.ngram)
    if not keys.size:
        return {}
    found = {}
    for name, table in index.keys.items():
        if not table.size:
            continue
        at = np.minimum(np.searchsorted(table, keys), table.size - 1)
        hits = np.flatnonzero(table[at] == keys)
        if hits.size:
            found[name] = list(dict.fromkeys(" ".join(tokens[i : i + index.ngram]) for i in hits.tolist()))
    return found


class Decontaminator(BaseFilter):
    """The `decontaminate` stage as a datatrove filter.

    Args:
        index_path: the index file (checked by the caller before the run; loaded here on first use).
        action: `drop` or `flag`.
        ngram_dir: local folder for each task's shared n-gram counts (None: not kept).
        exclusion_writer: receives dropped documents with `metadata["filter_reason"]`.
    """

    name = "decontaminate"

    def __init__(
        self,
        index_path: str | Path,
        action: str = "drop",
        ngram_dir: str | Path | None = None,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(exclusion_writer=exclusion_writer)
        self.index_path = str(index_path)
        self.action = action
        self.ngram_dir = None if ngram_dir is None else str(ngram_dir)
        self._index: DecontamIndex | None = None
        self._ngram_docs: dict[str, Counter[str]] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_index"] = None  # workers load the index themselves
        return state

    @property
    def index(self) -> DecontamIndex:
        """The loaded index."""
        if self._index is None:
            self._index = load_index(Path(self.index_path))
        return self._index

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Filter one task's documents, then write the task's shared n-gram counts."""
        self._ngram_docs = {}
        yield from super().run(data, rank, world_size)
        if self.ngram_dir is not None:
            Path(self.ngram_dir).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(self.ngram_dir) / f"{rank:05d}.json", self._ngram_docs)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Keep clean documents; drop or flag contaminated ones."""
        found = shared_ngrams(self.index, doc.text)
        if not found:
            return True
        doc.metadata["contamination"] = {
            name: {"ngrams": len(grams), "examples": grams[:EXAMPLES_PER_DOC]} for name, grams in sorted(found.items())
        }
        for name, grams in found.items():
            self.stat_update(f"contaminated/{name}")
            counted = self._ngram_docs.setdefault(name, Counter())
            for gram in grams:
                if gram in counted or len(counted) < NGRAMS_PER_TASK:
                    counted[gram] += 1
        if self.action == "flag":
            self.stat_update("flagged")
            return True
        worst = min(found, key=lambda name: (-len(found[name]), name))
        return False, f"{REASON_PREFIX}{worst}"


def decontam_stage_stats(counts: dict[str, int], action: str, index: str, ngram_dir: Path) -> StageStats:
    """The `decontaminate` entry of summary.json from the step's counters and the tasks' n-gram counts.

    Args:
        counts: the step's summed datatrove counters.
        action: `drop` or `flag`.
        index: the index file used.
        ngram_dir: the folder of the tasks' `<rank>.json` n-gram counts.

    Returns:
        StageStats with details `action`, `index`, `contaminated` {set: docs} and `matched_ngrams`
        {set: [{"ngram", "docs"}]} (the most frequent first, at most 10 per set).
    """
    stage = stage_from_counts("decontaminate", counts)
    contaminated = {
        key.removeprefix("contaminated/"): n for key, n in sorted(counts.items()) if key.startswith("contaminated/")
    }
    merged: dict[str, Counter[str]] = {}
    for path in sorted(Path(ngram_dir).glob("*.json")):
        for name, grams in json.loads(path.read_text()).items():
            merged.setdefault(name, Counter()).update(grams)
    matched = {name: [{"ngram": g, "docs": n} for g, n in grams.items()] for name, grams in merged.items()}
    stage.details = {
        "action": action,
        "index": index,
        "contaminated": contaminated,
        "matched_ngrams": {
            name: sorted(rows, key=lambda r: (-r["docs"], r["ngram"]))[:TOP_NGRAMS]
            for name, rows in sorted(matched.items())
        },
    }
    return stage
