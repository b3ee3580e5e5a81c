"""The trainer as a supervised child process group: started, streamed line by line, stopped with a checkpoint.

`TrainStage` runs training this way for the CLI, the demo and the Prefect flows, so torch, its threads and its
signal handlers stay out of the supervising process. The child runs in its own session (`start_new_session`), so
one `killpg` reaches the trainer and, under torchrun, every rank; on SIGTERM each rank finishes its step, writes
a checkpoint and exits (`trainer.train`). The group id is also written to `RUN_DIR/trainer.pgid`, so that a
Prefect cancellation hook in another process can stop a trainer whose supervisor died first.

The child starts with glibc's `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` at 1 GiB unless the caller's
environment sets them (`trainer_env`): with glibc's defaults each large tensor buffer of a CPU step is mmap'd and
unmapped again, so every step faults its pages in anew. glibc reads these variables only at process start, hence
here and not in the trainer; torchrun's ranks inherit them. Measured in the README ("CPU training and malloc").
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipelines.common.processes import group_alive, stop_group

PGID_FILE = "trainer.pgid"
# 1 GiB: large buffers stay in the heap and freed memory is kept for the next step (benchmarks.train, d6 at 512
# tokens/step: 3.3M -> 0.45M minor page faults, 6 -> 1.6 s of system time; peak RSS 1.2 -> 1.9 GB; README).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
# The trainer saves a checkpoint on SIGTERM; Prefect's runner SIGKILLs a cancelled flow process after 30 s,
# so the trainer gets 25 s of that window before we escalate ourselves.
STOP_GRACE_S = 25.0


def trainer_command(config_file: Path, nproc: int = 1) -> list[str]:
    """Build the trainer command line, `python -m trainer.child CONFIG_FILE` (torchrun itself when nproc > 1).

    Args:
        config_file: the effective config, the child's only source of settings (`trainer.child`).
        nproc: training processes on this machine.

    Returns:
        The argv list.
    """
    nproc_flag = ["--nproc", str(nproc)] if nproc > 1 else []
    return [sys.executable, "-m", "trainer.child", str(config_file), *nproc_flag]


def trainer_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trainer process's environment: `base` (default: this process's) plus unbuffered output and `MALLOC_ENV`.

    Args:
        base: the caller's environment; a variable it sets already is kept as it is.

    Returns:
        A new environment mapping.
    """
    env = dict(os.environ if base is None else base)
    for key, value in {"PYTHONUNBUFFERED": "1", **MALLOC_ENV}.items():
        env.setdefault(key, value)
    return env


class TrainerProcess:
    """The trainer as a child process group whose output lines can be consumed one by one."""

    def __init__(self, cmd: list[str], run_dir: Path, env: dict[str, str] | None = None):
        """Start the command in a new session and record its group id in `run_dir/trainer.pgid`.

        Args:
            cmd: the argv (see `trainer_command`).
            run_dir: the run directory (created if missing).
            env: the environment (default: this process's), completed by `trainer_env`.
        """
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=trainer_env(env),
            text=True,
            bufsize=1,
            errors="replace",
            start_new_session=True,
        )
        (run_dir / PGID_FILE).write_text(str(self.proc.pid))
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def lines(self, tick: float = 1.0) -> Iterator[str | None]:
        """Yield output lines as they come, and None every `tick` s of silence, until the process ends.

        The None ticks let the caller refresh progress; blocking only `tick` s at a time keeps signals
        (Prefect's SIGTERM on cancel) deliverable to the caller's thread.
        """
        while True:
            try:
                line = self._lines.get(timeout=tick)
            except queue.Empty:
                yield None
                continue
            if line is None:
                self.proc.wait()
                return
            yield line

    def stop(self, grace: float = STOP_GRACE_S) -> bool:
        """SIGTERM the trainer group (it checkpoints and exits), SIGKILL it after `grace` s.

        Returns:
            True when the group exited within the grace period.
        """
        return stop_group(self.proc.pid, grace, self.proc)

    def finish(self) -> None:
        """Forget the recorded group id once the trainer is gone."""
        (self.run_dir / PGID_FILE).unlink(missing_ok=True)


def stop_recorded_trainer(run_dir: Path, grace: float = STOP_GRACE_S) -> bool | None:
    """Stop a trainer group recorded in `run_dir/trainer.pgid` (the cancellation hook's backstop).

    Args:
        run_dir: the run directory.
        grace: seconds to wait after SIGTERM.

    Returns:
        None when no trainer was recorded or it was gone already, else what `stop_group` returned.
    """
    path = run_dir / PGID_FILE
    try:
        pgid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not group_alive(pgid):
        path.unlink(missing_ok=True)
        return None
    stopped = stop_group(pgid, grace)
    path.unlink(missing_ok=True)
    return stopped
