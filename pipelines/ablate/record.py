"""`ablation.json`, an ablation's contract: its fields, the one reader and writer.

`Ablation.finish` (pipelines/ablate/job.py) builds an `AblationRecord` from the finished stages' contract files and
writes it after every run is scored; `flows.py` names it and `pipelines/ablate/report.py` renders it. There are no
invariants beyond its fields today: the numbers in it are computed from the runs in one place
(`pipelines/ablate/results.py`). The data report (`pipelines/report/downstream.py`) looks for it beside a variant
folder by name only, so that the report does not import the ablation package above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipelines.common.files import read_json, write_json_atomic

ABLATION_FILE = "ablation.json"


class AblationRecord(BaseModel):
    """The fields of `ablation.json`, in the order they are written (docs/architecture.md, Contracts).

    `variants` [{name, config, config_hash, docs_out, train_tokens, epochs}], `eval_sets` [{name, path, kind, size,
    tokens}], `results` [{variant, seed, eval_set, metric, value, tokens_trained}], `summary` [{variant, eval_set,
    metric, mean, min, max, spread, seeds}], `verdicts`, `plan` {tasks, recommendation} (`pipelines/ablate/plan.py`),
    `overlap` [{variant, eval_set, documents, share}], `runs`, `settings`, `inputs`, `seeds`, `created`. Unknown
    fields are kept.
    """

    model_config = ConfigDict(extra="allow")

    variants: list[dict[str, Any]]
    eval_sets: list[dict[str, Any]]
    results: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    plan: dict[str, Any] = {}  # absent from records written before issue 23
    overlap: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    settings: dict[str, Any]
    inputs: Any
    seeds: list[int]
    created: str


def record_path(out: str | Path) -> Path:
    """The `ablation.json` of an ablation folder."""
    return Path(out) / ABLATION_FILE


def write(out: str | Path, record: AblationRecord) -> Path:
    """Write `out/ablation.json` atomically (indented UTF-8 JSON, fields in model order) and return its path."""
    return write_json_atomic(record_path(out), record.model_dump())


def recorded(out: str | Path) -> dict[str, Any] | None:
    """The ablation record of a folder, or None when there is none (or it is unreadable or not an object)."""
    record = read_json(record_path(out))
    return record if isinstance(record, dict) else None
