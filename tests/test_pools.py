"""FineForge on work pools: a real server, `fineforge deploy`, and two `fineforge worker`s on this machine.

One worker serves `fineforge-data`, the other `fineforge-train`. A curate run started through the API must run
on the data worker and the training that `fineforge.shards.ready` triggers on the train worker, which each
worker's own `prefect.worker.executed-flow-run` events record. A training run whose run directory is held
by another run waits, saying so in its log, and finishes once the slot is free. Everything started here is
stopped here (server, workers and their flow-run processes are process groups of their own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from orchestration import server
from orchestration.pools import DATA_POOL, TRAIN_POOL, pool_for
from pipelines.common.processes import stop_process
from tests.conftest import REPO_ROOT, STARTUP_S, deployment_names, wait_for

pytestmark = [pytest.mark.server, pytest.mark.slow]
TRAIN_STEPS = 8
WORKERS = {DATA_POOL: "ff-test-data-worker", TRAIN_POOL: "ff-test-train-worker"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A server of its own, the deployments on two pools and one worker per pool; yields (url, home, logs)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("pools")
    port = server.free_port()
    url = server.default_api_url(port)
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(root / "client"),
           "FINEFORGE_HOME": str(root / "shared"), "PREFECT_WORKER_QUERY_SECONDS": "1",
           **server.CLIENT_ENV}  # fmt: skip
    started: list[subprocess.Popen] = []
    logs = [root / "server.log"]
    try:
        started.append(server.start_server(port, root, log_path=logs[0]))
        server.wait_healthy(url, STARTUP_S, proc=started[0], log_path=logs[0])
        deploy = subprocess.run([sys.executable, "-m", "cli", "deploy", "--train-steps", str(TRAIN_STEPS)],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        for pool, name in WORKERS.items():
            logs.append(root / f"{name}.log")
            with open(logs[-1], "wb") as log:
                cmd = [sys.executable, "-m", "cli", "worker", "--pool", pool, "--name", name]
                started.append(subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True))  # fmt: skip

        def online() -> bool:
            with SyncPrefectClient(url) as client:
                return all(
                    any(w.name == name and w.status == "ONLINE" for w in client.read_workers_for_work_pool(pool))
                    for pool, name in WORKERS.items()
                )

        wait_for(online, STARTUP_S, "both workers online", logs)
        with temporary_settings({PREFECT_API_URL: url}):
            yield url, root / "shared", logs, deploy.stdout
    finally:
        for proc in reversed(started):
            stop_process(proc, sig=signal.SIGINT)


def _runs(client, flow_name: str):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def _executed_by(client, worker: str) -> set[str]:
    """Flow run ids that a worker reports it executed (its `prefect.worker.executed-flow-run` events)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    page = client.read_events(
        EventFilter(
            event=EventNameFilter(name=["prefect.worker.executed-flow-run"]),
            resource=EventResourceFilter(id=[f"prefect.worker.process.{worker}"]),
        ),
        limit=50,
    )
    return {
        related.id.removeprefix("prefect.flow-run.")
        for event in page.events
        for related in event.related
        if related.role == "flow-run"
    }


def test_deploy_puts_data_and_training_on_their_pools(cluster):
    from prefect.client.orchestration import SyncPrefectClient

    url, _, _, output = cluster
    with SyncPrefectClient(url) as client:
        deployed = {d.name: d for d in client.read_deployments()}
        pools = {p.name: p.type for p in client.read_work_pools()}
    assert pools[DATA_POOL] == pools[TRAIN_POOL] == "process"
    assert set(deployed) == deployment_names()  # every deployment `fineforge serve` serves
    assert {"curate", "tokenize", "train", "train-on-shards", "report", "pipeline"} <= set(deployed)
    for name, deployment in deployed.items():
        assert deployment.work_pool_name == pool_for(name, DATA_POOL, TRAIN_POOL), name
        assert deployment.entrypoint == f"flows.{deployment.entrypoint.split('.')[-1]}" and not deployment.pull_steps
        assert f"{name:<18} -> work pool {deployment.work_pool_name}" in output
    assert {deployed[n].work_pool_name for n in ("train", "train-on-shards", "pipeline")} == {TRAIN_POOL}
    assert {deployed[n].work_pool_name for n in ("curate", "tokenize", "report")} == {DATA_POOL}


def test_curate_runs_on_the_data_worker_and_training_on_the_train_worker(cluster, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.deployments import run_deployment

    from orchestration.demo_data import write_demo_crawl

    url, home, logs, _ = cluster
    write_demo_crawl(tmp_path / "crawl")
    params = {"params": {"dataset": "pools", "inputs": [str(tmp_path / "crawl")]},
              "tokenize_options": {"shard_tokens": 20_000, "val_tokens": 4096}}  # fmt: skip
    curate = run_deployment("curate/curate", parameters=params, timeout=600, poll_interval=2)
    assert curate.state.is_completed(), curate.state
    with SyncPrefectClient(url) as client:
        trained = wait_for(lambda: [r for r in _runs(client, "train") if r.state and r.state.is_final()], 300,
                        "the event-triggered training", logs)  # fmt: skip
        assert len(trained) == 1 and trained[0].state.is_completed(), trained[0].state
        assert client.read_deployment(trained[0].deployment_id).name == "train-on-shards"
        assert (curate.work_pool_name, trained[0].work_pool_name) == (DATA_POOL, TRAIN_POOL)
        on_data = wait_for(lambda: _executed_by(client, WORKERS[DATA_POOL]), 60, "the data worker's events")
        on_train = wait_for(lambda: _executed_by(client, WORKERS[TRAIN_POOL]), 60, "the train worker's events")
    assert str(curate.id) in on_data and str(curate.id) not in on_train
    assert str(trained[0].id) in on_train and str(trained[0].id) not in on_data
    run = json.loads((home / "runs" / "pools" / "run.json").read_text())
    assert run["status"] == "completed" and run["step"] == TRAIN_STEPS
    assert json.loads((home / "datasets/pools/curated/summary.json").read_text())["docs_out"] > 0


def test_a_second_training_into_a_busy_run_dir_waits(cluster):
    """While the run dir's slot is held (here by the test), a shards-ready run waits and says so; then it ends."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.events import emit_event

    from orchestration.run_lock import exclusive_run_dir

    url, home, logs, _ = cluster
    manifest = home / "datasets/pools/shards/manifest.json"
    if not manifest.exists():
        pytest.skip("needs the shards of test_curate_runs_on_the_data_worker_and_training_on_the_train_worker")
    run_dir = home / "runs" / "pools"

    def log_text(client, run_id) -> str:
        return "\n".join(m.message for m in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))))

    with SyncPrefectClient(url) as client:
        before = {r.id for r in _runs(client, "train")}
        with exclusive_run_dir(run_dir, None, _PrintLogger()):
            emit_event(event="fineforge.shards.ready", resource={"prefect.resource.id": "fineforge.shards.pools"},
                       payload={"manifest": str(manifest), "train_tokens": 1})  # fmt: skip
            second = wait_for(lambda: [r for r in _runs(client, "train") if r.id not in before], 120,
                           "the second training run", logs)[0]  # fmt: skip
            waiting = "the waiting line"
            wait_for(lambda: "in use by another flow run" in log_text(client, second.id), 120, waiting, logs)
            time.sleep(3)
            assert client.read_flow_run(second.id).state.is_running(), "the run went on while the slot was held"
        done = wait_for(lambda: (r := client.read_flow_run(second.id)).state.is_final() and r, 120, "the end", logs)
        assert done.state.is_completed(), done.state
        # Flow-run logs reach the API in batches, possibly after the final state: wait for the line.
        wait_for(lambda: "already completed: skipped" in log_text(client, second.id), 30, "the skip line", logs)


class _PrintLogger:
    """The logger `exclusive_run_dir` wants, printing to the test's output."""

    def info(self, msg: str, *args) -> None:
        print(msg % args)

    warning = info


def test_deploy_and_worker_refuse_without_a_server(monkeypatch, tmp_path):
    from cli import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 2 and "PREFECT_API_URL is not set" in result.output
    result = CliRunner().invoke(app, ["worker", "--pool", "fineforge-data"])
    assert result.exit_code == 2 and "PREFECT_API_URL is not set" in result.output
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    result = CliRunner().invoke(app, ["deploy", "--data-pool", "same", "--train-pool", "same"])
    assert result.exit_code == 2 and "give them different names" in result.output


def test_worker_refuses_an_unknown_pool(cluster, monkeypatch):
    from cli import app

    url, _, _, _ = cluster
    monkeypatch.setenv("PREFECT_API_URL", url)
    result = CliRunner().invoke(app, ["worker", "--pool", "no-such-pool"])
    assert result.exit_code == 2 and "no work pool 'no-such-pool'" in result.output
    assert "fineforge deploy" in result.output
