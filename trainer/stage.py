"""Training as a stage (`pipelines.common.stage`): what `fineforge train`, `fineforge demo` and the flows run.

- plan: resolve the given `TrainConfig` (built once by the caller: `trainer.config.build_config`) to absolute
  paths and read the manifest's sha256;
- is-complete: `RUN_DIR/run.json` says "completed", at the planned number of steps, on these exact shards
  (same manifest bytes); a larger `--steps` is not complete and continues the run;
- claim: create the run directory, refuse one trained on other shards or whose recorded trainer is still
  running (a supervisor killed with SIGKILL leaves its trainer to die of a broken pipe at its next log line),
  write the effective `config.yaml`;
- the one step, `train`: `python -m trainer.child RUN_DIR/config.yaml` as a supervised child process group
  (`trainer.process`), which takes every setting from that file and no flag; every output line goes to
  `RUN_DIR/train.log` and to `on_output` (None once a second of silence, for progress refreshes). Any exception
  in the supervisor, a Prefect cancellation or Ctrl-C included, stops the trainer with SIGTERM first: it
  finishes its step and checkpoints, and a rerun resumes.
  With each line (and each second of silence) `on_progress` gets a `pipelines.common.progress.Progress` built
  from the records appended to `metrics.jsonl`: steps done of the planned steps, steps/s, ETA, the latest loss.
  While it runs, the supervisor holds an exclusive lock on `RUN_DIR/train.lock` (naming its host and pid), so
  a second `fineforge train` or flow into the same run directory is refused at once instead of writing beside
  it (the Prefect flows also hold a concurrency slot per run directory, `orchestration.run_lock`, which covers
  several machines).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipelines.common.files import atomic_write, make_output_dir
from pipelines.common.hashing import file_sha256
from pipelines.common.locks import folder_lock
from pipelines.common.metrics import METRICS_FILE, MetricsError, MetricsFollower
from pipelines.common.processes import StopRequested, group_alive, signals_raise
from pipelines.common.progress import Progress, ProgressCallback, StepClock, ignore_progress
from pipelines.common.run_record import recorded_run
from pipelines.common.stage import Stage, Step
from pipelines.shards import manifest_path
from trainer.config import TrainConfig, build_config
from trainer.data import DataError
from trainer.lineage import check_same_data
from trainer.process import PGID_FILE, TrainerProcess, trainer_command

LOG_FILE = "train.log"
LOCK_FILE = "train.lock"
OutputHandler = Callable[[str | None], None]


class TrainerExit(RuntimeError):
    """The trainer process ended with a non-zero exit code (its output is in RUN_DIR/train.log)."""

    def __init__(self, code: int, run_dir: Path):
        self.code = code
        self.log = run_dir / LOG_FILE
        super().__init__(f"trainer exited with code {code}; its output is in {self.log}")


class TrainerBusy(ValueError):
    """A trainer process recorded in the run directory is still running."""


class RunDirInUse(ValueError):
    """Another process is training into the same run directory."""


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir/train.lock` for the block (`folder_lock`), naming this host and pid.

    Raises:
        RunDirInUse: another process holds it (the message names the holder).
    """

    def busy(holder: str) -> RunDirInUse:
        return RunDirInUse(
            f"{run_dir} is being trained by {holder}; wait for that run to finish or train into another --out"
        )

    with folder_lock(run_dir, busy, LOCK_FILE):
        yield


def _print_line(line: str | None) -> None:
    if line is not None:
        print(line, flush=True)


class TrainProgress:
    """Progress snapshots of a training run, from the records appended to its metrics.jsonl.

    Args:
        run_dir: the run directory.
        steps: the planned number of steps.
    """

    def __init__(self, run_dir: Path, steps: int):
        self.steps = steps
        self.follower = MetricsFollower(run_dir / METRICS_FILE)
        self.latest: dict[str, Any] = {"step": 0, "loss": None, "val_loss": None, "tok_per_s": None}
        self._update()
        self.baseline = self.latest["step"]  # steps of an earlier run that this one resumes
        self._clock = StepClock()

    def _update(self) -> None:
        try:
            records = self.follower.new_records()
        except MetricsError:  # progress never stops training; the report names a damaged file
            return
        for record in records:
            if record.get("type") == "step":
                self.latest.update(step=record["step"], loss=record["loss"], tok_per_s=record.get("tok_per_s"))
            elif record.get("type") == "eval":
                self.latest["val_loss"] = record["val_loss"]

    def snapshot(self) -> Progress:
        """The progress now: steps done, the latest losses and throughput as the one row of counts."""
        self._update()
        step, loss = self.latest["step"], self.latest["loss"]
        row = {key: round(v, 4) if isinstance(v, float) else v for key, v in self.latest.items()}
        return Progress(
            stage="train",
            step="train",
            done=step,
            total=self.steps,
            unit="steps",
            elapsed_s=self._clock.elapsed("train"),
            overall=min(1.0, step / max(self.steps, 1)),
            detail=f"loss {loss:.4f}" if loss is not None else "waiting for the first step",
            rows=[row],
            baseline=self.baseline,
        )


class TrainStage(Stage):
    """One training run of a `TrainConfig` (see `trainer.config.build_config`).

    Args:
        config: the effective settings, `data` and `out` included.
        nproc: training processes on this machine (torchrun when > 1).
        on_output: called with each trainer output line, and with None after each second of silence.
        env: environment of the trainer process (default: this process's).
        on_progress: called with a progress snapshot with each output line and each second of silence.
    """

    name = "train"

    def __init__(
        self,
        config: TrainConfig,
        nproc: int = 1,
        on_output: OutputHandler = _print_line,
        env: dict[str, str] | None = None,
        on_progress: ProgressCallback = ignore_progress,
    ):
        self.settings = config
        self.nproc = nproc
        self.on_output = on_output
        self.env = env
        self.on_progress = on_progress

    def plan(self) -> None:
        """Resolve the config's `data` and `out` to absolute paths and fingerprint the shards' manifest.

        Raises:
            DataError: no manifest where `data` points.
        """
        self.run_dir = Path(self.settings.out).expanduser().resolve()
        self.manifest_path = manifest_path(self.settings.data).expanduser().resolve()
        if not self.manifest_path.is_file():
            raise DataError(f"{self.manifest_path}: no manifest; the shard set is missing or incomplete")
        self.manifest_sha256 = file_sha256(str(self.manifest_path))
        self.config = self.settings.model_copy(update={"data": str(self.manifest_path), "out": str(self.run_dir)})

    def is_complete(self) -> bool:
        """True when run.json records a completed run of the planned steps on these exact shards."""
        run = recorded_run(self.run_dir) or {}
        return (
            run.get("status") == "completed"
            and run.get("step") == self.config.steps
            and (run.get("manifest") or {}).get("sha256") == self.manifest_sha256
        )

    def result(self) -> dict[str, Any]:
        """The run's run.json."""
        return recorded_run(self.run_dir) or {}

    def claim(self) -> None:
        """Create the run directory, refuse one trained on other shards or still being trained, and write the
        effective config.yaml.

        Raises:
            LineageError: the run directory was trained on other shards.
            TrainerBusy: the trainer recorded in `trainer.pgid` is still running.
        """
        make_output_dir(self.run_dir)
        check_same_data(self.run_dir, self.manifest_path, self.manifest_sha256)
        self._check_not_running()
        with atomic_write(self.config_path, "w") as f:
            f.write(self.config.to_yaml())

    def _check_not_running(self) -> None:
        try:
            pgid = int((self.run_dir / PGID_FILE).read_text().strip())
        except (OSError, ValueError):
            return
        if group_alive(pgid):
            raise TrainerBusy(
                f"{self.run_dir}: a trainer (process group {pgid}) is still running in it; wait until it has "
                f"stopped, or stop it with `kill -TERM -{pgid}` (it checkpoints first), then rerun"
            )

    @property
    def config_path(self) -> Path:
        """The effective config, the trainer process's only source of settings (it writes it back unchanged)."""
        return self.run_dir / "config.yaml"

    def steps(self) -> list[Step]:
        """The one step: run the trainer process to the end."""
        return [("train", self.train)]

    def train(self) -> None:
        """Run `python -m trainer.child` on the effective config, supervised; stop it with a checkpoint on any exit.

        Raises:
            TrainerExit: the trainer failed or was stopped (its exit code says which).
            StopRequested: SIGTERM reached this process (the trainer was stopped first).
            RunDirInUse: another process is training into the run directory.
        """
        with run_dir_lock(self.run_dir):
            self._supervise()

    def _supervise(self) -> None:
        progress = TrainProgress(self.run_dir, self.config.steps)
        proc = TrainerProcess(trainer_command(self.config_path, self.nproc), self.run_dir, self.env)
        with open(self.run_dir / LOG_FILE, "a", encoding="utf-8") as log, signals_raise((signal.SIGTERM,)):
            try:
                for line in proc.lines():
                    if line is not None:
                        log.write(line + "\n")
                        log.flush()
                    self.on_output(line)
                    self.on_progress(progress.snapshot())
            except BaseException:
                proc.stop()
                raise
            finally:
                if proc.proc.poll() is not None:
                    proc.finish()
        if proc.proc.returncode != 0:
            raise TrainerExit(proc.proc.returncode, self.run_dir)

    def finish(self) -> dict[str, Any]:
        """The run.json the trainer wrote last."""
        return self.result()


def run_train_command(
    flags: dict[str, Any], config: Path | None, nproc: int | None, on_progress: ProgressCallback = ignore_progress
) -> int:
    """`fineforge train`: build the config once and run it as a TrainStage, printing the trainer's lines.

    A completed run on the same shards is reported, not redone; Ctrl-C or SIGTERM stop the trainer with a
    checkpoint first. Exit codes as `python -m trainer`: 0, 2 for bad settings or data, 128 + signal.

    Args:
        flags: the train flags by field name.
        config: a YAML config file.
        nproc: training processes on this machine.
        on_progress: called with progress snapshots while the trainer runs.

    Returns:
        The exit code.
    """
    from pipelines.common.stage import run_stage

    try:
        outcome = run_stage(TrainStage(build_config(flags, config), nproc or 1, on_progress=on_progress))
    except TrainerExit as e:
        return e.code
    except StopRequested as e:
        return 128 + e.signum
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if outcome.reused:
        run = outcome.result
        print(f"run {run.get('run_dir')} already completed ({run.get('step')} steps, val loss {run.get('val_loss')})")
    return 0
