"""The `ablation` deployment against a real Prefect server: subflows per variant and per run, the training
concurrency limit, progress per run, and the results table and report link artifacts."""

from __future__ import annotations

import json

import pytest

from orchestration import artifacts as art
from orchestration.demo_data import demo_texts, write_demo_crawl
from tests.conftest import REPO_ROOT
from tests.test_flows import _artifact, _client, _runs

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_ablation_deployment(served, tmp_path):
    from prefect.deployments import run_deployment

    url, _, _ = served
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    eval_set = tmp_path / "held.jsonl"
    eval_set.write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(2, seed=11)))
    out = tmp_path / "flow-ablation"
    spec = {
        "inputs": [str(crawl / "docs.jsonl")],
        "variants": [
            {"name": "fineweb", "config": str(REPO_ROOT / "configs" / "fineweb.yaml")},
            {"name": "nofilter", "config": str(REPO_ROOT / "configs" / "nofilter.yaml")},
        ],
        "eval_data": [str(eval_set)],
        "out": str(out),
        "tokens": 1024,
        "seeds": [0, 1],
        "eval_points": 1,
        "training_concurrency": 2,
    }
    run = run_deployment("ablation/ablation", parameters={"spec": spec}, timeout=1500, poll_interval=2)
    assert run.state.is_completed(), run.state

    variants = sorted(r.name for r in _runs(url, "ablation-variant"))
    runs = sorted(r.name for r in _runs(url, "ablation-run"))
    assert variants == ["fineweb", "nofilter"]
    assert runs == ["fineweb-seed-0", "fineweb-seed-1", "nofilter-seed-0", "nofilter-seed-1"]
    assert all(r.state.is_completed() for r in _runs(url, "ablation-run"))
    with _client(url) as client:
        limit = client.read_global_concurrency_limit_by_name("fineforge-training")
    assert limit.limit == 2 and limit.active_slots == 0  # released after the runs

    record = json.loads((out / "ablation.json").read_text())
    assert _artifact(url, "ablation-results-flow-ablation") == json.loads(json.dumps(art.ablation_rows(record)))
    assert str(out / "report.html") in _artifact(url, "ablation-report-flow-ablation")
    for name in runs:
        assert _artifact(url, f"ablation-progress-flow-ablation-{name}") == 100.0
    assert len(record["results"]) == 4 and len(record["verdicts"]) == 1
