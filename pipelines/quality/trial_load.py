"""Load a fastText model once in a child process with a memory and time bound, before any run depends on it.

`pipelines.quality.fasttext_file` walks a model's structure so that fastText never reads a file whose sizes do
not fit its length; this module is the second line behind it. fastText is C++: if it still failed on a file (a
`std::bad_alloc`, a crash or a loop the walk did not foresee), it would take down or hang the process that loaded
it, and in curate that is a datatrove worker holding an hour of work. So a model is first loaded here, in a fresh
interpreter (`python -m pipelines.quality.trial_load MODEL`) whose address space is capped (`RLIMIT_AS`) and whose
run is bounded in time; a child that dies, runs out of memory or does not finish becomes one error naming the file.
Cost: about one second per curate run with a quality model (importing fastText and reading the file once).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 120.0  # a valid model of a few hundred MB loads in seconds; minutes mean the loader is stuck
BASE_MEMORY = 2 << 30  # the interpreter, numpy and fastText's fixed vocabulary hash table (30 M int32: 120 MB)
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `pipelines`


class TrialLoadError(ValueError):
    """fastText could not load the model within the bounds; the message names the file and how it failed."""


def memory_bound(model_path: Path) -> int:
    """The address-space cap for loading `model_path`: the base plus three times the file (fastText copies it)."""
    return BASE_MEMORY + 3 * model_path.stat().st_size


def trial_load(model_path: str | Path, memory_bytes: int | None = None, timeout_s: float = TIMEOUT_S) -> None:
    """Load the model with fastText in a child process capped at `memory_bytes` and `timeout_s`.

    Args:
        model_path: the fastText `.bin` file (its structure already checked).
        memory_bytes: the child's address-space cap; by default `memory_bound(model_path)`.
        timeout_s: how long the load may take.

    Raises:
        TrialLoadError: the child ran out of memory, crashed, failed or did not finish in time.
    """
    path = Path(model_path)
    limit = memory_bound(path) if memory_bytes is None else memory_bytes
    command = [sys.executable, "-m", "pipelines.quality.trial_load", str(path), str(limit)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        "OPENBLAS_NUM_THREADS": "1",  # OpenBLAS reserves address space per thread; one is enough to load
    }
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise TrialLoadError(f"{path}: fastText did not finish loading it within {timeout_s:g} s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        if done.returncode < 0:
            why = f"killed by signal {-done.returncode}"
        raise TrialLoadError(f"{path}: fastText failed to load it in a process capped at {limit >> 20} MB ({why})")


def _main(path: str, limit: str) -> None:
    """The child: cap the address space, then load the model with the training-capable fastText module."""
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    from pipelines.quality.backend import training_fasttext

    training_fasttext().load_model(path)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
