"""Curate's work folders: one per step and key, so a run reuses every finished step it shares with an earlier one.

A curate run is a chain of steps (the rows of `pipelines.curate.job.CURATE_STEPS`: `filter`, then `score` and
`select` when the quality stage is on, `screen` when decontaminate is on, then `dedup`). Each step's key hashes
the previous step's key together with the step's own settings, and the first key hashes the run's inputs (files
and sizes, task count, `--limit`). A step's key therefore covers the inputs and the settings of that step and of
every step before it: two runs that agree up to some step share the keys, and so the work, of every step up to
there. Changing only `quality.threshold` keeps the `filter` and `score` keys (no re-extraction, no re-scoring)
and gives new `select` and `dedup` keys.

Each step works in `DIR/.work/<step>-<key>/`: `step.json` (what the key hashes, written when the step starts),
its datatrove logs and outputs, and `done.json` (its counts, written last and atomically). A folder without
`done.json` is unfinished; running the step again resumes it through datatrove's completion markers. Once a run
is published, `remove_unused` deletes every step folder that run did not use, so `.work/` holds one run's steps.

Runs in other output folders can share work too (the variants of an ablation): `StepWork.adopt` hard-links another
run's finished folder of the very same step and key into this run's `.work/` (publishing links, never moves, so a
finished folder stays whole), and the step counts as reused.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.common.files import link_or_copy, read_json, write_json_atomic
from pipelines.common.hashing import stable_hash

DONE = "done.json"


@dataclass(frozen=True)
class StepWork:
    """One step of a planned run: its key and its work folder.

    Attributes:
        name: the step (`filter`, `score`, `select`, `screen`, `dedup`).
        key: the hash of `record`.
        dir: `.work/<name>-<key>`.
        record: `{"step", "after" (the previous key, or the inputs' hash), "settings"}`.
    """

    name: str
    key: str
    dir: Path
    record: dict[str, Any]

    def finished(self) -> dict[str, Any] | None:
        """The step's `done.json` when it has finished (for this key), else None."""
        done = read_json(self.dir / DONE)
        return done if isinstance(done, dict) and done.get("key") == self.key else None

    def adopt(self, roots: Sequence[Path]) -> dict[str, Any] | None:
        """Link in the finished work of this step and key from another run's `.work` folder, if one has it.

        Args:
            roots: other runs' `.work` folders, searched in order.

        Returns:
            The adopted `done.json`, or None when no root holds this step finished.
        """
        for root in roots:
            source = Path(root) / self.dir.name
            done = read_json(source / DONE)
            if not (isinstance(done, dict) and done.get("key") == self.key) or source.resolve() == self.dir.resolve():
                continue
            staging = self.dir.with_name(self.dir.name + ".adopting")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging, copy_function=link_or_copy)
            shutil.rmtree(self.dir, ignore_errors=True)  # an unfinished attempt of this run's own
            staging.replace(self.dir)
            return self.finished()
        return None

    def start(self) -> None:
        """Create the work folder and write `step.json`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / "step.json", {"key": self.key, **self.record})

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write `done.json` (the step's counts and facts), last and atomically; return it."""
        done = {"key": self.key, **result}
        write_json_atomic(self.dir / DONE, done)
        return done


def plan_work(root: Path, inputs: dict[str, Any], steps: list[tuple[str, dict[str, Any]]]) -> list[StepWork]:
    """Key each step by the inputs and the settings of it and every step before it.

    Args:
        root: the `.work` folder.
        inputs: what every step depends on (files with sizes, task count, limit).
        steps: `(name, settings)` in run order.

    Returns:
        One StepWork per step, in order.
    """
    previous = stable_hash(inputs)
    planned = []
    for name, settings in steps:
        record = {"step": name, "after": previous, "settings": settings}
        previous = stable_hash(record)
        planned.append(StepWork(name, previous, Path(root) / f"{name}-{previous}", record))
    return planned


def remove_unused(root: Path, used: list[StepWork]) -> None:
    """Delete the step folders under `root` that are not among `used` (files such as job.json stay)."""
    keep = {work.dir.name for work in used}
    for child in Path(root).iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
