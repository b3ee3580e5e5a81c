"""Shared fixtures: built-in inputs for every test, the shared corpora as extra cases, and a real Prefect server.

Every test has a built-in input (`builtin_text`, `trainer_shards`, the demo crawl), so a fresh clone without
../shared/corpora runs each code path. Fixtures parametrized over `SOURCES` run a test once on the built-in
text and once more on the shared corpora, a case that skips, saying why, where the corpora are absent.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builtin_text import TextSource, builtin_web_texts, read_jsonl_texts, write_jsonl_gz

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["builtin", "corpora"]
# Bound of every wait for a server, cluster or worker to come up; each returns as soon as it is up. On a busy
# 2-core machine (load 5-13) a fresh Prefect database's migrations alone took over 60 s.
STARTUP_S = 600.0
STOP_S = 300.0  # how long a server or serve process may take to stop after a signal, on a loaded machine


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
def builtin_text(tmp_path_factory) -> TextSource:
    """The built-in web text (`tests/builtin_text.py`) as a JSON Lines file in web-text.jsonl.gz's schema."""
    texts = builtin_web_texts()
    path = write_jsonl_gz(tmp_path_factory.mktemp("builtin_text") / "builtin-text.jsonl.gz", texts)
    return TextSource("builtin", path, texts)


@pytest.fixture(scope="session", params=SOURCES)
def web_text(request) -> TextSource:
    """Web text twice: the built-in text, then the shared web-text.jsonl.gz (580 real texts) where it exists."""
    if request.param == "builtin":
        return request.getfixturevalue("builtin_text")
    path = request.getfixturevalue("corpora") / "web-text.jsonl.gz"
    return TextSource("corpora", path, read_jsonl_texts(path))


@pytest.fixture(scope="session")
def trainer_shards(builtin_text, tmp_path_factory) -> Path:
    """manifest.json of token shards from the built-in web text, for the trainer tests (read-only)."""
    from tests.trainer_helpers import write_test_shards

    return write_test_shards(builtin_text, tmp_path_factory.mktemp("trainer_shards"))


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
        wait_healthy(url, STARTUP_S, proc=proc, log_path=home / "server.log")
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

    from orchestration.reports import REPORTS_ENV, ReportServer
    from pipelines.common.processes import stop_process

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
        deadline = time.monotonic() + STARTUP_S
        while not every_deployment_served(url):
            if proc.poll() is not None:
                raise RuntimeError(f"fineforge serve exited ({proc.returncode}) before serving every deployment; "
                                   f"see {home / 'serve.log'}")  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"fineforge serve did not serve every deployment within {STARTUP_S:g} s; "
                                   f"see {home / 'serve.log'}")  # fmt: skip
            time.sleep(1)
        with temporary_settings({PREFECT_API_URL: url}):
            yield url, home, env
    finally:
        stop_process(proc, sig=signal.SIGINT)
        log.close()
        reports.stop()


@functools.cache
def deployment_names() -> frozenset[str]:
    """The name of every deployment `fineforge serve` and `fineforge up` register."""
    from flows import deployments

    return frozenset(d.name for d in deployments())


def every_deployment_served(url: str) -> bool:
    """Whether the server at `url` holds every FineForge deployment: serve registers them one at a time, so a
    test that starts at the first ones may ask for one not there yet."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(url) as client:
        return {d.name for d in client.read_deployments()} >= deployment_names()


def wait_for(predicate, timeout: float, what: str, log: Path | list[Path] | None = None):
    """Poll `predicate` every second until it returns something truthy, and return that.

    Args:
        predicate: a function of no arguments.
        timeout: seconds to wait before failing the test.
        what: what is awaited, for the failure message.
        log: a log file (or several) whose tail the failure message shows.

    Returns:
        The first truthy value of `predicate()`.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    logs = [log] if isinstance(log, Path) else log or []
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


@dataclass(frozen=True)
class ChainRun:
    """What the curate -> tokenize -> fineforge.shards.ready -> train-on-shards chain left behind.

    Attributes:
        url: the Prefect API.
        home: FINEFORGE_HOME of the `served` deployments.
        dataset: the dataset name (artifact keys end with it).
        curate_run: the flow run of the curate deployment.
        train_runs: the finished runs of the `train` flow on this dataset's manifest.
        seconds: from starting curate to the end of training.
        serve_output: what the `fineforge serve` process printed meanwhile (its runs' output included).
    """

    url: str
    home: Path
    dataset: str
    curate_run: object
    train_runs: list
    seconds: float
    serve_output: str

    @property
    def summary(self) -> dict:
        """The curate summary.json."""
        return json.loads((self.home / f"datasets/{self.dataset}/curated/summary.json").read_text())

    @property
    def manifest_path(self) -> Path:
        """The tokenize manifest.json."""
        return self.home / f"datasets/{self.dataset}/shards/manifest.json"


@pytest.fixture(scope="session")
def served_chain(served, tmp_path_factory) -> ChainRun:
    """The demo crawl curated through the `curate` deployment; tokenize follows and its event trains the shards.

    Run once per session, for every test that needs the chain's outputs or artifacts, in any order.
    """
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.deployments import run_deployment

    from orchestration.demo_data import write_demo_crawl

    url, home, _ = served
    dataset = "e2e"
    crawl = tmp_path_factory.mktemp("chain_crawl")
    write_demo_crawl(crawl)
    manifest = home / f"datasets/{dataset}/shards/manifest.json"

    def finished_training() -> list:
        with SyncPrefectClient(url) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])))
        return [r for r in runs if r.parameters.get("manifest") == str(manifest) and r.state and r.state.is_final()]

    serve_log = home / "serve.log"
    printed_before = serve_log.stat().st_size
    t0 = time.monotonic()
    params = {"params": {"dataset": dataset, "inputs": [str(crawl)]},
              "tokenize_options": {"shard_tokens": 20_000, "val_tokens": 4096}}  # fmt: skip
    run = run_deployment("curate/curate", parameters=params, timeout=240, poll_interval=2)
    trained = []
    if run.state.is_completed():
        trained = wait_for(finished_training, 300, "the train-on-shards run", home / "serve.log")
    seconds = time.monotonic() - t0
    serve_output = serve_log.read_bytes()[printed_before:].decode(errors="replace")
    return ChainRun(url, home, dataset, run, trained, seconds, serve_output)
