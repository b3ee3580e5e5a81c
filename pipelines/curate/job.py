"""`fineforge curate`: the FineWeb recipe over any crawl, resumable, with every document accounted for.

`CurateStage` implements the stage interface of `pipelines.common.stage` (plan, is-complete, claim, steps,
finish). Its two coarse steps are each a set of datatrove executors that resume from completion markers:

1. `filter`: read (pipelines.curate.read) -> extract (pipelines.curate.extract, HTML only) -> URL, language, Gopher
   repetition, Gopher quality, C4, FineWeb filters (pipelines.curate.filters) -> JSONL in the work folder.
   One pass, so each document is read and parsed once.
2. `dedup`: exact then MinHash dedup (pipelines.curate.dedup), whose last step writes the survivors, flattened to
   the `data/` columns, as Parquet.

`finish()` merges the per-task stats (`stats/*.json`, never the latest-invocation-only `stats.json`), checks
the accounting invariants, publishes `data/`, `rejects/` and `quarantine/` into the output folder and writes
`summary.json` last, atomically.

Run identity and resume: `run_id` hashes the config (config_hash), the input files with their sizes, the task
count and `--limit`. All state lives in `DIR/.work/<run_id>/`, so a changed config or input set starts a new
run instead of mixing outputs, and rerunning the same command after a crash (even `kill -9`) redoes only
tasks without a completion marker. Every writer opens its files afresh per task and the documents of a task
arrive in a fixed order, so the rerun's `data/` is byte-identical to an uninterrupted run's. A rerun of a
published run returns its summary without touching anything. Once a run is published, the work folders of
superseded runs are deleted.

Progress: `on_progress` gets a `pipelines.common.progress.Progress` snapshot about once a second while the
passes run (documents per stage so far, documents/s, an ETA where the input size tells), observed through
`pipelines.curate.progress` without touching the documents.

Drop guard: a stage that drops >= 99% of >= 100 documents fails the run, naming the stage (the classic cause
is extraction returning nothing because a dependency is missing), unless `expected_drop` lists it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

from pipelines.common.files import link_or_copy, read_json, write_json_atomic
from pipelines.common.hashing import stable_hash
from pipelines.common.inputs import InputFile, discover_inputs
from pipelines.common.progress import ProgressCallback, ignore_progress
from pipelines.common.stage import Stage, Step, run_stage
from pipelines.curate.config import CurateConfig, config_hash
from pipelines.curate.dedup import run_dedup
from pipelines.curate.executors import ExecutorKind, executor_factory
from pipelines.curate.extract import HtmlExtractor
from pipelines.curate.filters import build_filter_steps
from pipelines.curate.progress import CurateWatcher
from pipelines.curate.read import SourceReader
from pipelines.curate.stages import DEDUP_STAGES, FILTER_STAGES, FIRST_PASS, READ_STAGES
from pipelines.curate.stats import StageStats, merge_task_stats, passthrough, stage_from_counts

DROP_GUARD_MIN_DOCS = 100  # issue 2: a stage dropping >= 99% of >= 100 documents fails the run
DROP_GUARD_FRACTION = 0.99
OUTPUT_DIRS = ("data", "rejects", "quarantine")
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


class DropGuardError(RuntimeError):
    """A stage dropped (nearly) everything; the message names the stage and how to allow it."""


class InvariantError(RuntimeError):
    """The document accounting of a run does not add up."""


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


class RejectsWriter(ParquetWriter):
    """Writes dropped documents of one stage as `rejects/<stage>/<rank>.parquet`, up to a sample per reason.

    The sample is per task and reason (the first N in input order, so reruns keep the same ones); exact
    counts live in the stage stats, not here.

    Args:
        output_folder: `rejects/<stage>` folder.
        stage: stage name written in the `stage` column.
        sample_per_reason: documents kept per reason and task; None keeps all.
    """

    name = "rejects"

    def __init__(self, output_folder: str, stage: str, sample_per_reason: int | None):
        super().__init__(output_folder, adapter=_reject_row, schema=REJECTS_SCHEMA)
        self.stage = stage
        self.sample_per_reason = sample_per_reason
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
    meta = doc.metadata
    return {
        "id": str(doc.id),
        "text": doc.text,
        "url": _str_or_none(meta.get("url")),
        "source_file": _str_or_none(meta.get("source_file")),
        "stage": writer.stage,
        "reason": str(meta.get("filter_reason") or writer.stage),
        "metadata": _metadata_json(meta, ("url", "source_file", "filter_reason")),
    }


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


def check_invariants(summary: dict[str, Any], rows_in_data: int) -> None:
    """Check the accounting of a finished run.

    Args:
        summary: the summary dict (records_read, quarantined, docs_in, docs_out, stages).
        rows_in_data: rows counted in the published `data/*.parquet`.

    Raises:
        InvariantError: listing every violated invariant.
    """
    problems = []
    if summary["records_read"] != summary["docs_in"] + summary["quarantined"]:
        problems.append(
            f"records_read {summary['records_read']} != docs_in {summary['docs_in']} + "
            f"quarantined {summary['quarantined']}"
        )
    stages = summary["stages"]
    previous = summary["docs_in"]
    for stage in stages:
        if stage["docs_in"] != stage["docs_out"] + sum(stage["dropped"].values()):
            problems.append(f"stage {stage['name']}: docs_in != docs_out + sum(dropped): {stage}")
        if stage["docs_in"] != previous:
            problems.append(f"stage {stage['name']}: docs_in {stage['docs_in']} != previous docs_out {previous}")
        previous = stage["docs_out"]
    if not (previous == summary["docs_out"] == rows_in_data):
        problems.append(
            f"last stage docs_out {previous}, summary docs_out {summary['docs_out']}, rows in data/ {rows_in_data}"
        )
    if problems:
        raise InvariantError("curate accounting does not add up:\n  " + "\n  ".join(problems))


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


def make_run_id(cfg_hash: str, files: list[InputFile], tasks: int, limit: int | None) -> str:
    """Identity of a run: config hash, input files and sizes, task count and limit.

    Args:
        cfg_hash: config_hash of the config.
        files: the discovered input files.
        tasks: tasks per document-level stage.
        limit: the --limit value.

    Returns:
        16 hex characters.
    """
    return stable_hash({"config": cfg_hash, "files": [[f.url, f.size] for f in files], "tasks": tasks, "limit": limit})


class CurateStage(Stage):
    """One curate run over fixed inputs and config, as a `pipelines.common.stage.Stage`.

    The constructor only stores its arguments; `plan()` discovers the input files and fixes the task count and
    run id, `claim()` creates the work folder, `steps()` are the filter and dedup passes, `finish()` publishes.

    Args:
        config: the curate config.
        inputs: paths, folders or fsspec URLs.
        output_dir: the output folder DIR.
        workers: tasks run at the same time.
        executor: `local`, `ray` or `slurm`.
        limit: read at most this many documents in total (split over the tasks); None reads all.
        on_progress: called with a progress snapshot about once a second while a pass runs.
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
        on_progress: ProgressCallback = ignore_progress,
    ):
        self.config = config
        self.inputs = [str(i) for i in inputs]
        self.output_dir = Path(output_dir).resolve()
        self.workers = workers
        self.executor = executor
        self.limit = limit
        self.on_progress = on_progress
        self.config_hash = config_hash(config)

    def plan(self) -> None:
        """Discover the input files, size the tasks and fix the run id (and with it the work folder)."""
        self.files = discover_inputs(self.inputs, exclude=[self.output_dir])
        self.tasks = plan_tasks(self.files, self.workers, self.config.run.task_mb, self.config.run.max_tasks)
        self.run_id = make_run_id(self.config_hash, self.files, self.tasks, self.limit)
        self.work_dir = self.output_dir / ".work" / self.run_id
        sizes = [f.size or 0 for f in self.files]
        self.watcher = CurateWatcher(self.on_progress, self.work_dir, sum(sizes), self.limit)
        executors = executor_factory(
            kind=self.executor,
            workers=self.workers,
            logs_root=self.work_dir / "logs",
            slurm=self.config.run.slurm,
            ray=self.config.run.ray,
        )
        self.make_executor = self.watcher.factory(executors, sizes)
        self._started = time.monotonic()

    def is_complete(self) -> bool:
        """True when DIR/summary.json is this run's (same config, inputs, task count and limit)."""
        summary = read_json(self.output_dir / "summary.json")
        return isinstance(summary, dict) and summary.get("run_id") == self.run_id

    def result(self) -> dict[str, Any]:
        """The published summary.json."""
        return read_json(self.output_dir / "summary.json")

    def claim(self) -> None:
        """Create this run's work folder and record what it is (`job.json`)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.work_dir / "job.json", self._job_record())

    def steps(self) -> list[Step]:
        """The coarse passes in order, each resumable: `[("filter", ...), ("dedup", ...)]`."""
        return [("filter", self.run_filter), ("dedup", self.run_dedup)]

    @property
    def _out(self) -> Path:
        return self.work_dir / "out"

    def run_filter(self) -> None:
        """Stage 1: read, extract and filter every input file into JSONL in the work folder."""
        filters = build_filter_steps(self.config.filters, self._rejects_writer)
        names = [name for name, _ in filters]
        if unknown := set(names) - set(FILTER_STAGES):
            raise RuntimeError(f"pipelines.curate.filters returned unknown stages {sorted(unknown)}")
        write_json_atomic(self.work_dir / "filter_stages.json", [*READ_STAGES, *names])
        self.watcher.filter_names = [*READ_STAGES, *names]
        pipeline = [
            SourceReader(
                self.files,
                str(self._out / "quarantine"),
                text_key=self.config.read.text_key,
                id_key=self.config.read.id_key,
                limit=self.limit,
            ),
            HtmlExtractor(
                timeout=self.config.extract.timeout_s,
                favour_precision=self.config.extract.favour_precision,
                deduplicate=self.config.extract.deduplicate,
                exclusion_writer=self._rejects_writer("extract"),
            ),
            *[step for _, step in filters],
            JsonlWriter(str(self.work_dir / "filtered")),
        ]
        (self.work_dir / "filtered").mkdir(exist_ok=True)  # exists even when no document survives
        with self.watcher.step("filter"):
            self._run_executor(pipeline, "filter")
        check_drop_guard(self.filter_stats()[1], self.config.expected_drop)

    def run_dedup(self) -> None:
        """Stage 2: exact and MinHash dedup; the survivors are written to `data/` as Parquet."""
        data_writer = ParquetWriter(str(self._out / "data"), adapter=data_row, schema=DATA_SCHEMA)
        filtered = self.filter_stats()[1]
        self.watcher.filter_rows = [s.to_dict() for s in filtered]
        self.watcher.dedup_docs = filtered[-1].docs_out
        with self.watcher.step("dedup"):
            stats = run_dedup(
                self.work_dir / "filtered",
                self.work_dir / "dedup",
                self.config.dedup,
                final_steps=[data_writer],
                make_executor=self.make_executor,
                tasks=self.tasks,
                exclusion_writer=self._rejects_writer,
            )
        write_json_atomic(self.work_dir / "dedup_stats.json", [s.to_dict() for s in stats])
        check_drop_guard(stats, self.config.expected_drop)

    def filter_stats(self) -> tuple[dict[str, int], list[StageStats]]:
        """Merged counts of stage 1: the reader's record counts and StageStats for read..fineweb_quality."""
        steps = merge_task_stats(self.work_dir / "logs" / "filter")
        if not steps:
            raise RuntimeError(f"no finished filter tasks in {self.work_dir}; run the filter stage first")
        names = json.loads((self.work_dir / "filter_stages.json").read_text())
        by_name = {
            name: stage_from_counts(name, step["counts"])
            for name, step in zip(names, steps[: len(names)], strict=True)
        }
        return steps[0]["counts"], self._complete(by_name, FIRST_PASS, by_name["read"].docs_in)

    def finish(self) -> dict[str, Any]:
        """Check the accounting, publish data/, rejects/, quarantine/ and write summary.json (last, atomically).

        Returns:
            The summary dict.
        """
        reader, stages = self.filter_stats()
        dedup_file = self.work_dir / "dedup_stats.json"
        if not dedup_file.exists():
            raise RuntimeError(f"dedup has not finished for run {self.run_id}; run the dedup stage first")
        by_name = {s["name"]: StageStats(**s) for s in json.loads(dedup_file.read_text())}
        stages += self._complete(by_name, DEDUP_STAGES, stages[-1].docs_out)
        check_drop_guard(stages, self.config.expected_drop)
        duration = time.monotonic() - self._started
        docs_in = stages[0].docs_in
        summary = {
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "inputs": self.inputs,
            "input_files": len(self.files),
            "records_read": reader.get("records", 0),
            "quarantined": reader.get("quarantined", 0),
            "docs_in": docs_in,
            "docs_out": stages[-1].docs_out,
            "stages": [s.to_dict() for s in stages],
            "duration_s": round(duration, 3),
            "docs_per_s": round(docs_in / duration, 3) if duration > 0 else 0.0,
            "tasks": self.tasks,
            "workers": self.workers,
            "executor": self.executor,
            "limit": self.limit,
        }
        check_invariants(summary, parquet_rows(self._out / "data"))
        self._publish()
        write_json_atomic(self.output_dir / "summary.json", summary)
        self._remove_superseded_runs()
        return summary

    def _remove_superseded_runs(self) -> None:
        """Delete the work state of earlier runs (other configs or inputs) now that this run is published."""
        for other in (self.output_dir / ".work").iterdir():
            if other.name != self.run_id:
                shutil.rmtree(other, ignore_errors=True)

    @staticmethod
    def _complete(by_name: dict[str, StageStats], names: tuple[str, ...], docs_in: int) -> list[StageStats]:
        """Stages in `names` order; a disabled stage (absent from `by_name`) passes every document on."""
        stages = []
        for name in names:
            stages.append(by_name.get(name) or passthrough(name, docs_in))
            docs_in = stages[-1].docs_out
        return stages

    def _run_executor(self, pipeline: list, name: str) -> None:
        executor = self.make_executor(pipeline, name, self.tasks)
        executor.run()
        if incomplete := executor.get_incomplete_ranks():
            raise RuntimeError(f"curate stage {name!r} left tasks {incomplete} unfinished (logs in {self.work_dir})")

    def _rejects_writer(self, stage: str) -> RejectsWriter | None:
        rejects = self.config.rejects
        if not rejects.enabled:
            return None
        return RejectsWriter(str(self._out / "rejects" / stage), stage, rejects.sample_per_reason)

    def _job_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "config": self.config.model_dump(mode="json"),
            "inputs": self.inputs,
            "files": [[f.url, f.format, f.size] for f in self.files],
            "tasks": self.tasks,
            "limit": self.limit,
        }

    def _publish(self) -> None:
        """Replace DIR/{data,rejects,quarantine} by this run's (hard links where possible), summary.json first out."""
        (self.output_dir / "summary.json").unlink(missing_ok=True)
        for name in OUTPUT_DIRS:
            source, target = self._out / name, self.output_dir / name
            staging = self.output_dir / f".{name}.publishing"
            shutil.rmtree(staging, ignore_errors=True)
            if source.exists():
                shutil.copytree(source, staging, copy_function=link_or_copy)
            else:
                staging.mkdir(parents=True)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)


def run_curate(
    config: CurateConfig,
    inputs: list[str],
    output_dir: Path,
    workers: int = 1,
    executor: ExecutorKind = "local",
    limit: int | None = None,
    on_progress: ProgressCallback = ignore_progress,
) -> dict[str, Any]:
    """Run (or resume, or reuse the finished output of) a curate run: the whole of `fineforge curate`.

    Args:
        config: the curate config.
        inputs: paths, folders or fsspec URLs.
        output_dir: output folder (data/, rejects/, quarantine/, summary.json).
        workers: tasks run at the same time.
        executor: `local`, `ray` or `slurm`.
        limit: read at most this many documents (None: all).
        on_progress: called with progress snapshots while the passes run.

    Returns:
        The summary dict (also written as output_dir/summary.json).
    """
    stage = CurateStage(
        config, inputs, output_dir, workers=workers, executor=executor, limit=limit, on_progress=on_progress
    )
    return run_stage(stage).result
