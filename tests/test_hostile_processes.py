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
from tests.conftest import STARTUP_S

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
    server.wait_healthy(server.default_api_url(port), STARTUP_S, proc=proc)
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


def run_cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `fineforge ARGS` to its end with FINEFORGE_HOME at `home` (a bound of 300 s: it must end by itself)."""
    full_env = {**os.environ, "FINEFORGE_HOME": str(home), "PREFECT_HOME": str(home / "client"), **env}
    full_env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["up", "server"])
def test_a_server_not_up_in_time_is_one_error_line(tmp_path: Path, command: str) -> None:
    """A first start that outlasts the bound says what it waits for, then one `error:` line, exit 1, and stops the
    server it started (issue 20, case 11: a rich traceback after a fixed 60 s before)."""
    port = server.free_port()
    done = run_cli([command, "--port", str(port), "--startup-timeout", "1"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"waiting up to 1 s for the Prefect server to answer http://127.0.0.1:{port}/api/health" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert errors[0].startswith(f"error: the Prefect server at http://127.0.0.1:{port}/api did not answer /health")
    assert "within 1 s" in errors[0] and "--startup-timeout" in errors[0]
    left = [p for p in psutil.process_iter(["cmdline"]) if str(port) in (p.info["cmdline"] or [])]
    assert gone([p.pid for p in left]) == []


def test_a_bad_startup_timeout_is_the_users_error(tmp_path: Path) -> None:
    done = run_cli(["server", "--port", str(server.free_port())], tmp_path, FINEFORGE_STARTUP_TIMEOUT="soon")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: FINEFORGE_STARTUP_TIMEOUT='soon': expected a positive number of seconds"
