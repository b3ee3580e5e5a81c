"""Process plumbing for the Prefect layer: the local server, folder defaults and the trainer subprocess.

flows.py and cli.py stay thin by delegating here; nothing in this module imports Prefect, so it is tested
directly with plain processes.

Server: `prefect server start` bound to 127.0.0.1 with its SQLite database under `FINEFORGE_HOME/prefect`.
The port goes through `PREFECT_SERVER_API_PORT` as well as the flag, because the bundled UI reads the API
address from the settings, not from `--port` (seen with Prefect 3.9.1: `--port` alone leaves the UI calling
port 4200). Analytics and promotional content are switched off (telemetry otherwise logs errors and a
"database is locked" traceback here). The server starts in 3-9 s and holds about 290 MB.

Trainer: started in its own session (`start_new_session=True`), so that one `killpg` reaches the trainer and,
under torchrun, every worker. A flow process started by `prefect.serve` is a plain spawn child of the
runner: on cancel the runner sends SIGTERM to that one process and SIGKILLs it 30 s later, so the flow itself
forwards SIGTERM to the trainer group and waits for the checkpoint (`TrainerProcess.stop`). The process group
id is also written to `RUN_DIR/trainer.pgid`, so that a cancellation hook running in another process can
finish the job if the flow process died first (`stop_recorded_trainer`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipelines.shards import file_sha256

DEFAULT_PORT = 4200
PGID_FILE = "trainer.pgid"
# The trainer saves a checkpoint on SIGTERM; Prefect's runner SIGKILLs a cancelled flow process after 30 s,
# so the trainer gets 25 s of that window before we escalate ourselves.
STOP_GRACE_S = 25.0


def fineforge_home() -> Path:
    """Return the FineForge home folder (`FINEFORGE_HOME`, default `./.fineforge`), absolute.

    Returns:
        The folder path; it is not created here.
    """
    return Path(os.environ.get("FINEFORGE_HOME", ".fineforge")).expanduser().resolve()


def default_api_url(port: int = DEFAULT_PORT) -> str:
    """Return the API address of a `fineforge server` on this machine.

    Args:
        port: the server's port.

    Returns:
        A URL such as `http://127.0.0.1:4200/api`.
    """
    return f"http://127.0.0.1:{port}/api"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (for tests and parallel servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(port: int, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Build the environment of a local Prefect server process.

    Args:
        port: the port for the API and the UI.
        home: the FineForge home; the server's PREFECT_HOME (and SQLite database) is `home/prefect`.
        base: environment to start from (default: this process's).

    Returns:
        The environment dict.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)  # a server must not think it is a client of another server
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_API_URL=default_api_url(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        DO_NOT_TRACK="1",
    )
    return env


def start_server(port: int, home: Path, log_path: Path | None = None) -> subprocess.Popen:
    """Start `prefect server start` on 127.0.0.1:port in its own session.

    Args:
        port: the port for the API and the UI.
        home: the FineForge home (database under `home/prefect`).
        log_path: file for the server's output (default: inherit this process's stdout/stderr).

    Returns:
        The server process; pair with `wait_healthy` and `stop_process`.
    """
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            cmd,
            env=server_env(port, home),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()


def wait_healthy(api_url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Block until `api_url/health` answers, the process dies, or the timeout passes.

    Args:
        api_url: the API address (ending in /api).
        timeout: seconds to wait.
        proc: the server process, to fail fast when it exits.

    Raises:
        RuntimeError: when the server exited or did not answer in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {proc.returncode} before {api_url} answered")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"the Prefect server at {api_url} did not answer /health within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, grace: float = 15.0, sig: int = signal.SIGTERM) -> int:
    """Signal a process's whole group, wait, then SIGKILL the group if it is still there.

    Args:
        proc: a process started with `start_new_session=True` (its pid is its group id).
        grace: seconds to wait after the first signal.
        sig: the first signal.

    Returns:
        The exit code.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _reap_group(proc.pid, 2.0)
    return proc.returncode


def group_alive(pgid: int) -> bool:
    """Return True while any process of the group `pgid` exists (zombies aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_group(pgid: int, grace: float) -> bool:
    """Wait up to `grace` s for the group to vanish, then SIGKILL what is left; True when it vanished alone."""
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    else:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return False


def trainer_command(data: str, run_dir: Path, args: list[str], nproc: int = 1) -> list[str]:
    """Build the trainer command line, `python -m trainer` (which runs torchrun itself when nproc > 1).

    Args:
        data: manifest.json (or its folder).
        run_dir: the run directory.
        args: further `fineforge train` flags.
        nproc: training processes on this machine.

    Returns:
        The argv list.
    """
    nproc_flag = ["--nproc", str(nproc)] if nproc > 1 else []
    return [sys.executable, "-m", "trainer", "--data", str(data), "--out", str(run_dir), *args, *nproc_flag]


class TrainerProcess:
    """The trainer as a child process group whose output lines can be consumed one by one."""

    def __init__(self, cmd: list[str], run_dir: Path, env: dict[str, str] | None = None):
        """Start the command in a new session and record its group id in `run_dir/trainer.pgid`.

        Args:
            cmd: the argv (see `trainer_command`).
            run_dir: the run directory (created if missing).
            env: the environment (default: this process's, unbuffered).
        """
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if env is None else env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
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


def stop_group(pgid: int, grace: float = STOP_GRACE_S, proc: subprocess.Popen | None = None) -> bool:
    """SIGTERM a process group, wait up to `grace` s, then SIGKILL what is left.

    Args:
        pgid: the process group id.
        grace: seconds to wait.
        proc: the group leader when it is our child (reaped while waiting).

    Returns:
        True when the group exited within the grace period.
    """
    deadline = time.monotonic() + grace
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    return _reap_group(pgid, max(0.0, deadline - time.monotonic()))


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


def dataset_dir(dataset: str) -> Path:
    """Return `FINEFORGE_HOME/datasets/<dataset>`, where a dataset's curated folder and shards live by default."""
    return fineforge_home() / "datasets" / dataset


def dataset_name(folder: Path, layout_name: str) -> str:
    """The dataset a stage folder belongs to: its parent's name in the default layout
    `datasets/<dataset>/<layout_name>`, else the folder's own name."""
    return folder.parent.name if folder.name == layout_name else folder.name


def train_run_dir(manifest: str, run_dir: str | None = None) -> Path:
    """Return the run directory of a training run: `run_dir`, else `FINEFORGE_HOME/runs/<dataset>`.

    Args:
        manifest: manifest.json or its folder; the dataset is the shard folder's name, or its parent's when
            the folder is called `shards` (the default layout `datasets/<dataset>/shards`).
        run_dir: an explicit run directory.

    Returns:
        The absolute run directory.
    """
    if run_dir:
        return Path(run_dir).expanduser().resolve()
    shards = Path(manifest).expanduser().resolve()
    if shards.suffix == ".json":
        shards = shards.parent
    name = dataset_name(shards, "shards")
    return fineforge_home() / "runs" / (name or "default")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def finished_curate(output_dir: Path, run_id: str) -> dict | None:
    """Return the summary of a finished curate run with this run id in `output_dir`, else None.

    Args:
        output_dir: the curate output folder.
        run_id: the run id the current inputs and config give (a different one means: run again).

    Returns:
        summary.json contents, or None.
    """
    summary = _read_json(output_dir / "summary.json")
    return summary if summary is not None and summary.get("run_id") == run_id else None


def finished_tokenize(output_dir: Path, inputs: list[str], config_hash: str) -> dict | None:
    """Return the manifest of shards in `output_dir` made from these inputs with these settings, else None.

    A curated-folder input must match the manifest's source run id (a recurated folder gets a new one);
    other inputs must match the manifest's source path.

    Args:
        output_dir: the shard folder.
        inputs: the tokenize inputs.
        config_hash: `TokenizeSettings.config_hash()` of the settings wanted now.

    Returns:
        manifest.json contents, or None.
    """
    manifest = _read_json(output_dir / "manifest.json")
    if manifest is None or manifest.get("config_hash") != config_hash:
        return None
    source = manifest.get("source") or {}
    if len(inputs) == 1:
        summary = _read_json(Path(inputs[0]) / "summary.json")
        if summary is not None:
            return manifest if source.get("run_id") == summary.get("run_id") else None
    resolved = [spec if "://" in spec else str(Path(spec).resolve()) for spec in inputs]
    return manifest if source.get("path") == (resolved[0] if len(resolved) == 1 else resolved) else None


def finished_train(run_dir: Path, manifest: str) -> dict | None:
    """Return run.json when the run in `run_dir` completed on these shards (same manifest bytes), else None."""
    run = _read_json(run_dir / "run.json")
    if run is None or run.get("status") != "completed":
        return None
    path = Path(manifest)
    path = path / "manifest.json" if path.is_dir() else path
    try:
        digest = file_sha256(path)
    except OSError:
        return None
    return run if (run.get("manifest") or {}).get("sha256") == digest else None


def planned_steps(model: str, steps: int | None, config: str | None = None) -> int:
    """Return the step budget a trainer run will use (for the progress bar): flag, else YAML, else preset.

    Args:
        model: the model preset.
        steps: an explicit step count.
        config: a train config YAML.

    Returns:
        The number of optimizer steps.
    """
    from trainer.config import build_config

    return build_config({"data": "-", "out": "-", "model": model, "steps": steps}, config).steps


def use_api(port: int = DEFAULT_PORT) -> str:
    """Point Prefect clients of this process at `PREFECT_API_URL`, else at a `fineforge server` on `port`.

    Call it before Prefect is imported, so that every setting Prefect derives from the environment agrees.

    Returns:
        The API address in use.
    """
    os.environ.setdefault("PREFECT_API_URL", default_api_url(port))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return os.environ["PREFECT_API_URL"]
