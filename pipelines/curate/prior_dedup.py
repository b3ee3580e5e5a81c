"""Prior-run dedup (`--dedup-against`): drop documents that earlier curate runs already kept.

`fineforge curate --input CRAWL_2 --output CUR_2 --dedup-against CUR_1 --dedup-against CUR_0` adds the gate
`prior_dedup` before exact and MinHash dedup: a document whose text hash equals that of a document an earlier run
kept is dropped as `prior_exact_duplicate`, one sharing a MinHash bucket with one as `prior_minhash_duplicate`
(exact is tried against every earlier run first, then near, each in the order given; the first match wins). The
gate's summary.json entry adds `runs`: per earlier run its `run_id`, `path`, and `exact` and `minhash` drops.

The earlier runs are only read. Each is checked in `plan()` (`resolve_priors`): a finished curate output
(`summary.json`), not this run's own output, whose dedup index (`pipelines.curate.dedup_index`, `dedup_index/`)
was made with this run's dedup settings. An output from before the index existed gets one built once from its
`data/` into `FINEFORGE_HOME/cache/dedup_index/<run_id>-<settings hash>/` (never into the earlier output), reused
by every later run. Lookups binary-search memory-mapped arrays, so memory does not grow with the history.

With `exact: false` (or `minhash: false`) in the dedup settings the matching half of the gate is off as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from pipelines.common.errors import UserError
from pipelines.common.hashing import stable_hash
from pipelines.common.home import fineforge_home
from pipelines.curate import summary as curate_summary
from pipelines.curate.clusters import PRIOR_EXACT_REASON, PRIOR_MINHASH_REASON
from pipelines.curate.dedup import DedupConfig
from pipelines.curate.dedup_index import INDEX_DIR, META, DedupIndex, DocumentKeys, build_for_output, index_settings
from pipelines.curate.output import CurateOutput
from pipelines.curate.stats import StageStats, stage_from_counts

STAGE = "prior_dedup"


class PriorRunError(UserError):
    """A folder named by --dedup-against that cannot be deduplicated against (one line naming it)."""


@dataclass(frozen=True)
class PriorRun:
    """An earlier curate run this run deduplicates against.

    Attributes:
        path: its output folder.
        run_id: its summary.json `run_id`.
        documents: its kept documents (summary `docs_out`).
        index: its dedup index folder: `path/dedup_index`, or the cache folder built from its `data/`.
        built: whether the index is (to be) built into the cache (the output predates the index).
    """

    path: Path
    run_id: str
    documents: int
    index: Path
    built: bool

    def record(self) -> dict[str, Any]:
        """Its entry in summary.json `dedup_against`."""
        return {"path": str(self.path), "run_id": self.run_id, "documents": self.documents, "index": str(self.index)}


def cache_folder(run_id: str, cfg: DedupConfig) -> Path:
    """Where the index of an older output of `run_id` is built for these settings (under FINEFORGE_HOME)."""
    return fineforge_home() / "cache" / "dedup_index" / f"{run_id}-{stable_hash(index_settings(cfg))}"


def resolve_priors(paths: Sequence[str], cfg: DedupConfig, output_dir: Path) -> list[PriorRun]:
    """Check every folder named by --dedup-against and find its index; nothing is built or written here.

    Args:
        paths: the folders, in the order given.
        cfg: this run's dedup settings.
        output_dir: this run's output folder (absolute), which may not be among them.

    Returns:
        One PriorRun per folder.

    Raises:
        PriorRunError: not a folder, not a curate output, unfinished, this run's own output, named twice, or an
            index of other settings (the message names the folder).
    """
    priors: list[PriorRun] = []
    for given in paths:
        path = Path(given).expanduser().resolve()
        if path == output_dir:
            raise PriorRunError(f"{path}: is this run's own --output; --dedup-against names earlier curate outputs")
        if not path.is_dir():
            raise PriorRunError(f"{path}: --dedup-against needs a curate output folder; this is not a folder")
        if not CurateOutput(path).owned() and curate_summary.recorded(path) is None:
            raise PriorRunError(f"{path}: not a curate output (no {curate_summary.FILENAME}, no curate mark)")
        summary = curate_summary.read(
            path, PriorRunError, "an unfinished curate run; finish it (run its curate command again) first"
        )
        if any(prior.run_id == summary["run_id"] for prior in priors):
            raise PriorRunError(f"{path}: run {summary['run_id']} is named twice in --dedup-against")
        own = path / INDEX_DIR
        if (own / META).is_file():
            index = DedupIndex(own, cfg)  # refuses other settings, in one line
            if index.documents != summary["docs_out"]:
                raise PriorRunError(
                    f"{own}: holds {index.documents} documents but {path / curate_summary.FILENAME} kept "
                    f"{summary['docs_out']}; the index is not this output's"
                )
            priors.append(PriorRun(path, summary["run_id"], summary["docs_out"], own, built=False))
        else:
            cached = cache_folder(summary["run_id"], cfg)
            priors.append(PriorRun(path, summary["run_id"], summary["docs_out"], cached, built=True))
    return priors


def ensure_index(prior: PriorRun, cfg: DedupConfig) -> DedupIndex:
    """Open a prior run's index, building it first into the cache when the output predates the index.

    Args:
        prior: the earlier run.
        cfg: this run's dedup settings.

    Returns:
        The opened index.
    """
    if prior.built and not (prior.index / META).is_file():
        build_for_output(prior.path / "data", prior.index, cfg)
    index = DedupIndex(prior.index, cfg)
    if index.documents != prior.documents:
        raise PriorRunError(f"{prior.index}: holds {index.documents} documents, {prior.path} kept {prior.documents}")
    return index


class PriorDedupFilter(BaseFilter):
    """Drops a document that an earlier run kept (exact text hash, then MinHash bucket), naming the run and match.

    Sets `dedup_prior_run`, `dedup_prior_doc` (the matched document's number in that run's index) and
    `dedup_cluster_id` (`prior-<run_id>-<number>`) on a dropped document, and counts `<reason>@<run_id>`.

    Args:
        priors: `(run_id, index folder)` of each earlier run, in the order given.
        cfg: dedup settings (which halves are on; the keys' settings).
        exclusion_writer: where dropped documents go.
    """

    type = "🫂 - DEDUPS"
    name = "🔁 prior-run dedup"

    def __init__(self, priors: Sequence[tuple[str, Path]], cfg: DedupConfig, exclusion_writer: DiskWriter | None):
        super().__init__(exclusion_writer)
        self.priors = [(run_id, Path(index)) for run_id, index in priors]
        self.cfg = cfg
        self._opened: list[tuple[str, DedupIndex]] | None = None  # opened in the worker (memory maps do not pickle)
        self._keys: DocumentKeys | None = None

    def _match(self, text: str) -> tuple[str, str, int] | None:
        if self._opened is None:
            self._opened = [(run_id, DedupIndex(folder, self.cfg)) for run_id, folder in self.priors]
            self._keys = DocumentKeys(self.cfg)
        if self.cfg.exact:
            digest = self._keys.exact(text)
            for run_id, index in self._opened:
                if (number := index.exact_match(digest)) is not None:
                    return PRIOR_EXACT_REASON, run_id, number
        if self.cfg.minhash and (keys := self._keys.buckets(text)) is not None:
            for run_id, index in self._opened:
                if (number := index.near_match(keys)) is not None:
                    return PRIOR_MINHASH_REASON, run_id, number
        return None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Keep the document unless an earlier run kept its duplicate."""
        with self.track_time():
            match = self._match(doc.text)
        if match is None:
            return True
        reason, run_id, number = match
        doc.metadata["dedup_prior_run"] = run_id
        doc.metadata["dedup_prior_doc"] = number
        doc.metadata["dedup_cluster_id"] = f"prior-{run_id}-{number}"
        self.stat_update(f"{reason}@{run_id}")
        return False, reason


def prior_stage_stats(counts: dict[str, int] | None, docs_in: int, priors: Sequence[PriorRun]) -> StageStats:
    """The `prior_dedup` gate's summary entry, with its drops per earlier run (`runs`).

    Args:
        counts: the filter's summed counters; None when no document reached it.
        docs_in: documents that reached dedup (all pass when the filter did not run).
        priors: the earlier runs, in the order given.

    Returns:
        The gate's StageStats; its details hold `runs` [{run_id, path, exact, minhash}].
    """
    counts = counts or {"total": docs_in, "forwarded": docs_in}
    stage = stage_from_counts(STAGE, counts)
    stage.details["runs"] = [
        {
            "run_id": prior.run_id,
            "path": str(prior.path),
            "exact": counts.get(f"{PRIOR_EXACT_REASON}@{prior.run_id}", 0),
            "minhash": counts.get(f"{PRIOR_MINHASH_REASON}@{prior.run_id}", 0),
        }
        for prior in priors
    ]
    return stage
