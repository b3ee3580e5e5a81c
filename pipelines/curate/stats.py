"""Per-stage document accounting, read back from datatrove's own stats files.

Every datatrove step counts what it sees in `stats/<rank>.json` under its executor's logging folder:
`total` (documents in), `forwarded` (documents out), `dropped` and `dropped_<reason>`. Two traps decide how we
read them (checked with datatrove 0.10.1):

- `stats.json` at the top of a logging folder covers only the tasks run by the *latest* invocation, so after a
  resumed run it silently misses every task finished before the crash. We merge `stats/*.json` instead: one
  file per finished task, whatever invocation ran it.
- A drop without a reason (datatrove's LanguageFilter gives none) shows only in `dropped`; the remainder
  `dropped - sum(dropped_<reason>)` is booked under the stage's own name so that
  `docs_in = docs_out + sum(dropped)` always holds.

Stages that change documents without dropping them (`pii`) or that have more to say than drop counts
(`decontaminate`: documents per eval set, matched n-grams) add their own fields through `StageStats.details`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatrove.utils.stats import MetricStatsDict, PipelineStats


@dataclass
class StageStats:
    """Document counts of one curate stage.

    Attributes:
        name: stage name (`read`, `extract`, `url_filter`, ..., `minhash_dedup`).
        docs_in: documents that entered the stage.
        docs_out: documents the stage passed on.
        dropped: number of dropped documents per reason code.
        details: further summary.json fields of this stage (e.g. `pii`: `modified`, `replacements`).
    """

    name: str
    docs_in: int
    docs_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary.json form: `{"name", "docs_in", "docs_out", "dropped", **details}`."""
        data = asdict(self)
        details = data.pop("details")
        return {**data, **details}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        """Read back the `to_dict` form (fields other than the four counts become `details`)."""
        counts = {key: data[key] for key in ("name", "docs_in", "docs_out", "dropped")}
        return cls(**counts, details={key: value for key, value in data.items() if key not in counts})

    def balanced(self) -> bool:
        """Whether `docs_in == docs_out + sum(dropped)`."""
        return self.docs_in == self.docs_out + sum(self.dropped.values())


def _load_task(path: Path) -> PipelineStats:
    task = PipelineStats.from_json(json.loads(Path(path).read_text()))
    for step in task.stats:  # datatrove's Stats.from_dict leaves raw ints/dicts: a lone task would stay raw
        step.stats = MetricStatsDict.from_dict(step.stats)
    return task


def _step_counts(stats: PipelineStats) -> list[dict[str, Any]]:
    return [
        {"name": step.name, "counts": {key: int(metric.total) for key, metric in step.stats.items()}}
        for step in stats.stats
    ]


def load_task_stats(path: Path) -> list[dict[str, Any]]:
    """The counts of one finished task (`stats/<rank>.json`), step by step.

    Args:
        path: the task's stats file.

    Returns:
        One dict per pipeline step, in pipeline order: `{"name": str, "counts": {metric: int}}`.
    """
    return _step_counts(_load_task(path))


def merge_task_stats(logging_dir: Path) -> list[dict[str, Any]]:
    """Sum the per-task stats files of one executor run, step by step.

    Args:
        logging_dir: the executor's logging folder (holds `stats/<rank>.json`).

    Returns:
        One dict per pipeline step, in pipeline order: `{"name": str, "counts": {metric: int}}`, where counts
        holds the summed `total` of each metric. Empty if no task has finished.
    """
    merged = PipelineStats()
    for path in sorted((Path(logging_dir) / "stats").glob("*.json")):
        merged += _load_task(path)
    return _step_counts(merged)


def stage_from_counts(name: str, counts: dict[str, int]) -> StageStats:
    """Turn one step's datatrove counters into a StageStats.

    Args:
        name: the stage name to give it.
        counts: the step's summed counters (`total`, `forwarded`, `dropped`, `dropped_<reason>`, ...).

    Returns:
        The stage's counts; a drop without a reason is booked under `name`.
    """
    reasons = {key.removeprefix("dropped_"): n for key, n in counts.items() if key.startswith("dropped_") and n}
    unexplained = counts.get("dropped", 0) - sum(reasons.values())
    if unexplained > 0:
        reasons[name] = reasons.get(name, 0) + unexplained
    return StageStats(name, counts.get("total", 0), counts.get("forwarded", 0), dict(sorted(reasons.items())))


def passthrough(name: str, docs: int) -> StageStats:
    """A stage that is switched off: every document passes.

    Args:
        name: stage name.
        docs: documents passing through.

    Returns:
        StageStats with `docs_in == docs_out == docs` and no drops.
    """
    return StageStats(name, docs, docs, {})
