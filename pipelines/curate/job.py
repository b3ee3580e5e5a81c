"""`fineforge curate`: the FineWeb recipe over any crawl, resumable, with every document accounted for.

`CurateStage` implements the stage interface of `pipelines.common.stage` (plan, is-complete, claim, steps,
finish). Its steps are the rows of `CURATE_STEPS`, the one table from which each step's key settings, runner,
summary status and published folders derive (add a step there and nowhere else). A step runs one or more passes
(one datatrove pipeline over all tasks), which resume from datatrove's completion markers:

1. `filter`: read (pipelines.curate.read) -> extract (pipelines.curate.extract, trafilatura or resiliparse; HTML
   only) -> URL, language, Gopher repetition, Gopher quality, C4, FineWeb filters (pipelines.curate.filters) ->
   PII anonymisation (pipelines.curate.pii; here unless `pii.raw_rejects`, so no work file holds a raw address)
   -> JSONL in the step's folder. One pass (`FIRST_PASS`), so each document is read and parsed once.
2. `score` (quality stage on): the classifier scores every filtered document (pipelines.quality.steps).
3. `select` (quality stage on): the cut by threshold or keep_fraction over the stored scores.
4. `screen` (decontaminate stage on): documents sharing an n-gram with an eval set are dropped or flagged
   (pipelines.curate.decontam), after the quality cut so that a new index or action reuses the scores.
5. `dedup`: with `dedup_against`, first the documents earlier runs kept are dropped (pipelines.curate.prior_dedup);
   then exact and MinHash dedup (pipelines.curate.dedup, several passes), whose last pass counts the
   anonymised survivors (or, with `pii.raw_rejects`, anonymises them: pipelines.curate.pii, FineWeb's last step),
   records their dedup keys (pipelines.curate.dedup_index) and writes them, flattened to the `data/` columns
   (plus `quality_score` when the quality gate is on), as Parquet; then the run's `dedup_index/` and the
   duplicate-cluster export `clusters/duplicates.parquet` (pipelines.curate.clusters).

`finish()` reads every step's counts, checks the accounting invariants, publishes `data/`, `rejects/`, `quarantine/`,
`dedup_index/`, `clusters/` (and `quality/scores.parquet`: every scored document with its score, GPT-2 tokens and
whether it passed) into the output folder and writes `summary.json` last, atomically.

Run identity, reuse and resume (pipelines.curate.work): each step's key hashes the input files with their sizes,
the task count, `--limit` and the settings of that step and every step before it (files the config names count by
their sha256: the quality model, the decontamination index, each checked in `plan()` before any document is read);
`run_id` hashes the config hash and the step keys. Each step works in `DIR/.work/<step>-<key>/`, so a run that
shares a prefix of steps with an earlier one (a new quality threshold: same filter and score keys) reuses that
prefix, and rerunning the same
command after a crash (even `kill -9`) redoes only tasks without a completion marker. Every writer opens its
files afresh per task and the documents of a task arrive in a fixed order, so the rerun's `data/` is
byte-identical to an uninterrupted run's. `summary.json` says per stage and per step whether the work ran or was
reused. A rerun of a published run returns its summary without touching anything. Once a run is published, the
step folders it did not use are deleted.

Progress: `on_progress` gets a `pipelines.common.progress.Progress` snapshot about once a second while a step
runs (documents per stage so far, documents/s, an ETA where the input size tells), observed through
`pipelines.curate.progress` without touching the documents.

Drop guard: a stage that drops >= 99% of >= 100 documents fails the run, naming the stage (the classic cause
is extraction returning nothing because a dependency is missing), unless `expected_drop` lists it. Quarantine
counts too: a run whose document records are >= 99% quarantined (a Parquet file without the text column: 300 of
300) fails as stage `read`, naming the most common errors.

The output folder is FineForge's only where it says so (`pipelines.curate.output`): `claim()` refuses a folder
holding files curate did not write, and publishing replaces only what curate published there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

from pipelines.common.errors import UserError
from pipelines.common.files import atomic_write, write_json_atomic
from pipelines.common.hashing import file_sha256, stable_hash
from pipelines.common.inputs import InputFile, discover_inputs, iter_json_lines
from pipelines.common.processes import raise_if_interrupted
from pipelines.common.progress import ProgressCallback, ignore_progress
from pipelines.common.stage import Stage, Step, run_stage
from pipelines.curate import clusters
from pipelines.curate import summary as curate_summary
from pipelines.curate.config import CurateConfig, config_hash
from pipelines.curate.decontam import Decontaminator, decontam_stage_stats
from pipelines.curate.decontam_index import load_index
from pipelines.curate.dedup import docs_reader, has_documents, minhash_folders, run_dedup
from pipelines.curate.dedup_index import INDEX_DIR, IndexRecorder, build_from_parts
from pipelines.curate.executors import ExecutorKind, executor_factory
from pipelines.curate.extract import HtmlExtractor, make_engine
from pipelines.curate.filters import build_filter_steps
from pipelines.curate.logs import datatrove_logs_to
from pipelines.curate.output import LOG_FILE, CurateOutput
from pipelines.curate.pii import PiiAnonymizer, PiiStep, PiiTally, pii_stage_stats, privacy_record
from pipelines.curate.prior_dedup import PriorDedupFilter, ensure_index, prior_stage_stats, resolve_priors
from pipelines.curate.progress import CurateWatcher
from pipelines.curate.read import SourceReader
from pipelines.curate.stages import (
    DEDUP_STAGES,
    FILTER_STAGES,
    FIRST_PASS,
    OUTPUT_STAGES,
    PRIOR_STAGES,
    QUALITY_STAGES,
    READ_STAGES,
    SCREEN_STAGES,
    STAGES,
)
from pipelines.curate.stats import StageStats, merge_task_stats, passthrough, stage_from_counts
from pipelines.curate.work import StepWork, plan_work, remove_unused
from pipelines.quality.model import ModelCard, check_model
from pipelines.quality.steps import (
    QUALITY_SCORE,
    SCORES_SCHEMA,
    QualityScorer,
    QualitySelector,
    choose_cutoff,
    read_scores,
    score_row,
)

DROP_GUARD_MIN_DOCS = 100  # issue 2: a stage dropping >= 99% of >= 100 documents fails the run
DROP_GUARD_FRACTION = 0.99
DOCS = "docs"  # a step's surviving documents (datatrove JSONL), the next step's input
_FLAT_KEYS = ("url", "source_file", "language", "language_score")
DATA_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("source_file", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("metadata", pa.string()),
    ]
)
REJECTS_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("id", "text", "url", "source_file", "stage", "reason", "metadata")]
)
SCORE_FIELD = pa.field(QUALITY_SCORE, pa.float64())
SCORED_DATA_SCHEMA = DATA_SCHEMA.append(SCORE_FIELD)
SCORED_REJECTS_SCHEMA = REJECTS_SCHEMA.append(SCORE_FIELD)


class DropGuardError(UserError):
    """A stage dropped (nearly) everything; the message names the stage and how to allow it."""


def _metadata_json(metadata: dict[str, Any], skip: tuple[str, ...]) -> str:
    rest = {key: value for key, value in metadata.items() if key not in skip}
    return json.dumps(rest, sort_keys=True, ensure_ascii=False, default=str)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def data_row(_writer: Any, doc: Document) -> dict[str, Any]:
    """Flatten a document to the `data/` columns (a ParquetWriter adapter).

    Returns:
        `id, text, url, source_file, language, language_score` and `metadata`, a JSON string of all else.
    """
    meta = doc.metadata
    score = meta.get("language_score")
    return {
        "id": str(doc.id),
        "text": doc.text,
        "url": _str_or_none(meta.get("url")),
        "source_file": _str_or_none(meta.get("source_file")),
        "language": _str_or_none(meta.get("language")),
        "language_score": None if score is None else float(score),
        "metadata": _metadata_json(meta, _FLAT_KEYS),
    }


def scored_data_row(writer: Any, doc: Document) -> dict[str, Any]:
    """`data_row` plus the `quality_score` column (which then leaves the metadata JSON)."""
    return data_row(writer, doc) | {
        "metadata": _metadata_json(doc.metadata, (*_FLAT_KEYS, QUALITY_SCORE)),
        QUALITY_SCORE: doc.metadata.get(QUALITY_SCORE),
    }


class RejectsWriter(ParquetWriter):
    """Writes dropped documents of one stage as `rejects/<stage>/<rank>.parquet`, up to a sample per reason.

    The sample is per task and reason (the first N in input order, so reruns keep the same ones); exact
    counts live in the stage stats, not here.

    Args:
        output_folder: `rejects/<stage>` folder.
        stage: stage name written in the `stage` column.
        sample_per_reason: documents kept per reason and task; None keeps all.
        scored: the documents carry a quality score (a `quality_score` column).
        anonymize: replaces addresses in the text and metadata written (None: written raw, `pii.raw_rejects`).
    """

    name = "rejects"

    def __init__(
        self,
        output_folder: str,
        stage: str,
        sample_per_reason: int | None,
        scored: bool = False,
        anonymize: PiiAnonymizer | None = None,
    ):
        schema = SCORED_REJECTS_SCHEMA if scored else REJECTS_SCHEMA
        super().__init__(output_folder, adapter=_reject_row, schema=schema)
        self.stage = stage
        self.sample_per_reason = sample_per_reason
        self.scored = scored
        self.anonymize = anonymize
        self._seen: Counter[str] = Counter()
        self._rank: int | None = None

    def write(self, document: Document, rank: int = 0, **kwargs: Any) -> None:
        """Write the document if its reason is still under the sample size for this task."""
        if rank != self._rank:
            self._seen.clear()
            self._rank = rank
        reason = str(document.metadata.get("filter_reason") or self.stage)
        self._seen[reason] += 1
        if self.sample_per_reason is not None and self._seen[reason] > self.sample_per_reason:
            self.stat_update("not_sampled")
            return
        super().write(document, rank, **kwargs)


def _reject_row(writer: RejectsWriter, doc: Document) -> dict[str, Any]:
    meta, text = doc.metadata, doc.text
    if writer.anonymize is not None:
        meta, text = writer.anonymize.scrub_metadata(meta), writer.anonymize.scrub(text)
    row = {
        "id": str(doc.id),
        "text": text,
        "url": _str_or_none(meta.get("url")),
        "source_file": _str_or_none(meta.get("source_file")),
        "stage": writer.stage,
        "reason": str(meta.get("filter_reason") or writer.stage),
    }
    if writer.scored:
        row |= {
            "metadata": _metadata_json(meta, ("url", "source_file", "filter_reason", QUALITY_SCORE)),
            QUALITY_SCORE: meta.get(QUALITY_SCORE),
        }
    else:
        row["metadata"] = _metadata_json(meta, ("url", "source_file", "filter_reason"))
    return row


def check_drop_guard(stages: list[StageStats], expected: list[str]) -> None:
    """Fail if a stage dropped >= 99% of >= 100 documents and the config does not expect it.

    Args:
        stages: stage counts to check.
        expected: stage names allowed to drop that much (`expected_drop`).

    Raises:
        DropGuardError: naming the first such stage, its top drop reasons and the way to allow it.
    """
    for stage in stages:
        dropped = stage.docs_in - stage.docs_out
        if stage.docs_in < DROP_GUARD_MIN_DOCS or dropped < DROP_GUARD_FRACTION * stage.docs_in:
            continue
        if stage.name in expected:
            continue
        top = ", ".join(f"{reason}={n}" for reason, n in Counter(stage.dropped).most_common(3))
        raise DropGuardError(
            f"stage '{stage.name}' dropped {dropped} of {stage.docs_in} documents (>= 99%; {top}). "
            f"This usually means a broken dependency or wrong input; if it is expected, add '{stage.name}' "
            "to expected_drop in the config."
        )


def quarantine_reasons(folder: Path, limit: int = 100_000) -> Counter[str]:
    """Count the errors of the quarantine records in `folder/*.jsonl` (the first `limit` of them)."""
    reasons: Counter[str] = Counter()
    for path in sorted(Path(folder).glob("*.jsonl")):
        for _, record in iter_json_lines(str(path)):
            reasons[record.get("error", "?")] += 1
            if reasons.total() >= limit:
                return reasons
    return reasons


def check_quarantine_guard(reader: dict[str, int], quarantine_dir: Path, expected: list[str]) -> None:
    """Fail if >= 99% of >= 100 records that could be documents were quarantined, unless `read` is expected to.

    Records that are not documents (`records_skipped`: WARC requests, metadata, ...) do not count.

    Args:
        reader: the read step's merged counters (`records`, `quarantined`, `skipped`).
        quarantine_dir: the run's quarantine folder, for the most common errors.
        expected: stage names allowed to drop that much (`expected_drop`).

    Raises:
        DropGuardError: naming the share and the most common quarantine errors.
    """
    records = reader.get("records", 0) - reader.get("skipped", 0)
    quarantined = reader.get("quarantined", 0)
    if records < DROP_GUARD_MIN_DOCS or quarantined < DROP_GUARD_FRACTION * records or "read" in expected:
        return
    top = "; ".join(f"{error} (x{n})" for error, n in quarantine_reasons(quarantine_dir).most_common(3))
    raise DropGuardError(
        f"stage 'read' quarantined {quarantined} of {records} records (>= 99%): {top}. The input is probably not "
        f"what the config expects (see {quarantine_dir}); if it is expected, add 'read' to expected_drop."
    )


def parquet_rows(folder: Path) -> int:
    """Rows in all `*.parquet` files of a folder (from the footers; no data is read; 0 if it does not exist)."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(Path(folder).glob("*.parquet")))


def plan_tasks(files: list[InputFile], workers: int, task_mb: float, max_tasks: int) -> int:
    """Tasks per document-level stage: one per `task_mb` of input, at least `workers`, capped by files and max.

    Args:
        files: the input files (sizes unknown count as 0).
        workers: tasks run at the same time.
        task_mb: input megabytes per task.
        max_tasks: upper bound.

    Returns:
        A task count between 1 and min(len(files), max_tasks).
    """
    total_mb = sum(f.size or 0 for f in files) / 2**20
    wanted = max(workers, math.ceil(total_mb / task_mb))
    return max(1, min(len(files), max_tasks, wanted))


def make_run_id(cfg_hash: str, steps: list[StepWork]) -> str:
    """Identity of a run: its config hash and the keys of its steps (which cover inputs, tasks and limit).

    Args:
        cfg_hash: config_hash of the config.
        steps: the planned steps.

    Returns:
        16 hex characters.
    """
    return stable_hash({"config": cfg_hash, "steps": [step.key for step in steps]})


class CurateStage(Stage):
    """One curate run over fixed inputs and config, as a `pipelines.common.stage.Stage`.

    The constructor only stores its arguments; `plan()` discovers the input files, checks the quality model and the
    decontamination index and keys the steps, `claim()` creates the work folder, `steps()` are the passes (each
    reused when an earlier run finished it), `finish()` publishes.

    Args:
        config: the curate config.
        inputs: paths, folders or fsspec URLs.
        output_dir: the output folder DIR.
        workers: tasks run at the same time.
        executor: `local`, `ray` or `slurm`.
        limit: read at most this many documents in total (split over the tasks); None reads all.
        overwrite: write into a folder that is not a curate output, replacing files of curate's own kinds
            (`pipelines.curate.output`); files of other kinds are never deleted.
        on_progress: called with a progress snapshot about once a second while a step runs.
        share_from: other curate output folders (an ablation's other variants) whose finished steps with the same
            keys this run links in instead of computing (`StepWork.adopt`).
        log_to_file: append datatrove's log of each step to `DIR/curate.log` (`LOG_FILE`) instead of stderr;
            the file is opened only after `claim()` has made the folder this run's.
    """

    name = "curate"

    def __init__(
        self,
        config: CurateConfig,
        inputs: list[str],
        output_dir: Path,
        workers: int = 1,
        executor: ExecutorKind = "local",
        limit: int | None = None,
        overwrite: bool = False,
        on_progress: ProgressCallback = ignore_progress,
        share_from: Sequence[Path] = (),
        log_to_file: bool = False,
    ):
        self.config = config
        self.inputs = [str(i) for i in inputs]
        self.output_dir = Path(output_dir).resolve()
        self.workers = workers
        self.executor = executor
        self.limit = limit
        self.output = CurateOutput(self.output_dir, overwrite)
        self.on_progress = on_progress
        self.share_from = [Path(folder) / ".work" for folder in share_from]
        self.log_path = self.output_dir / LOG_FILE if log_to_file else None
        self.config_hash = config_hash(config)
        pii = config.pii
        # The one replacement policy, applied from the end of the filter step on (None: pii off or raw rejects).
        self._anonymizer = PiiAnonymizer(pii) if pii.enabled and not pii.raw_rejects else None

    def plan(self) -> None:
        """Discover the inputs, check the files the config names, size the tasks and key the steps (and the run)."""
        self.files = discover_inputs(self.inputs, exclude=[self.output_dir])
        self.tasks = plan_tasks(self.files, self.workers, self.config.run.task_mb, self.config.run.max_tasks)
        quality = self.config.quality
        self.model_card: ModelCard | None = check_model(quality.model_path()) if quality.enabled else None
        self.index_path = self._check_index()
        self.priors = resolve_priors(self.config.dedup_against, self.config.dedup, self.output_dir)
        inputs = {"files": [[f.url, f.size] for f in self.files], "tasks": self.tasks, "limit": self.limit}
        self.planned = [step for step in CURATE_STEPS if step.enabled(self)]
        cfg = self.config.model_dump(mode="json")
        settings = [(step.name, step.settings(self, cfg)) for step in self.planned]
        self.work = {work.name: work for work in plan_work(self.output_dir / ".work", inputs, settings)}
        self.run_id = make_run_id(self.config_hash, list(self.work.values()))
        self.status: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self.watcher = CurateWatcher(self.on_progress, sum(f.size or 0 for f in self.files), self.limit)
        self._started = time.monotonic()

    def _check_index(self) -> Path | None:
        """The decontamination index when the stage is on, checked before any document is read.

        Raises:
            DecontamIndexError: a missing or damaged index (a ValueError naming the file).
        """
        decontaminate = self.config.decontaminate
        if not decontaminate.enabled:
            return None
        path = Path(decontaminate.index).expanduser().resolve()
        load_index(path)
        return path

    def is_complete(self) -> bool:
        """True when DIR/summary.json is this run's (same config, model, inputs, task count and limit)."""
        summary = curate_summary.recorded(self.output_dir)
        return summary is not None and summary.get("run_id") == self.run_id

    def result(self) -> dict[str, Any]:
        """The published summary.json."""
        return curate_summary.recorded(self.output_dir)

    def output_folder(self) -> Path:
        """The output folder DIR (locked while the run claims and writes it)."""
        return self.output_dir

    def claim(self) -> None:
        """Take the output folder (`CurateOutput.claim`), create the work folder and record this run's plan.

        Raises:
            OutputFolderError: the output is a file, unwritable, holds an input, or holds files curate did not
                write (see `pipelines.curate.output`).
        """
        self.output.claim(self.files)
        (self.output_dir / ".work").mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.output_dir / ".work" / "job.json", self._job_record())

    def steps(self) -> list[Step]:
        """The planned rows of `CURATE_STEPS` in order, each resumable and reused when an earlier run finished it."""
        return [
            (step.name, functools.partial(self._run_step, self.work[step.name], functools.partial(step.run, self)))
            for step in self.planned
        ]

    def _run_step(self, work: StepWork, run: Callable[[StepWork], dict[str, Any]]) -> None:
        """Run one step unless its work is finished (then it is reused), and apply the drop guard to its gates."""
        raise_if_interrupted()
        started = time.monotonic()
        done = work.finished() or work.adopt(self.share_from)
        if done is None:
            work.start()
            logs = datatrove_logs_to(self.log_path) if self.log_path else contextlib.nullcontext()
            with self.watcher.step(work.name), logs:
                done = work.finish(run(work))
            self.status[work.name] = "ran"
        else:
            self.status[work.name] = "reused"
        self.watcher.step_finished(done.get("stages", []))
        self.durations[work.name] = round(time.monotonic() - started, 3)
        check_drop_guard([StageStats.from_dict(s) for s in done.get("stages", [])], self.config.expected_drop)

    def run_filter(self, work: StepWork) -> dict[str, Any]:
        """Read, extract and filter every input file into JSONL; return the reader's counts and the stages'."""
        rejects = functools.partial(self._rejects_writer, work, False)
        filters = build_filter_steps(self.config.filters, rejects)
        names = [name for name, _ in filters]
        if unknown := set(names) - set(FILTER_STAGES):
            raise RuntimeError(f"pipelines.curate.filters returned unknown stages {sorted(unknown)}")
        pipeline = [
            SourceReader(
                self.files,
                str(work.dir / "quarantine"),
                text_key=self.config.read.text_key,
                id_key=self.config.read.id_key,
                limit=self.limit,
                max_record_bytes=int(self.config.read.max_record_mb * 2**20),
                anonymize=None if self._anonymizer is None else self._anonymizer.scrub,
            ),
            HtmlExtractor(
                make_engine(self.config.extract, *self._precheck_languages()),
                timeout=self.config.extract.timeout_s,
                exclusion_writer=rejects("extract"),
            ),
            *[step for _, step in filters],
            *([] if self._anonymizer is None else [PiiStep(self.config.pii)]),
            JsonlWriter(str(work.dir / DOCS)),
        ]
        (work.dir / DOCS).mkdir(exist_ok=True)  # exists even when no document survives
        enabled = [*READ_STAGES, *names]
        self.watcher.filter_names = enabled
        counts = self._run_executor(work, pipeline, "filter")
        by_name = {name: stage_from_counts(name, c) for name, c in zip(enabled, counts[: len(enabled)], strict=True)}
        stages = self._complete(by_name, FIRST_PASS, by_name["read"].docs_in)
        check_quarantine_guard(counts[0], work.dir / "quarantine", self.config.expected_drop)
        return {"reader": counts[0], "enabled": enabled, "stages": [s.to_dict() for s in stages]}

    def _precheck_languages(self) -> tuple[list[str] | None, float]:
        """The languages and threshold of the language filter for the extractor's pre-check (none when it is off)."""
        language = self.config.filters.language
        return (language.languages if language.enabled else None), language.threshold

    def run_score(self, work: StepWork) -> dict[str, Any]:
        """Score every filtered document with the quality model; keep `(id, quality_score, tokens)` per task."""
        source, scores = self.work["filter"].dir / DOCS, work.dir / "scores"
        scores.mkdir(exist_ok=True)
        if not has_documents(source):
            return {"scored": 0}
        # One file per task, `<rank>.parquet` (no size rotation), where the select pass's task looks for it.
        writer = ParquetWriter(str(scores), adapter=score_row, schema=SCORES_SCHEMA, max_file_size=-1)
        counts = self._run_executor(
            work, [docs_reader(source), QualityScorer(str(self.model_card.path)), writer], "score"
        )
        return {"scored": counts[1].get("scored", 0)}

    def run_select(self, work: StepWork) -> dict[str, Any]:
        """Cut the scored documents by threshold or keep_fraction; write `quality/scores.parquet` with the verdicts."""
        source, score_dir = self.work["filter"].dir / DOCS, self.work["score"].dir / "scores"
        scores = read_scores(score_dir)
        cutoff = choose_cutoff(self.config.quality, scores)
        (work.dir / DOCS).mkdir(exist_ok=True)
        stage = passthrough("quality", 0)
        if has_documents(source):
            selector = QualitySelector(str(score_dir), cutoff, self._rejects_writer(work, True, "quality"))
            pipeline = [docs_reader(source), selector, JsonlWriter(str(work.dir / DOCS))]
            stage = stage_from_counts("quality", self._run_executor(work, pipeline, "select")[1])
        verdicts = scores.with_columns(selected=cutoff.expression()).sort(["id", QUALITY_SCORE])
        (work.dir / "quality").mkdir(exist_ok=True)
        with atomic_write(work.dir / "quality" / "scores.parquet") as f:
            verdicts.write_parquet(f)
        selected = int(verdicts["selected"].sum())
        cut = {"cutoff": cutoff.score, "cutoff_id": cutoff.last_id, "scored": scores.height, "selected": selected}
        return {"stages": [stage.to_dict()], "quality": cut}

    def run_screen(self, work: StepWork) -> dict[str, Any]:
        """Drop (or flag) documents that share an n-gram with an eval set of the decontamination index."""
        source = self._documents_before("screen")
        action = self.config.decontaminate.action
        ngram_dir = work.dir / "ngrams"
        (work.dir / DOCS).mkdir(exist_ok=True)
        if not has_documents(source):
            return {"stages": [passthrough("decontaminate", 0).to_dict()]}
        writer = self._rejects_writer(work, self.model_card is not None, "decontaminate")
        screen = Decontaminator(self.index_path, action, ngram_dir, exclusion_writer=writer)
        counts = self._run_executor(work, [docs_reader(source), screen, JsonlWriter(str(work.dir / DOCS))], "screen")
        stage = decontam_stage_stats(counts[1], action, str(self.index_path), ngram_dir)
        return {"stages": [stage.to_dict()]}

    def run_dedup(self, work: StepWork) -> dict[str, Any]:
        """Prior-run, exact and MinHash dedup, then PII anonymisation; the survivors are written to the step's `data/`.

        Also writes the run's dedup index of its kept documents (`dedup_index/`) and the duplicate-cluster export
        (`clusters/duplicates.parquet`), both published with `data/`.
        """
        scored = self.model_card is not None
        dedup = self.config.dedup
        data_writer = ParquetWriter(
            str(work.dir / "data"),
            adapter=scored_data_row if scored else data_row,
            schema=SCORED_DATA_SCHEMA if scored else DATA_SCHEMA,
        )
        pii = [PiiStep(self.config.pii)] if self.config.pii.enabled else []
        if self._anonymizer is not None:  # anonymised at the end of the filter step; count the kept ones here
            pii = [PiiTally()]
        indexes = {prior.run_id: ensure_index(prior, dedup) for prior in self.priors}
        prior_filter = None
        if self.priors:
            runs = [(prior.run_id, index.folder) for prior, index in zip(self.priors, indexes.values(), strict=True)]
            prior_filter = functools.partial(PriorDedupFilter, runs, dedup)
        log_root = work.dir / "cluster_log"
        # The index reads MinHash stage 1's keys unless a PiiStep here changes the texts after they were signed.
        text_kept = not any(isinstance(step, PiiStep) for step in pii)
        signed = minhash_folders(work.dir / "dedup") if dedup.minhash and text_kept else None
        result = run_dedup(
            self._documents_before("dedup"),
            work.dir / "dedup",
            dedup,
            final_steps=[*pii, IndexRecorder(work.dir / "index_parts", dedup, signed), data_writer],
            make_executor=self._executor_factory(work),
            tasks=self.tasks,
            exclusion_writer=functools.partial(self._rejects_writer, work, scored),
            prior_filter=prior_filter,
            cluster_log=lambda stage: clusters.ClusterLog(str(log_root / stage)),
        )
        index = build_from_parts(work.dir / "index_parts", work.dir / INDEX_DIR, dedup)
        export = work.dir / clusters.EXPORT_DIR / clusters.EXPORT_FILE
        duplicates = clusters.export([log_root], work.dir / "index_parts", self.run_id, indexes, export)
        docs_out = result.stages[-1].docs_out
        if pii:
            pii_stats = pii_stage_stats(result.final_counts[0] if result.final_counts else None, docs_out)
        else:
            pii_stats = passthrough("pii", docs_out)
        prior = [prior_stage_stats(result.prior_counts, 0, self.priors)] if self.priors else []
        stages = [s.to_dict() for s in [*prior, *result.stages, pii_stats]]
        return {"stages": stages, "dedup_index": index, "duplicates": duplicates}

    def _documents_before(self, step: str) -> Path:
        """The documents a step reads: those the step before it in this run left."""
        names = list(self.work)
        return self.work[names[names.index(step) - 1]].dir / DOCS

    def finish(self) -> dict[str, Any]:
        """Check the accounting, publish data/, rejects/, quarantine/, quality/ and write summary.json (last).

        Returns:
            The summary dict.
        """
        done = {name: work.finished() for name, work in self.work.items()}
        if unfinished := [name for name, record in done.items() if record is None]:
            raise RuntimeError(f"curate steps {unfinished} have not finished for run {self.run_id}; run them first")
        stages = self._stages(done)
        reader = done["filter"]["reader"]
        check_quarantine_guard(reader, self.work["filter"].dir / "quarantine", self.config.expected_drop)
        check_drop_guard(stages, self.config.expected_drop)
        duration = time.monotonic() - self._started
        docs_in = stages[0].docs_in
        summary = curate_summary.CurateSummary(
            run_id=self.run_id,
            config_hash=self.config_hash,
            inputs=self.inputs,
            input_files=len(self.files),
            records_read=reader.get("records", 0),
            quarantined=reader.get("quarantined", 0),
            records_skipped={
                key.removeprefix("skipped_"): n
                for key, n in sorted(reader.items())
                if key.startswith("skipped_") and n
            },
            docs_in=docs_in,
            docs_out=stages[-1].docs_out,
            stages=[s.to_dict() | {"status": self._stage_status(s.name, done)} for s in stages],
            steps=[self._step_entry(work) for work in self.work.values()],
            quality=self._quality_summary(done),
            privacy=privacy_record(self.config.pii),
            duration_s=round(duration, 3),
            docs_per_s=round(docs_in / duration, 3) if duration > 0 else 0.0,
            tasks=self.tasks,
            workers=self.workers,
            executor=self.executor,
            limit=self.limit,
            dedup_against=[prior.record() for prior in self.priors],
        )
        record = summary.model_dump()
        curate_summary.check(record, parquet_rows(self.work["dedup"].dir / "data"))
        self.watcher.finished(record["stages"], docs_in)
        curate_summary.summary_path(self.output_dir).unlink(missing_ok=True)  # unfinished until it is back
        self.output.publish(self._published())
        curate_summary.write(self.output_dir, summary)
        remove_unused(self.output_dir / ".work", list(self.work.values()))
        return record

    def _stages(self, done: dict[str, dict[str, Any]]) -> list[StageStats]:
        """Every stage's counts in STAGES order; a stage no step counted (quality off) passes everything on."""
        by_name = {s["name"]: StageStats.from_dict(s) for record in done.values() for s in record.get("stages", [])}
        return self._complete(by_name, STAGES, by_name["read"].docs_in)

    def _stage_status(self, name: str, done: dict[str, dict[str, Any]]) -> str:
        """`off` unless a planned step has it on; `reused` when every step counting it was reused; else `ran`."""
        steps = [step for step in self.planned if name in step.gates]
        if not any(name in step.gates_on(self, done[step.name]) for step in steps):
            return "off"
        return "reused" if all(self.status.get(step.name, "reused") == "reused" for step in steps) else "ran"

    def _step_entry(self, work: StepWork) -> dict[str, Any]:
        """A step's line in summary.json: name, key, whether it ran or was reused, and this run's seconds on it."""
        status = self.status.get(work.name, "reused")
        return {"name": work.name, "key": work.key, "status": status, "duration_s": self.durations.get(work.name, 0.0)}

    def _quality_summary(self, done: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The quality stage's model, settings and cut (None when the stage is off)."""
        if self.model_card is None:
            return None
        quality = self.config.quality
        return {
            "model": str(self.model_card.path),
            "model_sha256": self.model_card.sha256,
            "score": self.model_card.score,
            "labels": list(self.model_card.labels),
            "positive_label": self.model_card.positive_label,
            "threshold": quality.threshold,
            "keep_fraction": quality.keep_fraction,
            "score_only": quality.score_only,
            **done["select"]["quality"],
        }

    @staticmethod
    def _complete(by_name: dict[str, StageStats], names: tuple[str, ...], docs_in: int) -> list[StageStats]:
        """Stages in `names` order; a disabled stage (absent from `by_name`) passes every document on."""
        stages = []
        for name in names:
            stages.append(by_name.get(name) or passthrough(name, docs_in))
            docs_in = stages[-1].docs_out
        return stages

    def _executor_factory(self, work: StepWork) -> Callable:
        """The step's executor factory, with a progress probe after every reader (`CurateWatcher.factory`)."""
        executors = executor_factory(
            kind=self.executor,
            workers=self.workers,
            logs_root=work.dir / "logs",
            slurm=self.config.run.slurm,
            ray=self.config.run.ray,
        )
        return self.watcher.factory(executors, [f.size or 0 for f in self.files], work.dir / "progress")

    def _run_executor(self, work: StepWork, pipeline: list, name: str) -> list[dict[str, int]]:
        """Run one datatrove pipeline of a step over all tasks; return its per-step counters summed over tasks."""
        executor = self._executor_factory(work)(pipeline, name, self.tasks)
        executor.run()
        if incomplete := executor.get_incomplete_ranks():
            raise RuntimeError(f"curate step {name!r} left tasks {incomplete} unfinished (logs in {work.dir})")
        return [step["counts"] for step in merge_task_stats(work.dir / "logs" / name)]

    def _rejects_writer(self, work: StepWork, scored: bool, stage: str) -> RejectsWriter | None:
        rejects = self.config.rejects
        if not rejects.enabled:
            return None
        folder = str(work.dir / "rejects" / stage)
        return RejectsWriter(folder, stage, rejects.sample_per_reason, scored, self._anonymizer)

    def _job_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "config": self.config.model_dump(mode="json"),
            "inputs": self.inputs,
            "files": [[f.url, f.format, f.size] for f in self.files],
            "tasks": self.tasks,
            "limit": self.limit,
            "steps": [{"name": work.name, "key": work.key} for work in self.work.values()],
        }

    def _published(self) -> dict[str, list[Path]]:
        """Where each published folder comes from: the planned steps' `publishes` folders, in step order."""
        sources: dict[str, list[Path]] = {}
        for step in self.planned:
            for folder in step.publishes:
                sources.setdefault(folder, []).append(self.work[step.name].dir / folder)
        return sources


@dataclass(frozen=True)
class CurateStep:
    """One row of `CURATE_STEPS`: a coarse, resumable step of a curate run, and all that derives from it.

    Attributes:
        name: the step's name, on disk as its work folder `.work/<name>-<key>/` and its summary.json `steps` entry
            (renaming one changes every key after it and the run_id).
        gates: the gates (summary.json `stages`) whose documents the step counts; a gate's summary.json
            `status` is `reused` when every planned step counting it was reused.
        enabled: whether a run plans the step (called after `plan()` checked the files the config names).
        settings: the step's own settings, `(stage, config as JSON) -> dict`: what its key hashes besides the
            previous step's key. A setting missing here is a setting whose change reuses stale work.
        gates_on: which of `gates` this run has on, `(stage, the step's done.json) -> names`; the others are
            `off` in summary.json.
        run: the runner, `(stage, work) -> done.json`: the step's passes in its work folder.
        publishes: folders of the step's work folder merged into the output folder's folder of the same name.
    """

    name: str
    gates: tuple[str, ...]
    enabled: Callable[[CurateStage], bool]
    settings: Callable[[CurateStage, dict[str, Any]], dict[str, Any]]
    gates_on: Callable[[CurateStage, dict[str, Any]], Collection[str]]
    run: Callable[[CurateStage, StepWork], dict[str, Any]]
    publishes: tuple[str, ...] = ()


def _dedup_settings(stage: CurateStage, cfg: dict[str, Any]) -> dict[str, Any]:
    """The dedup step's key settings; the earlier runs (by run_id, in order) only when there are any, so the keys
    of runs without --dedup-against stay what they were."""
    settings = {"dedup": cfg["dedup"], "pii": cfg["pii"], "rejects": cfg["rejects"]}
    if stage.priors:
        settings["dedup_against"] = [prior.run_id for prior in stage.priors]
    return settings


def _dedup_gates_on(stage: CurateStage, _done: dict[str, Any]) -> list[str]:
    """The dedup step's gates that the config turns on (pii counts here even when the filter step anonymised)."""
    on = {"exact_dedup": stage.config.dedup.exact, "minhash_dedup": stage.config.dedup.minhash}
    on |= dict.fromkeys(PRIOR_STAGES, bool(stage.priors))
    on |= dict.fromkeys(OUTPUT_STAGES, stage.config.pii.enabled)
    return [name for name, enabled in on.items() if enabled]


# The curate steps in run order: the one place a step is declared. Its key, runner, the summary status of its
# gates and what it publishes all derive from its row; `summary.json` lists the planned ones in this order. Every
# step that writes rejects/ keys the `rejects` settings.
CURATE_STEPS: tuple[CurateStep, ...] = (
    CurateStep(
        "filter",
        gates=FIRST_PASS,
        enabled=lambda stage: True,
        # the filter step anonymises (pii), and its quarantine and rejects follow pii.raw_rejects
        settings=lambda stage, cfg: {key: cfg[key] for key in ("read", "extract", "filters", "rejects", "pii")},
        gates_on=lambda stage, done: done["enabled"],
        run=CurateStage.run_filter,
        publishes=("rejects", "quarantine"),
    ),
    CurateStep(
        "score",
        gates=QUALITY_STAGES,
        enabled=lambda stage: stage.model_card is not None,
        settings=lambda stage, cfg: {"model_sha256": stage.model_card.sha256},
        gates_on=lambda stage, done: QUALITY_STAGES,
        run=CurateStage.run_score,
    ),
    CurateStep(
        "select",
        gates=QUALITY_STAGES,
        enabled=lambda stage: stage.model_card is not None,
        settings=lambda stage, cfg: (
            {key: cfg["quality"][key] for key in ("threshold", "keep_fraction", "score_only")}
            | {"rejects": cfg["rejects"]}
        ),
        gates_on=lambda stage, done: QUALITY_STAGES,
        run=CurateStage.run_select,
        publishes=("rejects", "quality"),
    ),
    CurateStep(
        "screen",
        gates=SCREEN_STAGES,
        enabled=lambda stage: stage.index_path is not None,
        settings=lambda stage, cfg: {
            "action": cfg["decontaminate"]["action"],
            "index_sha256": file_sha256(stage.index_path),
            "rejects": cfg["rejects"],
        },
        gates_on=lambda stage, done: SCREEN_STAGES,
        run=CurateStage.run_screen,
        publishes=("rejects",),
    ),
    CurateStep(
        "dedup",
        gates=PRIOR_STAGES + DEDUP_STAGES + OUTPUT_STAGES,
        enabled=lambda stage: True,
        settings=_dedup_settings,
        gates_on=_dedup_gates_on,
        run=CurateStage.run_dedup,
        publishes=("rejects", "data", INDEX_DIR, clusters.EXPORT_DIR),
    ),
)


def run_curate(
    config: CurateConfig,
    inputs: list[str],
    output_dir: Path,
    workers: int = 1,
    executor: ExecutorKind = "local",
    limit: int | None = None,
    overwrite: bool = False,
    on_progress: ProgressCallback = ignore_progress,
    log_to_file: bool = False,
) -> dict[str, Any]:
    """Run (or resume, or reuse the finished output of) a curate run: the whole of `fineforge curate`.

    Args:
        config: the curate config.
        inputs: paths, folders or fsspec URLs.
        output_dir: output folder (data/, rejects/, quarantine/, quality/, summary.json).
        workers: tasks run at the same time.
        executor: `local`, `ray` or `slurm`.
        limit: read at most this many documents (None: all).
        overwrite: write into a folder that is not a curate output (files of curate's own kinds are replaced).
        on_progress: called with progress snapshots while the steps run.
        log_to_file: append datatrove's log to `output_dir/curate.log` instead of stderr.

    Returns:
        The summary dict (also written as output_dir/summary.json).
    """
    stage = CurateStage(
        config,
        inputs,
        output_dir,
        workers=workers,
        executor=executor,
        limit=limit,
        overwrite=overwrite,
        on_progress=on_progress,
        log_to_file=log_to_file,
    )
    return run_stage(stage).result
