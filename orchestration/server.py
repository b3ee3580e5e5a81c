"""The Prefect server: started on 127.0.0.1 (or `--host`) with its database under the FineForge home, always stopped.

`prefect server start` is bound to 127.0.0.1 by default (0.0.0.0 when workers on other machines must reach it)
with its SQLite database under `FINEFORGE_HOME/prefect`. The port
goes through `PREFECT_SERVER_API_PORT` as well as the flag, because the bundled UI reads the API address from the
settings, not from `--port` (seen with Prefect 3.9.1: `--port` alone leaves the UI calling port 4200). Analytics
and promotional content are switched off (telemetry otherwise logs errors and a "database is locked" traceback
here). The server starts in 3-9 s and holds about 290 MB; its first start on a fresh home runs Prefect's database
migrations, which took over a minute on a loaded 2-core machine, so the wait for `/health` is bounded by
`FINEFORGE_STARTUP_TIMEOUT` (default 600 s) and a server that never answers is a `ServiceNotReady` naming what
was awaited. It runs in its own session, so it never sees the
terminal's Ctrl-C: whoever starts it stops it (`pipelines.common.processes.stop_process`). `running_server` does
that on every way out: an error, Ctrl-C, SIGTERM or SIGHUP (raised as `StopRequested`), and the kernel sends the
server SIGTERM if its starter is killed outright (`die_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipelines.common.errors import ServiceNotReady
from pipelines.common.processes import die_with_parent, signals_raise, stop_process

DEFAULT_PORT = 4200
STARTUP_TIMEOUT_ENV = "FINEFORGE_STARTUP_TIMEOUT"
DEFAULT_STARTUP_TIMEOUT = 600.0  # s; a first start (database migrations) on a busy 2-core machine took over 60 s
CLIENT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def public_host(host: str) -> str:
    """The name others reach a server bound to `host` by: this machine's name for 0.0.0.0 (or ::), else `host`."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def default_api_url(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    """Return the API address of a `fineforge server` bound to `host`, e.g. `http://127.0.0.1:4200/api`."""
    return f"http://{public_host(host)}:{port}/api"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (for tests and parallel servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(port: int, home: Path, base: dict[str, str] | None = None, host: str = "127.0.0.1") -> dict[str, str]:
    """Build the environment of a local Prefect server process.

    Args:
        port: the port for the API and the UI.
        home: the FineForge home; the server's PREFECT_HOME (and SQLite database) is `home/prefect`.
        base: environment to start from (default: this process's).
        host: the address to bind.

    Returns:
        The environment dict.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)  # a server must not think it is a client of another server
    env.update(
        CLIENT_ENV,
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_API_URL=default_api_url(port, host),
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
    )
    return env


def start_server(port: int, home: Path, log_path: Path | None = None, host: str = "127.0.0.1") -> subprocess.Popen:
    """Start `prefect server start` on host:port (default 127.0.0.1) in its own session.

    Args:
        port: the port for the API and the UI.
        home: the FineForge home (database under `home/prefect`).
        log_path: file for the server's output (default: inherit this process's stdout/stderr).
        host: the address to bind (0.0.0.0: every interface, for workers on other machines).

    Returns:
        The server process; pair with `wait_healthy` and `stop_process`.
    """
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            cmd,
            env=server_env(port, home, host=host),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    finally:
        if out:
            out.close()


def startup_timeout() -> float:
    """Seconds to wait for a server to answer: `FINEFORGE_STARTUP_TIMEOUT`, else `DEFAULT_STARTUP_TIMEOUT`.

    Raises:
        ValueError: when the variable is not a positive number.
    """
    value = os.environ.get(STARTUP_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_STARTUP_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{STARTUP_TIMEOUT_ENV}={value!r}: expected a positive number of seconds")
    return seconds


def wait_healthy(
    api_url: str, timeout: float | None = None, proc: subprocess.Popen | None = None, log_path: Path | None = None
) -> None:
    """Block until `api_url/health` answers, the process dies, or the timeout passes; return as soon as it answers.

    Args:
        api_url: the API address (ending in /api).
        timeout: seconds to wait (default `startup_timeout()`).
        proc: the server process, to fail fast when it exits.
        log_path: the server's log, named in the error.

    Raises:
        ServiceNotReady: when the server exited or did not answer in time.
    """
    timeout = startup_timeout() if timeout is None else timeout
    log = f" (server log: {log_path})" if log_path else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceNotReady(
                f"the Prefect server exited with code {proc.returncode} before {api_url}/health answered{log}"
            )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.3)
    raise ServiceNotReady(
        f"the Prefect server at {api_url} did not answer /health within {timeout:g} s{log}; a first start on a "
        f"fresh home runs database migrations, which can take minutes on a busy machine: allow more with "
        f"--startup-timeout or {STARTUP_TIMEOUT_ENV}"
    )


@contextlib.contextmanager
def running_server(
    port: int, home: Path, log_path: Path | None = None, host: str = "127.0.0.1", timeout: float | None = None
) -> Iterator[subprocess.Popen]:
    """Start the server, wait until it answers, and stop it however the block ends.

    SIGTERM and SIGHUP raise `pipelines.common.processes.StopRequested` inside the block (where nothing else
    handles them), so the server is stopped before this process exits.

    Args:
        port: the port for the API and the UI.
        home: the FineForge home (database under `home/prefect`).
        log_path: file for the server's output (default: this process's stdout/stderr).
        host: the address to bind (0.0.0.0: every interface, for workers on other machines).
        timeout: seconds to wait for `/health` (default `startup_timeout()`).

    Yields:
        The healthy server process.
    """
    with signals_raise():
        proc = start_server(port, home, log_path, host=host)
        try:
            wait_healthy(default_api_url(port), timeout, proc=proc, log_path=log_path)
            yield proc
        finally:
            stop_process(proc)
