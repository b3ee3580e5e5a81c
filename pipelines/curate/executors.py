"""Executors for curate stages: local processes, a Ray cluster or Slurm, all through datatrove's own executors.

Every stage gets a fixed logging folder (`<logs_root>/<stage name>`), because datatrove resumes by completion
markers in `<logging_dir>/completions/`: a rerun skips finished tasks only if it looks in the same folder.

- `local`: `LocalPipelineExecutor`. With one worker the tasks run in this process (no process pool, no
  forkserver start-up, about 1 s saved per stage); with more, datatrove starts a `forkserver` pool, which
  needs the calling script to have an `if __name__ == "__main__":` guard. The processes datatrove forks for a
  stage (its `multiprocess` Manager, the extraction sandbox of each task) die with the process that forked them
  (`pipelines.common.processes.forked_children_die_with_parent`), so a `kill -9` of curate leaves none behind.
- `ray`: `RayPipelineExecutor` on an existing cluster (`--ray-address`, the config's `run.ray.address`, or
  `RAY_ADDRESS`, in that order); without one, a local Ray instance with `workers` CPUs and no dashboard is
  started. Every node of a cluster needs FineForge installed (tasks import `pipelines.curate`) and must see the
  output folder at the same path (completion markers and stats are files there). Ray 2.60's `ray start --head`
  turns on token authentication: drivers then need `RAY_AUTH_MODE=token` and the cluster's token
  (`RAY_AUTH_TOKEN` or `~/.ray/auth_token`), else the connection fails after about 20 s of retries.
- `slurm`: `SlurmPipelineExecutor` submits a job array and returns at once; curate stages depend on each
  other, so `run()` here waits until every task has a completion marker (or the job has left the queue with
  tasks unfinished, which is an error naming the stage).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.base import PipelineExecutor
from datatrove.executor.slurm import SlurmPipelineExecutor
from datatrove.utils.stats import PipelineStats
from pydantic import BaseModel, ConfigDict, Field

from pipelines.common.processes import ends_with, forked_children_die_with_parent

ExecutorKind = Literal["local", "ray", "slurm"]


class SlurmSettings(BaseModel):
    """Slurm job settings (used only with `--executor slurm`)."""

    model_config = ConfigDict(extra="forbid")

    partition: str = "cpu"
    time: str = "04:00:00"  # per task, sbatch --time format
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: int = Field(2, ge=1)
    qos: str = "normal"
    sbatch_args: dict[str, str] = {}
    poll_s: float = Field(30.0, gt=0)  # how often to look for completion markers while waiting


class RaySettings(BaseModel):
    """Ray settings (used only with `--executor ray`)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = None  # None: RAY_ADDRESS if set, else start a local instance
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2.0, gt=0)


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's `LocalPipelineExecutor` whose forked helpers die with their parent, even on SIGKILL.

    `run` forks the Manager (and, with one worker, each task's extraction sandbox); with several workers,
    `_launch_run_for_rank` runs in a forkserver pool's worker, which forks that task's sandbox and ends with the
    process whose pool it is (the forkserver itself exits once its children are gone).
    """

    def run(self) -> PipelineStats | None:
        """Run every incomplete task (datatrove's `run`), its forked children bound to this process."""
        with forked_children_die_with_parent():
            return super().run()

    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None) -> PipelineStats:
        pool_owner = multiprocess.parent_process()  # None when the task runs in `run`'s own process
        with ends_with(pool_owner.pid if pool_owner else None), forked_children_die_with_parent():
            return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)


def make_executor(
    pipeline: list,
    name: str,
    tasks: int,
    *,
    kind: ExecutorKind,
    workers: int,
    logs_root: Path,
    slurm: SlurmSettings | None = None,
    ray: RaySettings | None = None,
) -> PipelineExecutor:
    """Build the executor for one stage.

    Args:
        pipeline: datatrove steps of the stage.
        name: stage name; its logging folder is `logs_root / name`.
        tasks: number of tasks (datatrove's `world_size`).
        kind: `local`, `ray` or `slurm`.
        workers: tasks run at the same time.
        logs_root: parent of the per-stage logging folders.
        slurm: Slurm settings (kind `slurm`).
        ray: Ray settings (kind `ray`).

    Returns:
        A datatrove executor whose `run()` returns when every task is done.
    """
    logging_dir = str(Path(logs_root) / name)
    workers = max(1, min(workers, tasks))
    if kind == "local":
        return LocalExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir)
    if kind == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        settings = ray or RaySettings()
        _ensure_ray(settings.address, workers)
        return RayPipelineExecutor(
            pipeline,
            tasks=tasks,
            workers=workers,
            logging_dir=logging_dir,
            cpus_per_task=settings.cpus_per_task,
            mem_per_cpu_gb=settings.mem_per_cpu_gb,
        )
    if kind == "slurm":
        return _slurm_executor(pipeline, name, tasks, workers, logging_dir, slurm or SlurmSettings())
    raise ValueError(f"unknown executor {kind!r}: expected local, ray or slurm")


def executor_factory(**kwargs) -> Callable[[list, str, int], PipelineExecutor]:
    """Bind everything but `(pipeline, name, tasks)`: the `make_executor` callable that dedup expects.

    Args:
        **kwargs: keyword arguments of make_executor (kind, workers, logs_root, slurm, ray).

    Returns:
        `(pipeline, name, tasks) -> executor`.
    """

    def factory(pipeline: list, name: str, tasks: int) -> PipelineExecutor:
        return make_executor(pipeline, name, tasks, **kwargs)

    return factory


class RayConnectionError(ValueError):
    """The Ray cluster at the given address cannot be reached or refuses this driver."""


def _ensure_ray(address: str | None, workers: int) -> None:
    """Connect this process to the Ray cluster at `address` (or RAY_ADDRESS), or start a local instance.

    Raises:
        RayConnectionError: naming the address and what to check, when the cluster does not answer.
    """
    import os

    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        ray.init(num_cpus=workers, include_dashboard=False)
        return
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError) as err:
        hint = (
            "set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            if "auth" in f"{err} {err.__cause__}".lower()
            else "check that `ray start --head` runs there and the port is reachable"
        )
        raise RayConnectionError(f"cannot connect to the Ray cluster at {address}: {hint} ({err})") from None


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast when nothing listens at a `HOST:PORT` (or `ray://HOST:PORT`) address: `ray.init` would retry
    for many minutes (seen with Ray 2.60: over 5 minutes for a closed port).

    Raises:
        RayConnectionError: naming the address.
    """
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        if address == "auto":
            return  # Ray looks up the address of a cluster started on this machine
        raise RayConnectionError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise RayConnectionError(
            f"cannot connect to the Ray cluster at {address}: nothing answers on {hostport} ({err}); "
            "check that `ray start --head` runs there and the port is reachable"
        ) from None


class WaitingSlurmExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor that, after submitting the job array, waits for every completion marker.

    Args:
        poll_s: seconds between looks at the completion markers.
        **kwargs: SlurmPipelineExecutor's arguments.
    """

    def __init__(self, *args, poll_s: float = 30.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.poll_s = poll_s

    def run(self) -> None:
        """Submit (unfinished tasks only), then block until all tasks are done."""
        super().run()
        while incomplete := self.get_incomplete_ranks():
            if self.job_id not in (None, -1) and not _slurm_job_queued(self.job_id):
                raise RuntimeError(
                    f"curate stage {self.job_name!r}: Slurm job {self.job_id} ended with tasks {incomplete[:10]} "
                    f"unfinished; see {self.logging_dir.path}/slurm_logs, then rerun the same command to resume"
                )
            time.sleep(self.poll_s)


def _slurm_executor(
    pipeline: list, name: str, tasks: int, workers: int, logging_dir: str, settings: SlurmSettings
) -> PipelineExecutor:
    return WaitingSlurmExecutor(
        pipeline,
        tasks=tasks,
        time=settings.time,
        partition=settings.partition,
        cpus_per_task=settings.cpus_per_task,
        mem_per_cpu_gb=settings.mem_per_cpu_gb,
        workers=workers,
        job_name=f"fineforge-{name}",
        qos=settings.qos,
        sbatch_args=dict(settings.sbatch_args) or None,
        logging_dir=logging_dir,
        poll_s=settings.poll_s,
    )


def _slurm_job_queued(job_id: str) -> bool:
    result = subprocess.run(["squeue", "-h", "-j", str(job_id)], capture_output=True, text=True, check=False)
    return bool(result.stdout.strip())
