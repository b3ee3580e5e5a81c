"""Shared fixtures: the real web corpora in ../shared/corpora and hermetic Prefect settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpora_path() -> Path:
    """Return the shared corpora folder (`FINEFORGE_CORPORA` overrides `../shared/corpora`)."""
    return Path(os.environ.get("FINEFORGE_CORPORA", REPO_ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora() -> Path:
    """The shared corpora folder; tests that need it skip, saying why, where it is absent."""
    path = corpora_path()
    if not path.is_dir():
        pytest.skip(f"shared corpora not found at {path} (set FINEFORGE_CORPORA)")
    return path


@pytest.fixture(scope="session")
def trainer_shards(corpora, tmp_path_factory) -> Path:
    """manifest.json of token shards from the shared web text, for the trainer tests (read-only)."""
    from tests.trainer_helpers import write_test_shards

    return write_test_shards(corpora, tmp_path_factory.mktemp("trainer_shards"))


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for the module: on this shared 2-core machine, 2 OpenMP threads made small
    elementwise ops 25-80x slower (torch.log on 150k floats: 7.6 ms vs 0.3 ms), dominating token-by-token
    generation."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server on a free loopback port with its own home in a tmp dir; yields (api_url, home)."""
    from orchestration.server import default_api_url, free_port, start_server, wait_healthy
    from pipelines.common.processes import stop_process

    home = tmp_path_factory.mktemp("ffhome")
    port = free_port()
    proc = start_server(port, home, log_path=home / "server.log")
    url = default_api_url(port)
    try:
        wait_healthy(url, timeout=90, proc=proc)
        yield url, home
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def served(prefect_server):
    """`fineforge serve` in a subprocess against the session server, with a report server over the home (as
    `fineforge up` runs them); yields (api_url, home, env), env holding FINEFORGE_REPORTS_URL."""
    import signal
    import subprocess
    import sys
    import time

    from prefect.client.orchestration import SyncPrefectClient

    from orchestration.reports import REPORTS_ENV, ReportServer
    from pipelines.common.processes import stop_process

    def deployments_served() -> bool:
        with SyncPrefectClient(url) as client:
            return len(client.read_deployments()) >= 6

    url, home = prefect_server
    reports = ReportServer(home).start()
    env = {
        **os.environ,
        "PREFECT_API_URL": url,
        "PREFECT_HOME": str(home / "client"),
        "FINEFORGE_HOME": str(home),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        REPORTS_ENV: reports.url,
    }
    log = open(home / "serve.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "cli", "serve", "--train-steps", "8"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        deadline = time.monotonic() + 90
        while not deployments_served():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"fineforge serve did not register its deployments; see {home / 'serve.log'}")
            time.sleep(1)
        with temporary_settings({PREFECT_API_URL: url}):
            yield url, home, env
    finally:
        stop_process(proc, sig=signal.SIGINT)
        log.close()
        reports.stop()
