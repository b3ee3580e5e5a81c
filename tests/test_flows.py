"""Flows against a real `prefect server` on loopback, with `fineforge serve` in a subprocess.

One session server (own PREFECT_HOME in a tmp dir, free port) and one `fineforge serve` process serve every
test; the end-to-end chain is curate -> tokenize -> fineforge.shards.ready -> train-on-shards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration import server
from pipelines.common.metrics import read_metrics
from pipelines.common.processes import group_alive, stop_process
from tests.conftest import REPO_ROOT as REPO
from trainer.process import PGID_FILE

pytestmark = [pytest.mark.server, pytest.mark.slow]
TRAIN_STEPS = 8  # must equal --train-steps of the `served` fixture in conftest.py


def _client(url):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(url)


def _deployments(url) -> dict[str, object]:
    with _client(url) as client:
        return {d.name: d for d in client.read_deployments()}


def _wait(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def _runs(url, flow_name: str):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with _client(url) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def _artifact(url, key: str):
    """The data of the newest artifact with this key."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with _client(url) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
        )
    assert found, f"no artifact with key {key}"
    data = found[0].data
    try:
        return json.loads(data)
    except (TypeError, json.JSONDecodeError):
        return data  # markdown and link artifacts hold plain text


def test_curate_tokenize_event_trains(served, tmp_path):
    """Acceptance 1 and 2: curate via the API, tokenize follows, the event starts train-on-shards."""
    from prefect.deployments import run_deployment

    from orchestration.demo_data import write_demo_crawl

    url, home, _ = served
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    t0 = time.monotonic()
    params = {"params": {"dataset": "e2e", "inputs": [str(crawl)]},
              "tokenize_options": {"shard_tokens": 20_000, "val_tokens": 4096}}  # fmt: skip
    run = run_deployment("curate/curate", parameters=params, timeout=240, poll_interval=2)
    assert run.state.is_completed(), run.state
    trained = _wait(lambda: [r for r in _runs(url, "train") if r.state and r.state.is_final()], 180,
                    "train-on-shards run", home / "serve.log")  # fmt: skip
    print(f"curate->tokenize->event->train: {time.monotonic() - t0:.1f} s")
    assert all(r.state.is_completed() for r in trained), [r.state for r in trained]
    assert all(r.state.is_completed() for r in _runs(url, "tokenize"))
    with _client(url) as client:
        dep = client.read_deployment(trained[0].deployment_id)
    assert dep.name == "train-on-shards"

    summary = json.loads((home / "datasets/e2e/curated/summary.json").read_text())
    manifest_path = home / "datasets/e2e/shards/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert trained[0].parameters["manifest"] == str(manifest_path)
    funnel = _artifact(url, "curate-funnel-e2e")
    assert [r["docs_out"] for r in funnel] == [s["docs_out"] for s in summary["stages"]]
    assert [r["docs_in"] for r in funnel] == [s["docs_in"] for s in summary["stages"]]
    drops = _artifact(url, "curate-drops-e2e")
    assert sum(r["documents"] for r in drops) == summary["docs_in"] - summary["docs_out"] + summary["quarantined"]
    assert "report.html" in _artifact(url, "curate-report-e2e")
    shards = _artifact(url, "tokenize-shards-e2e")
    assert sum(r["tokens"] for r in shards if r["split"] == "train") == manifest["total_tokens"]["train"]
    assert len(shards) == len(manifest["shards"])
    run_json = json.loads((home / "runs/e2e/run.json").read_text())
    assert run_json["status"] == "completed"
    metrics = {r["metric"]: r["value"] for r in _artifact(url, "train-metrics-e2e")}
    assert metrics["steps"] == TRAIN_STEPS == run_json["step"]
    assert "data:image/png;base64," in _artifact(url, "train-loss-e2e")
    # live progress, the same for all three stages: 100% at the end, and the counts of the contracts
    for stage in ("curate", "tokenize", "train"):
        assert _artifact(url, f"{stage}-progress-e2e") == 100.0, stage
    counts = [(r["stage"], r["docs_in"], r["docs_out"]) for r in _artifact(url, "curate-counts-e2e")]
    assert counts == [(s["name"], s["docs_in"], s["docs_out"]) for s in summary["stages"]]
    shards_done = _artifact(url, "tokenize-counts-e2e")[-1]
    assert shards_done == {"step": "shards", "done": len(shards), "total": len(shards), "unit": "shards"}
    assert _artifact(url, "train-counts-e2e")[0]["step"] == TRAIN_STEPS


def test_cancel_stops_trainer_and_resumes(served, tmp_path):
    """Acceptance 3: cancelling a training run stops the trainer within 30 s; the next run resumes."""
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    url, home, _ = served
    manifest = home / "datasets/e2e/shards/manifest.json"
    if not manifest.exists():
        pytest.skip("needs the shards of test_curate_tokenize_event_trains")
    run_dir = tmp_path / "run"
    params = {"manifest": str(manifest), "run_dir": str(run_dir), "settings": {"model": "tiny", "steps": 60}}
    run = run_deployment("train/train", parameters=params, timeout=0)
    _wait(lambda: len([r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step"]) >= 3, 120,
          "training steps", home / "serve.log")  # fmt: skip
    pgid = int((run_dir / PGID_FILE).read_text())
    t0 = time.monotonic()
    with _client(url) as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    _wait(lambda: not group_alive(pgid), 30, "the trainer to stop")
    stopped_s = time.monotonic() - t0
    print(f"trainer stopped {stopped_s:.1f} s after cancel")
    with _client(url) as client:
        _wait(lambda: client.read_flow_run(run.id).state.is_cancelled(), 30, "Cancelled state")
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "interrupted"
    stopped_at = run_json["step"]
    assert stopped_at < 60 and any((run_dir / "checkpoints").iterdir())

    again = run_deployment("train/train", parameters=params, timeout=240, poll_interval=2)
    assert again.state.is_completed(), again.state
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step"]
    assert steps[-1] == 60 and stopped_at in steps
    assert len(steps) == len(set(steps)), "resume repeated steps instead of continuing from the checkpoint"


def test_pipeline_rerun_skips_finished_stages(served, tmp_path):
    """`pipeline` runs every stage once; the same parameters again redo nothing and report the same numbers."""
    from prefect.deployments import run_deployment

    from orchestration.demo_data import write_demo_crawl

    url, home, _ = served
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    params = {"curate_params": {"dataset": "pipe", "inputs": [str(crawl)]},
              "tokenize_options": {"shard_tokens": 20_000, "val_tokens": 4096},
              "train_settings": {"model": "tiny", "steps": 6}}  # fmt: skip
    outputs = [home / "datasets/pipe/curated/summary.json", home / "datasets/pipe/shards/manifest.json",
               home / "runs/pipe/run.json"]  # fmt: skip

    first = run_deployment("pipeline/pipeline", parameters=params, timeout=300, poll_interval=2)
    assert first.state.is_completed(), first.state
    written = {path: path.stat().st_mtime_ns for path in outputs}
    assert json.loads(outputs[2].read_text())["status"] == "completed"

    again = run_deployment("pipeline/pipeline", parameters=params, timeout=300, poll_interval=2)
    assert again.state.is_completed(), again.state
    assert {path: path.stat().st_mtime_ns for path in outputs} == written, "a finished stage ran again"

    summary = json.loads(outputs[0].read_text())
    funnel = _artifact(url, "report-funnel-pipe")
    assert [r["docs_out"] for r in funnel] == [s["docs_out"] for s in summary["stages"]]
    assert str(home / "datasets/pipe/curated/report.html") in _artifact(url, "report-pipe")


def test_up_starts_and_stops_cleanly(tmp_path):
    """`fineforge up` serves the deployments on its own server; SIGINT (Ctrl-C) stops both."""
    port = server.free_port()
    env = {**os.environ, "FINEFORGE_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = server.default_api_url(port)
    try:
        server.wait_healthy(url, timeout=90, proc=proc)
        _wait(lambda: len(_deployments(url)) >= 6, 90, "deployments of fineforge up")
        assert (tmp_path / "prefect" / "prefect.db").exists()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        assert b"http://127.0.0.1:" in out
        assert not group_alive(proc.pid)
    finally:
        stop_process(proc)
    with pytest.raises(RuntimeError):
        server.wait_healthy(url, timeout=2)
