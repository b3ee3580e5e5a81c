"""`run.json`, a training run's contract: its fields, the one reader and writer.

The trainer writes it when a run starts (status "running", with its lineage from `trainer/lineage.py`) and again
when it ends (status completed, interrupted or failed, with its last step and losses); the train stage, the flows,
the ablation and the report read it. It lives here, beside the other shared helpers, because the report and the
flows read it without importing the trainer (and its torch). `trainer.lineage.check_same_data` is its invariant: a
run directory belongs to one shard set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipelines.common.files import read_json, write_json_atomic

RUN_FILE = "run.json"


class RunRecord(BaseModel):
    """The fields of `run.json` that others read (docs/architecture.md, Contracts); every other field is kept.

    `manifest` is {`path`, `sha256`, `config_hash`} of the shards trained on, `source` {`run_id`, `config_hash`}
    of the curate run behind them, `config` the full TrainConfig. The file keeps the order the trainer builds it in.
    """

    model_config = ConfigDict(extra="allow")

    status: str
    manifest: dict[str, Any]
    source: dict[str, Any]
    config: dict[str, Any]
    step: int | None = None
    loss: float | None = None
    val_loss: float | None = None


def run_path(run_dir: str | Path) -> Path:
    """The `run.json` of a run directory."""
    return Path(run_dir) / RUN_FILE


def write_run(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Check `record` against `RunRecord` and write it as `run_dir/run.json`, atomically, in its own key order.

    Args:
        run_dir: the run directory.
        record: the run record.

    Returns:
        The path written.

    Raises:
        pydantic.ValidationError: the record lacks a field or holds one of the wrong type.
    """
    RunRecord.model_validate(record)
    return write_json_atomic(run_path(run_dir), record)


def recorded_run(run_dir: str | Path) -> dict[str, Any] | None:
    """The run.json of a run directory, or None when there is none (or it is unreadable or not an object)."""
    run = read_json(run_path(run_dir))
    return run if isinstance(run, dict) else None
