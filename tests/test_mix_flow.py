"""The `mix` deployment on a real Prefect server: it mixes, publishes the shard table and announces the shards,
whose event starts `train-on-shards` on the mixture as after tokenize (the eval events then carry every source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.common.metrics import read_metrics
from pipelines.common.run_record import recorded_run
from pipelines.tokenize import run_tokenize
from tests.builtin_text import write_jsonl_gz
from tests.conftest import wait_for

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_mix_deployment_announces_shards_and_training_follows(served, builtin_text, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    url, home, _ = served
    sources = []
    for name, texts in (("web", builtin_text.texts[:150]), ("edu", builtin_text.texts[150:250])):
        data = write_jsonl_gz(tmp_path / f"{name}.jsonl.gz", texts)
        run_tokenize([str(data)], tmp_path / name, shard_tokens=20_000, val_tokens=2_000)
        sources.append(f"{name}={tmp_path / name}:{0.6 if name == 'web' else 0.4}")
    params = {"params": {"dataset": "mixflow", "sources": sources, "tokens": 40_000, "shard_tokens": 20_000}}
    run = run_deployment("mix/mix", parameters=params, timeout=300, poll_interval=2)
    assert run.state.is_completed(), run.state
    manifest = json.loads((home / "datasets/mixflow/shards/manifest.json").read_text())
    assert [s["name"] for s in manifest["sources"]] == ["web", "edu"]

    run_dir = home / "runs/mixflow"

    def trained() -> bool:
        return (recorded_run(run_dir) or {}).get("status") == "completed"

    wait_for(trained, 600, "the training that the shards event starts", home / "serve.log")
    evals = [e for e in read_metrics(run_dir / "metrics.jsonl") if e["type"] == "eval"]
    assert evals and all(set(e["val_loss_by_source"]) == {"web", "edu"} for e in evals)
