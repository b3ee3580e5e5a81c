"""A Ray head of our own on 127.0.0.1, for tests and benchmarks that need "an existing Ray cluster".

`ray stop` ends every Ray process on the machine, other people's included, so this head gets its own temp dir,
its own ports and its own auth token, runs `ray start --head --block` in a new session, and is stopped by
signalling that session's process group only (SIGTERM, then SIGKILL after a grace period: Ray's services do
not all exit on SIGTERM). Ray 2.60 turns token authentication on for `ray start --head`; drivers connect with
the `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` of `RayHead.env`.
"""

from __future__ import annotations

import contextlib
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

READY_LINE = "Ray runtime started"


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
def local_ray_head(cpus: int = 2, timeout: float = 180.0) -> Iterator[RayHead]:
    """Start a Ray head with `cpus` CPUs on 127.0.0.1; yield it; stop everything it started.

    Args:
        cpus: CPUs the head offers to tasks.
        timeout: seconds to wait for it to come up.

    Yields:
        The head.
    """
    temp = Path(tempfile.mkdtemp(prefix="ffray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = free_port()
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", str(cpus), "--temp-dir", str(temp), "--include-dashboard", "false",
           "--dashboard-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
           "--ray-client-server-port", str(free_port()), "--disable-usage-stats"]  # fmt: skip
    log_path = temp / "head.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while READY_LINE not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        auth = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        yield RayHead(f"127.0.0.1:{port}", auth, temp, proc.pid)
    finally:
        stop_group(proc.pid, grace=15.0, proc=proc)
        shutil.rmtree(temp, ignore_errors=True)
