"""A Ray head of our own on 127.0.0.1, for tests and benchmarks that need "an existing Ray cluster".

`ray stop` ends every Ray process on the machine, other people's included, so this head gets its own temp dir,
its own ports and its own auth token, runs `ray start --head --block` in a new session, and is stopped by
signalling that session's process group only (SIGTERM, then SIGKILL after a grace period: Ray's services do
not all exit on SIGTERM). Ray 2.60 turns token authentication on for `ray start --head`; drivers connect with
the `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` of `RayHead.env`.

On a busy 2-core machine (load 5-13) the head once failed with "The current node timed out during startup":
Ray 2.60 waits a fixed 30 s for its raylet to register with the GCS (`raylet_start_wait_time_s = 30` in
`ray/_private/node.py`, a constant no setting reaches). So a head that fails that way is started again, fresh,
until the overall bound (default 600 s) passes; the raylet's own bound on a worker process registering
(`RAY_worker_register_timeout_seconds`, 60 s by default) is raised to the same bound for the tasks' workers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestration.server import free_port
from pipelines.common.processes import stop_group
from tests.conftest import STARTUP_S

READY_LINE = "Ray runtime started"
NODE_TIMED_OUT = "timed out during startup"  # Ray's fixed 30 s wait for the raylet; worth another try


@dataclass(frozen=True)
class RayHead:
    """A running head: its address (`127.0.0.1:PORT`), the environment drivers need, its temp dir and the id of
    the process group of all its processes."""

    address: str
    env: dict[str, str]
    temp_dir: Path
    pgid: int

    def worker_logs(self) -> list[Path]:
        """Log files of the Python workers the head's raylet started (one per worker process)."""
        return sorted(self.temp_dir.glob("session_*/logs/worker-*.out"))


@contextlib.contextmanager
def local_ray_head(cpus: int = 2, timeout: float = STARTUP_S) -> Iterator[RayHead]:
    """Start a Ray head with `cpus` CPUs on 127.0.0.1; yield it; stop everything it started.

    Args:
        cpus: CPUs the head offers to tasks.
        timeout: seconds to wait for it to come up, over every try (it is yielded as soon as it is up).

    Yields:
        The head.

    Raises:
        RuntimeError: when no head came up within `timeout`, with the last try's log.
    """
    deadline = time.monotonic() + timeout
    for attempt in itertools.count(1):
        temp = Path(tempfile.mkdtemp(prefix="ffray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
               "RAY_worker_register_timeout_seconds": str(int(timeout))}  # fmt: skip
        port = free_port()
        proc, log_path = _start_head(cpus, port, temp, env)
        try:
            if _wait_ready(proc, log_path, deadline):
                auth = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
                yield RayHead(f"127.0.0.1:{port}", auth, temp, proc.pid)
                return
            exited, log = proc.poll(), log_path.read_text(errors="replace")
        finally:
            stop_group(proc.pid, grace=15.0, proc=proc)
            shutil.rmtree(temp, ignore_errors=True)
        if NODE_TIMED_OUT not in log or time.monotonic() >= deadline:
            what = f"exited with code {exited}" if exited is not None else f"did not print {READY_LINE!r} in time"
            raise RuntimeError(f"the Ray head ({cpus} CPUs) {what}, try {attempt} within a bound of {timeout:g} s; "
                               f"its log:\n{log[-3000:]}")  # fmt: skip


def _start_head(cpus: int, port: int, temp: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """Run `ray start --head --block` in a session of its own, logging to `temp/head.log`."""
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", str(cpus), "--temp-dir", str(temp), "--include-dashboard", "false",
           "--dashboard-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
           "--ray-client-server-port", str(free_port()), "--disable-usage-stats"]  # fmt: skip
    log_path = temp / "head.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def _wait_ready(proc: subprocess.Popen, log_path: Path, deadline: float) -> bool:
    """Whether the head says it started before it exits or `deadline` (a `time.monotonic()` value) passes."""
    while READY_LINE not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
