"""The stage interface: how the CLI, `fineforge demo` and the Prefect flows run curate, tokenize and train.

A stage is an object over fixed inputs, settings and an output folder. Its constructor only stores them; every
effect is an explicit call, in this order:

1. `plan()`: resolve the inputs and settings into this run's identity (reads, never writes);
2. `is_complete()`: whether the output folder already holds the finished contract file of exactly this plan
   (`summary.json`, `manifest.json` or `run.json`); if so nothing else runs, and `result()` returns it;
3. `claim()`: make the output folder this run's (refuse files FineForge did not write; discard its own stale
   work of other settings); from here to `finish()`, `run_stage` holds the lock of the stage's
   `output_folder()` (`pipelines.common.locks.folder_lock`), so a second run into the folder is refused;
4. `steps()`: the coarse, resumable units of work in order (one Prefect task each); a crash anywhere is
   resumed by calling them again;
5. `finish()`: check the accounting, write the contract file last and atomically, and return it.

`run_stage` does exactly that, so "finished" and "resume" mean one thing wherever a stage runs.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.common.errors import disk_full, no_space_error
from pipelines.common.locks import folder_lock

Step = tuple[str, Callable[[], None]]
StepRunner = Callable[[str, Callable[[], None]], None]


class Stage(ABC):
    """One pipeline stage over fixed inputs, settings and output folder (see the module docstring)."""

    name: str = "stage"

    @abstractmethod
    def plan(self) -> None:
        """Resolve inputs and settings into this run's identity; reads, never writes."""

    @abstractmethod
    def is_complete(self) -> bool:
        """Return True when the output folder holds the finished contract of exactly this plan."""

    def output_folder(self) -> Path | None:
        """The folder `run_stage` locks from `claim()` to `finish()`; None for a stage that locks its own."""
        return None

    @abstractmethod
    def claim(self) -> None:
        """Make the output folder this run's, or raise naming what is in the way."""

    @abstractmethod
    def steps(self) -> list[Step]:
        """Return the coarse, resumable units of work in order as `(name, callable)` pairs."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Write the contract file (last, atomically) and return it."""

    @abstractmethod
    def result(self) -> dict[str, Any]:
        """Return the contract of the finished stage (read from the output folder)."""


@dataclass(frozen=True)
class StageOutcome:
    """What `run_stage` did: the stage's contract and whether an earlier run's was reused."""

    result: dict[str, Any]
    reused: bool


def _call(name: str, step: Callable[[], None]) -> None:
    step()


def run_stage(stage: Stage, run_step: StepRunner = _call) -> StageOutcome:
    """Run a stage to completion, or reuse its finished output: plan, is-complete, claim, steps, finish.

    Args:
        stage: the stage.
        run_step: how to run one step, `(name, callable) -> None` (a Prefect flow wraps each in a task).

    Returns:
        The contract (summary, manifest or run record) and whether it was reused.

    Raises:
        FolderInUse: another run holds the output folder's lock (the message names its host and pid).
        DiskFullError: the output folder's disk filled up (in this process or a worker); a rerun resumes.
    """
    stage.plan()
    if stage.is_complete():
        return StageOutcome(stage.result(), reused=True)
    folder = stage.output_folder()
    with folder_lock(folder) if folder is not None else contextlib.nullcontext():
        try:
            stage.claim()
            for name, step in stage.steps():
                run_step(name, step)
            return StageOutcome(stage.finish(), reused=False)
        except Exception as err:
            if folder is None or (full := disk_full(err)) is None:
                raise
            raise no_space_error(folder.resolve(), full) from err
