"""fastText training in an interpreter of its own, with NaN retries: what makes `quality train` dependable.

fastText 0.9.2 (fasttext-numpy2-wheel) sometimes stops with "Encountered NaN" on data and settings that train
fine on another call: measured here, eight identical calls in one process gave ok, NaN, NaN, ok, NaN, ok, NaN,
NaN, and every successful call wrote a byte-identical model. The failures follow the state of the process heap
(a process that imported only fastText trained every time; one that had read Parquet first failed on its first
call), so each attempt runs in a fresh interpreter (`python -m pipelines.quality.fit`, which imports nothing but
fastText; no multiprocessing, so the caller's `__main__` is never re-imported), and an attempt that still meets a
NaN is repeated up to `ATTEMPTS` times. A successful attempt's model does not depend on how many failed before it.
A NaN on every attempt is reported as divergence (fastText's own advice: lower the learning rate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ATTEMPTS = 4
NAN_EXIT = 3  # the child's exit status when fastText met a NaN
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `pipelines`


class TrainingDivergedError(ValueError):
    """fastText met a NaN on every attempt: the learning rate is too high for these texts."""


def fit(lines: Path, out: Path, options: dict[str, Any]) -> None:
    """Train a supervised fastText model on a `__label__<class> <tokens>` file and save it.

    Args:
        lines: the training file.
        out: where to save the model.
        options: `train_supervised` keyword arguments (thread=1 and a seed for a deterministic model).

    Raises:
        TrainingDivergedError: every attempt met a NaN.
        RuntimeError: the child failed otherwise (its error output is in the message).
    """
    command = [sys.executable, "-m", "pipelines.quality.fit", str(lines), str(out), json.dumps(options)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    for _ in range(ATTEMPTS):
        child = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if child.returncode == 0:
            return
        if child.returncode != NAN_EXIT:
            raise RuntimeError(f"fastText training failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
    raise TrainingDivergedError(
        f"fastText training diverged (NaN) on {ATTEMPTS} attempts with lr {options.get('lr')}; lower --lr"
    )


def main(lines: str, out: str, options: str) -> int:
    """Child entry point: train, save, and exit 0, or NAN_EXIT when fastText met a NaN."""
    from pipelines.quality.backend import training_fasttext

    try:
        model = training_fasttext().train_supervised(input=lines, **json.loads(options))
    except RuntimeError as err:
        if "NaN" not in str(err):
            raise
        return NAN_EXIT
    model.save_model(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
