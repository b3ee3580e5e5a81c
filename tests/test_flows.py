"""Flows against a real `prefect server` on loopback, with `fineforge serve` in a subprocess.

One session server (own PREFECT_HOME in a tmp dir, free port) and one `fineforge serve` process serve every
test; the end-to-end chain is curate -> tokenize -> fineforge.shards.ready -> train-on-shards (the
`served_chain` session fixture runs it once). Each test builds its inputs through fixtures, so any one of them
runs alone and in any order.
"""

from __future__ import annotations

import json
import math
import os
import re
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
from tests.conftest import STARTUP_S, STOP_S, ChainRun, every_deployment_served, wait_for
from trainer.process import PGID_FILE

pytestmark = [pytest.mark.server, pytest.mark.slow]
TRAIN_STEPS = 8  # must equal --train-steps of the `served` fixture in conftest.py


def _client(url):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(url)


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


def test_curate_tokenize_event_trains(served_chain: ChainRun):
    """Acceptance 1 and 2: curate via the API, tokenize follows, the event starts train-on-shards."""
    url, home, run = served_chain.url, served_chain.home, served_chain.curate_run
    assert run.state.is_completed(), run.state
    trained = served_chain.train_runs
    print(f"curate->tokenize->event->train: {served_chain.seconds:.1f} s")
    assert all(r.state.is_completed() for r in trained), [r.state for r in trained]
    assert all(r.state.is_completed() for r in _runs(url, "tokenize"))
    with _client(url) as client:
        dep = client.read_deployment(trained[0].deployment_id)
    assert dep.name == "train-on-shards"

    summary = served_chain.summary
    manifest = json.loads(served_chain.manifest_path.read_text())
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


def _chain_runs(chain: ChainRun) -> list:
    """The flow runs of the chain: curate, the tokenize subflow it ran, the training the event started."""
    curated = str(chain.home / f"datasets/{chain.dataset}/curated")
    tokenize = [r for r in _runs(chain.url, "tokenize") if curated in json.dumps(r.parameters, default=str)]
    assert len(tokenize) == 1 and chain.train_runs, (tokenize, chain.train_runs)
    return [chain.curate_run, *tokenize, *chain.train_runs]


def _logs(url, flow_run_ids: list) -> list:
    """Every log record of these flow runs and of their task runs, read back through the API page by page."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found, page = [], 200
    with _client(url) as client:
        while True:
            batch = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)), limit=page, offset=len(found)
            )
            found += batch
            if len(batch) < page:
                return found


def test_successful_runs_log_no_error(served_chain: ChainRun):
    """A successful curate run, its tokenize subflow and the training they start log nothing at ERROR (the UI
    shows those red), and the serving process prints no traceback and no extraction noise of single pages."""
    runs = _chain_runs(served_chain)
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    logs = _logs(served_chain.url, [r.id for r in runs])
    assert any("curate" in log.message for log in logs), "the runs' logs were not read back"
    errors = [f"{log.level} {log.name}: {log.message[:400]}" for log in logs if log.level >= 40]
    assert not errors, "\n".join(errors)
    printed = served_chain.serve_output
    assert printed.strip(), "nothing of the runs' output was captured"
    for noise in ("Traceback", "TerminationSignal", "Document is empty"):
        assert noise not in printed, f"fineforge serve printed {noise!r}:\n{printed[-4000:]}"
    log = (served_chain.home / f"datasets/{served_chain.dataset}/curated/curate.log").read_text()
    assert "Processing done for rank" in log, "datatrove's log did not go to the output folder's curate.log"
    assert not [line for line in log.splitlines() if "ERROR" in line], "the log file holds ERROR lines"


@pytest.fixture(scope="module")
def chain_report(served_chain: ChainRun):
    """The `report` deployment run on the chain's curated folder, laid out as the UI lays out a dataset."""
    from prefect.deployments import run_deployment

    run_dir = served_chain.home / f"datasets/{served_chain.dataset}/curated"
    return run_deployment("report/report", parameters={"run_dir": str(run_dir)}, timeout=300, poll_interval=2)


def test_report_of_a_ui_dataset_shows_its_training(served_chain: ChainRun, chain_report):
    """The report of `datasets/<dataset>/curated` finds the shards beside it and the run under `runs/<dataset>`,
    and draws its training curves; its link reads as a title, not as a path."""
    assert chain_report.state.is_completed(), chain_report.state
    dataset = served_chain.dataset
    html = (served_chain.home / f"datasets/{dataset}/curated/report.html").read_text()
    training = re.search(r'<section id="training">.*?</section>', html, re.S)
    assert training, "the report has no training section"
    assert f"runs/{dataset}</code>" in training.group(0) and 'alt="training curves"' in training.group(0)
    link = _artifact(served_chain.url, f"report-{dataset}")
    assert link.startswith(f"[Data-quality report: {dataset}](") and link.endswith("/curated/report.html)"), link


def _rounded(value: float) -> bool:
    """At most 4 significant digits, or a whole number from 1,000 on."""
    return not math.isfinite(value) or value == float(f"{value:.4g}") or (abs(value) >= 1000 and value == round(value))


def test_one_card_per_key_per_run(served_chain: ChainRun, chain_report):
    """Each flow run shows one artifact per key (live progress and counts are updated in place, not added to),
    every artifact says what it is, and table numbers are rounded."""
    from collections import Counter

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    runs = [*_chain_runs(served_chain), chain_report]
    with _client(served_chain.url) as client:
        ids = ArtifactFilterFlowRunId(any_=[r.id for r in runs])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ids), limit=200)
    keys = Counter((a.flow_run_id, a.key) for a in artifacts)
    assert {"train-counts-e2e", "curate-counts-e2e", "report-e2e"} <= {key for _, key in keys}, keys
    assert all(n == 1 for n in keys.values()), sorted(f"{key}: {n}" for (_, key), n in keys.items() if n > 1)
    undescribed = [a.key for a in artifacts if not (a.description or "").strip()]
    assert not undescribed, undescribed
    for artifact in artifacts:
        if artifact.type == "table":
            cells = [v for row in json.loads(artifact.data) for v in row.values() if isinstance(v, float)]
            assert all(map(_rounded, cells)), f"{artifact.key}: {[v for v in cells if not _rounded(v)]}"


@pytest.fixture(scope="module")
def small_shards(builtin_text, tmp_path_factory) -> Path:
    """manifest.json of shards from the first 200 documents of the built-in web text (about 85k tokens)."""
    from pipelines.tokenize import run_tokenize
    from tests.builtin_text import write_jsonl_gz

    folder = tmp_path_factory.mktemp("small_shards")
    source = write_jsonl_gz(folder / "docs.jsonl.gz", builtin_text.texts[:200])
    run_tokenize([str(source)], folder / "shards", shard_tokens=20_000, val_tokens=4096)
    return folder / "shards" / "manifest.json"


def test_cancel_stops_trainer_and_resumes(served, small_shards, tmp_path):
    """Acceptance 3: cancelling a training run stops the trainer within 30 s; the next run resumes."""
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    url, home, _ = served
    manifest = small_shards
    run_dir = tmp_path / "run"
    # No evaluations or samples: this test is about stopping and resuming, and a machine under load is slow enough.
    settings = {"model": "tiny", "steps": 60, "extra_args": ["--eval-every", "0", "--sample-every", "0"]}
    params = {"manifest": str(manifest), "run_dir": str(run_dir), "settings": settings}
    run = run_deployment("train/train", parameters=params, timeout=0)
    wait_for(lambda: len([r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step"]) >= 3, 120,
             "training steps", home / "serve.log")  # fmt: skip
    pgid = int((run_dir / PGID_FILE).read_text())
    t0 = time.monotonic()
    with _client(url) as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    wait_for(lambda: not group_alive(pgid), 30, "the trainer to stop")
    stopped_s = time.monotonic() - t0
    print(f"trainer stopped {stopped_s:.1f} s after cancel")
    with _client(url) as client:
        wait_for(lambda: client.read_flow_run(run.id).state.is_cancelled(), 30, "Cancelled state")
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "interrupted"
    stopped_at = run_json["step"]
    assert stopped_at < 60 and any((run_dir / "checkpoints").iterdir())

    again = run_deployment("train/train", parameters=params, timeout=480, poll_interval=2)
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
    assert _artifact(url, "report-pipe").endswith("/datasets/pipe/curated/report.html)")


def test_up_starts_and_stops_cleanly(tmp_path):
    """`fineforge up` serves the deployments on its own server; SIGINT (Ctrl-C) stops both."""
    port = server.free_port()
    env = {**os.environ, "FINEFORGE_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = server.default_api_url(port)
    try:
        server.wait_healthy(url, STARTUP_S, proc=proc, log_path=tmp_path / "prefect" / "server.log")
        wait_for(lambda: every_deployment_served(url), STARTUP_S, "every deployment of fineforge up to be served")
        assert (tmp_path / "prefect" / "prefect.db").exists()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=STOP_S)  # a loaded 2-core machine took over 40 s to stop both
        assert b"http://127.0.0.1:" in out
        assert not group_alive(proc.pid)
    finally:
        stop_process(proc)
    with pytest.raises(RuntimeError):
        server.wait_healthy(url, timeout=2)
