"""Live progress of a curate run, observed from outside datatrove's executors without slowing them.

datatrove writes a task's stats only when the task ends, and a small run has a single task, so completion
markers alone say nothing until the end. Instead a `ProgressProbe` rides in every pipeline that starts with a
reader, right after it: a pass-through generator that counts the documents it hands on and, at most once a
second, writes the counters of every step of its pipeline to `<step work>/progress/<phase>/<rank>.json` (the steps
are the same objects in the task's process: pickling keeps the references of one pipeline list). It is a plain
callable, not a `PipelineStep`, so it adds no entry to datatrove's stats and costs one clock read per document:
3.7 M documents/s per core through the probe alone (`python -m benchmarks.curate`), about 0.3 us per document
against about 1 ms for the four heuristic filters. The files sit next to the completion markers, on the storage
that every Ray node or Slurm task already shares.

`CurateWatcher` polls those files (and the per-task stats of finished tasks) once a second from a thread of the
calling process and turns them into `pipelines.common.progress.Progress` snapshots: documents per stage so far,
documents/s, and an ETA where the input size tells (with `--limit`, the limit; otherwise from the bytes of input
files that tasks have finished, once each task has finished one; in the later steps (score, select, screen,
dedup), the documents that entered the step or phase). When the run is published, `finished` reports 100% with
summary.json's counts of every stage, so the terminal and the `curate-counts-<dataset>` artifact end at them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.base import BaseReader

from pipelines.common.files import read_json, write_json_atomic
from pipelines.common.processes import raise_if_interrupted
from pipelines.common.progress import Progress, ProgressCallback, StepClock, overall_fraction
from pipelines.curate.read import SourceReader
from pipelines.curate.stats import load_task_stats, stage_from_counts

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0  # how often a task writes its counters
POLL_INTERVAL_S = 1.0  # how often the watcher reads them
# The dedup sub-stages in the order `pipelines.curate.dedup` runs them (disabled ones are skipped).
DEDUP_PHASES = (
    "prior_filter",
    "exact_signature",
    "exact_find",
    "exact_filter",
    "minhash_signature",
    "minhash_buckets",
    "minhash_cluster",
    "minhash_filter",
    "dedup_output",
)
# The phases that drop documents (in the step right after their reader), and the stage whose row they fill.
PHASE_STAGE = {
    "select": "quality",
    "screen": "decontaminate",
    "prior_filter": "prior_dedup",
    "exact_filter": "exact_dedup",
    "minhash_filter": "minhash_dedup",
}
# Share of a curate run's time per step, in step order: the filter pass took 81% and 70% of the wall time of
# one-worker runs on 10k and 100k documents (`python -m benchmarks.curate --e2e 10000 100000`, "filter %"), dedup
# the rest. The optional quality and decontamination steps were not measured: weightless, so the overall fraction
# waits at the filter's share while they run (their own documents/s and ETA still show).
STEP_WEIGHTS = {"filter": 0.75, "score": 0.0, "select": 0.0, "screen": 0.0, "dedup": 0.25}
MakeExecutor = Callable[[list, str, int], PipelineExecutor]
ROW_KEYS = ("name", "docs_in", "docs_out", "dropped")  # a stage's row in the progress table


def stage_row(stage: dict[str, Any]) -> dict[str, Any]:
    """A summary.json stage as a progress-table row: its counts, without the details some stages add."""
    return {key: stage[key] for key in ROW_KEYS}


class ProgressProbe:
    """A pass-through pipeline callable that writes its task's counters at most once a second.

    Args:
        folder: where `<rank>.json` goes.
        file_sizes: sizes of the input files in reader order (None when the pipeline reads work files).
        interval_s: seconds between writes.
    """

    def __init__(self, folder: str, file_sizes: list[int] | None = None, interval_s: float = PROBE_INTERVAL_S):
        self.folder = folder
        self.file_sizes = file_sizes
        self.interval_s = interval_s
        self.steps: list[PipelineStep] = []

    def __repr__(self) -> str:
        """How datatrove's pipeline log lists the probe."""
        return f"📈 - PROGRESS: counters to {self.folder} every {self.interval_s:g} s"

    def watch(self, steps: list[PipelineStep]) -> ProgressProbe:
        """Set the steps whose counters to report (the pipeline's `PipelineStep`s, in order); returns self."""
        self.steps = steps
        return self

    def __call__(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield every document of `data` unchanged, writing the counters on the way and at the end."""
        path = Path(self.folder) / f"{rank:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        sizes = (self.file_sizes or [])[rank::world_size]
        tally = _Tally(sizes)
        last = time.monotonic()
        for doc in data or ():
            raise_if_interrupted()
            tally.document(self._files_started())
            yield doc
            now = time.monotonic()
            if now - last >= self.interval_s:
                write_json_atomic(path, tally.snapshot(self.steps, finished=False))
                last = now
        tally.files_done = len(sizes)
        write_json_atomic(path, tally.snapshot(self.steps, finished=True))

    def _files_started(self) -> int:
        reader = self.steps[0] if self.steps else None
        metric = reader.stats.stats.get("input_files") if reader is not None else None
        return int(metric.total) if metric is not None else 0


class _Tally:
    """A task's running counts: documents seen, and documents and bytes of the input files it has finished."""

    def __init__(self, sizes: list[int]):
        self.sizes = sizes
        self.docs = 0
        self.files_done = 0
        self.docs_in_done_files = 0

    def document(self, files_started: int) -> None:
        # a new file has started when the reader's file count moves: every file before it is finished
        if files_started - 1 > self.files_done:
            self.files_done = files_started - 1
            self.docs_in_done_files = self.docs
        self.docs += 1

    def snapshot(self, steps: list[PipelineStep], finished: bool) -> dict[str, Any]:
        done = self.docs if finished else self.docs_in_done_files
        return {
            "docs": self.docs,
            "finished": finished,
            "bytes_done": sum(self.sizes[: self.files_done]),
            "docs_in_done_files": done,
            "steps": [{"name": s.name, "counts": {k: int(v.total) for k, v in s.stats.stats.items()}} for s in steps],
        }


def reads_documents(pipeline: list) -> bool:
    """Whether a pipeline starts with a reader (and so gets a probe)."""
    return bool(pipeline) and isinstance(pipeline[0], (SourceReader, BaseReader))


def with_probes(make_executor: MakeExecutor, progress_root: Path, file_sizes: list[int]) -> MakeExecutor:
    """Wrap an executor factory so that every pipeline starting with a reader carries a `ProgressProbe`.

    Args:
        make_executor: `(pipeline, name, tasks) -> executor`.
        progress_root: parent of the per-phase probe folders (`<progress_root>/<name>/`).
        file_sizes: sizes of the curate input files, for the pipeline that reads them.

    Returns:
        The wrapped factory.
    """

    def factory(pipeline: list, name: str, tasks: int) -> PipelineExecutor:
        if reads_documents(pipeline):
            sizes = file_sizes if isinstance(pipeline[0], SourceReader) else None
            probe = ProgressProbe(str(progress_root / name), sizes)
            probe.watch([step for step in pipeline if isinstance(step, PipelineStep)])
            pipeline = [pipeline[0], probe, *pipeline[1:]]
        return make_executor(pipeline, name, tasks)

    return factory


class _Phase:
    """The executor run the watcher looks at: its name, task count and folders."""

    def __init__(self, name: str, tasks: int, logging_dir: Path, probe_dir: Path, reads: bool):
        self.name, self.tasks, self.reads = name, tasks, reads
        self.logging_dir, self.probe_dir = logging_dir, probe_dir
        self._final: dict[int, list[dict[str, Any]]] = {}
        self.resumed = self._completed()  # tasks an earlier invocation finished: left out of the rate
        self._baseline: int | None = None

    def _completed(self) -> set[int]:
        folder = self.logging_dir / "completions"
        return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()

    def baseline(self) -> int:
        """Units done before this invocation: documents read by the tasks an earlier one finished (or the tasks)."""
        if not self.reads:
            return len(self.resumed)
        if self._baseline is None:
            probes = (read_json(self.probe_dir / f"{rank:05d}.json") or {} for rank in self.resumed)
            self._baseline = sum(probe.get("docs", 0) for probe in probes)
        return self._baseline

    def task_counts(self, rank: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
        """(probe record, step counts) of one task; a finished task's counts come from its stats file."""
        probe = read_json(self.probe_dir / f"{rank:05d}.json")
        if rank not in self._final and (self.logging_dir / "completions" / f"{rank:05d}").exists():
            with contextlib.suppress(OSError, ValueError):
                self._final[rank] = load_task_stats(self.logging_dir / "stats" / f"{rank:05d}.json")
        steps = self._final.get(rank) or (probe or {}).get("steps")
        return probe, steps

    def docs_read(self) -> int:
        """Documents read by the phase's tasks so far."""
        return sum((self.task_counts(rank)[0] or {}).get("docs", 0) for rank in range(self.tasks))

    def step_counts(self, index: int) -> dict[str, int]:
        """The counters of the pipeline's `index`-th step (the reader is 0), summed over the tasks so far."""
        merged: dict[str, int] = {}
        for rank in range(self.tasks):
            _, steps = self.task_counts(rank)
            if steps and len(steps) > index:
                for key, value in steps[index]["counts"].items():
                    merged[key] = merged.get(key, 0) + value
        return merged

    def tasks_done(self) -> int:
        """Tasks with a completion marker."""
        return len(self._completed())


class CurateWatcher:
    """Turns probe files and finished tasks into `Progress` snapshots for one curate run.

    Args:
        on_progress: the callback.
        total_bytes: bytes of all input files (0 when unknown).
        limit: the run's `--limit` (then the document total is known).

    Attributes:
        filter_names: stage names of the filter pass's steps in pipeline order (read, extract, the filters); set
            by the caller before the filter step.
        docs_entering: documents entering the running step or phase (after the filter step).
    """

    def __init__(self, on_progress: ProgressCallback, total_bytes: int, limit: int | None):
        self.on_progress = on_progress
        self.total_bytes = total_bytes
        self.limit = limit
        self.filter_names: list[str] = []
        self._finished_rows: list[dict[str, Any]] = []  # stage rows of the steps that have finished
        self._step_rows: dict[str, dict[str, Any]] = {}  # stage rows so far of the running step
        self.docs_entering: int | None = None
        self._phase: _Phase | None = None
        self._clock = StepClock()
        self._lock = threading.Lock()
        self._warned = False

    def factory(self, make_executor: MakeExecutor, file_sizes: list[int], progress_root: Path) -> MakeExecutor:
        """Wrap `make_executor`: probes in reader pipelines, and each new executor becomes the watched phase.

        Args:
            make_executor: `(pipeline, name, tasks) -> executor` of one step.
            file_sizes: sizes of the curate input files.
            progress_root: the step's probe folder (`<progress_root>/<phase>/<rank>.json`).

        Returns:
            The wrapped factory.
        """
        probed = with_probes(make_executor, progress_root, file_sizes)

        def factory(pipeline: list, name: str, tasks: int) -> PipelineExecutor:
            executor = probed(pipeline, name, tasks)
            with self._lock:
                if self._phase is not None and self._phase.name in PHASE_STAGE:
                    self.docs_entering = self._phase_row(self._phase)["docs_out"]  # what the next phases read
                logging_dir, probes = Path(executor.logging_dir.path), progress_root / name
                self._phase = _Phase(name, tasks, logging_dir, probes, reads_documents(pipeline))
            return executor

        return factory

    def step_finished(self, stages: list[dict[str, Any]]) -> None:
        """Record a finished (or reused) step's stage rows; its last stage's output enters the next step."""
        self._finished_rows = [*self._finished_rows, *map(stage_row, stages)]
        self._step_rows = {}
        if stages:
            self.docs_entering = stages[-1]["docs_out"]

    @contextlib.contextmanager
    def step(self, step: str) -> Iterator[None]:
        """Report progress once a second while the block runs the curate step `step`, and once more at its end.

        The polling thread runs in a copy of the caller's context, so Prefect artifacts it creates belong to the
        caller's flow and task run.
        """
        stop = threading.Event()
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(self._poll, step, stop), daemon=True)
        self._phase = None
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self._safe_report(step, final=True)

    def finished(self, stages: list[dict[str, Any]], docs_in: int) -> Progress:
        """Report the end of the run: 100%, with every stage's final counts (summary.json's) as the rows.

        Args:
            stages: summary.json's `stages`.
            docs_in: documents that entered the run.

        Returns:
            The snapshot handed to the callback.
        """
        progress = Progress(
            stage="curate",
            step="done",
            done=docs_in,
            total=docs_in,
            unit="docs",
            elapsed_s=self._clock.elapsed("done"),
            overall=1.0,
            detail=f"{stages[-1]['docs_out']:,} kept" if stages else "",
            rows=[stage_row(stage) for stage in stages],
        )
        self.on_progress(progress)
        return progress

    def _poll(self, step: str, stop: threading.Event) -> None:
        while not stop.wait(POLL_INTERVAL_S):
            self._safe_report(step)

    def _safe_report(self, step: str, final: bool = False) -> None:
        """`report`, where any failure is logged once and never reaches the run (progress is advisory)."""
        try:
            self.report(step, final)
        except (OSError, ValueError, KeyError):
            pass  # a file being replaced or a task just starting: the next poll reads it
        except Exception as err:  # noqa: BLE001 - whatever breaks the progress display must not break curate
            if not self._warned:
                log.warning("curate progress stopped updating: %r", err)
                self._warned = True

    def report(self, step: str, final: bool = False) -> Progress | None:
        """Build the snapshot of `step` from the files now on disk and hand it to the callback.

        Returns:
            The snapshot (None before the step's first executor exists).
        """
        with self._lock:
            phase = self._phase
        if phase is None:
            return None
        if step == "filter":
            progress = self._filter_progress(phase, final)
        else:
            progress = self._later_progress(step, phase, final)
        self.on_progress(progress)
        return progress

    def _filter_progress(self, phase: _Phase, final: bool) -> Progress:
        docs = bytes_done = docs_in_done = 0
        merged: dict[str, dict[str, int]] = {}
        for rank in range(phase.tasks):
            probe, steps = phase.task_counts(rank)
            probe = probe or {}
            docs += probe.get("docs", 0)
            bytes_done += probe.get("bytes_done", 0)
            docs_in_done += probe.get("docs_in_done_files", 0)
            for name, step in zip(self.filter_names, steps or [], strict=False):
                counts = merged.setdefault(name, {})
                for key, value in step["counts"].items():
                    counts[key] = counts.get(key, 0) + value
        rows = [stage_from_counts(name, merged[name]).to_dict() for name in self.filter_names if name in merged]
        total = self._filter_total(docs, docs_in_done, bytes_done)
        fraction = 1.0 if final else (docs / total if total else 0.0)
        elapsed = self._clock.elapsed("filter")
        return Progress(
            stage="curate",
            step="filter",
            done=docs,
            total=docs if final else total,
            unit="docs",
            elapsed_s=elapsed,
            overall=overall_fraction(STEP_WEIGHTS, "filter", fraction),
            detail=f"{phase.tasks_done()}/{phase.tasks} tasks",
            rows=rows,
            baseline=phase.baseline(),
        )

    def _filter_total(self, docs: int, docs_in_done: int, bytes_done: int) -> float | None:
        """Documents expected in all: the limit, else extrapolated from the bytes of finished input files."""
        if self.limit is not None:
            return float(self.limit)
        if bytes_done <= 0 or self.total_bytes <= 0:
            return None
        return max(docs, docs_in_done * self.total_bytes / bytes_done)

    def _phase_row(self, phase: _Phase) -> dict[str, Any]:
        """Record and return the counts so far of the stage that `phase` drops for (see PHASE_STAGE)."""
        stage = PHASE_STAGE[phase.name]
        row = stage_from_counts(stage, phase.step_counts(1)).to_dict()
        self._step_rows[stage] = row
        return row

    def _later_progress(self, step: str, phase: _Phase, final: bool) -> Progress:
        """A snapshot of score, select, screen or dedup: documents (or tasks) of the running phase."""
        if phase.name in PHASE_STAGE:
            docs = self._phase_row(phase)["docs_in"]
        else:
            docs = phase.docs_read()
        rows = [*self._finished_rows, *self._step_rows.values()]
        reads = phase.reads
        done = docs if reads else phase.tasks_done()
        total = (self.docs_entering if reads else phase.tasks) or None
        phases = DEDUP_PHASES if step == "dedup" else (phase.name,)
        index = phases.index(phase.name) if phase.name in phases else 0
        within = 1.0 if final else (done / total if total else 0.0)
        fraction = 1.0 if final else (index + within) / len(phases)
        return Progress(
            stage="curate",
            step=step,
            done=done,
            total=total,
            unit="docs" if reads else "tasks",
            elapsed_s=self._clock.elapsed(f"{step}:{phase.name}"),
            overall=overall_fraction(STEP_WEIGHTS, step, fraction),
            detail=phase.name,
            rows=rows,
            baseline=phase.baseline(),
        )
