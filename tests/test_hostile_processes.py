"""Any way `fineforge server` or `fineforge up` ends, it ends the Prefect server it started (issue 11, case 11).

A real `fineforge server` runs as a subprocess; the signal goes to its own pid only (as a service manager or
`kill PID` sends it), not to its process group. Afterwards every process it had started must be gone and its port
must answer no more.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from orchestration import server
from pipelines.common.processes import stop_process

pytestmark = [pytest.mark.server, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def start(command: str, home: Path) -> tuple[subprocess.Popen, int]:
    port = server.free_port()
    env = {**os.environ, "FINEFORGE_HOME": str(home), "PREFECT_HOME": str(home / "client")}
    env.pop("PREFECT_API_URL", None)
    # SIGHUP at its default action, as under a terminal: a `nohup` around the tests would have it ignored, and
    # FineForge rightly leaves an ignored SIGHUP ignored.
    proc = subprocess.Popen([sys.executable, "-m", "cli", command, "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # fmt: skip
    server.wait_healthy(server.default_api_url(port), timeout=90, proc=proc)
    return proc, port


def gone(pids: list[int], timeout: float = 30) -> list[int]:
    """The processes of `pids` still running (zombies count as gone) after waiting up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=["TERM", "HUP", "KILL"])
def test_server_ends_what_it_started(tmp_path: Path, sig: int) -> None:
    proc, port = start("server", tmp_path)
    started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    try:
        assert started, "fineforge server started no process"
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == (128 + sig if sig != signal.SIGKILL else -signal.SIGKILL), out
        assert gone(started) == []
        with pytest.raises(RuntimeError):
            server.wait_healthy(server.default_api_url(port), timeout=2)
    finally:
        stop_process(proc)
        for pid in gone(started, timeout=0):
            os.kill(pid, signal.SIGKILL)


def test_up_ends_the_server_on_sigterm(tmp_path: Path) -> None:
    proc, port = start("up", tmp_path)
    started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    try:
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 128 + signal.SIGTERM and gone(started) == [], out
        with pytest.raises(RuntimeError):
            server.wait_healthy(server.default_api_url(port), timeout=2)
    finally:
        stop_process(proc)
        for pid in gone(started, timeout=0):
            os.kill(pid, signal.SIGKILL)
