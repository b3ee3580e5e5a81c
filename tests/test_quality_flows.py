"""The quality classifier from the UI: the `quality-train` deployment, then `curate` with quality settings in its form.

Against the session's real Prefect server and `fineforge serve` (tests/conftest.py), on planted texts and the
built-in demo crawl.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts, write_demo_crawl
from tests.quality_helpers import boilerplate_texts, texts_jsonl

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _artifact_rows(url: str, key: str) -> list[dict]:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with SyncPrefectClient(url) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return json.loads(found[0].data)


def test_train_from_the_ui_then_curate_with_quality_settings(served, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    url, _, _ = served
    good = texts_jsonl(tmp_path / "good.jsonl", demo_texts(40, seed=1))
    bad = texts_jsonl(tmp_path / "bad.jsonl", boilerplate_texts(40, seed=1))
    model = tmp_path / "model" / "ui.bin"
    params = {
        "out": str(model),
        "positive": [str(good)],
        "negative": [str(bad)],
        "settings": {"buckets": 20_000, "dim": 16},
    }
    run = run_deployment("quality-train/quality-train", parameters={"params": params}, timeout=180, poll_interval=2)
    assert run.state.is_completed(), run.state
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["auc"] == 1.0 and card["settings"]["buckets"] == 20_000
    rows = _artifact_rows(url, "quality-model-ui")
    assert [r["auc"] for r in rows] == [card["auc"], card["baseline"]["auc"]]

    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    config = tmp_path / "no-url-filter.yaml"
    config.write_text("filters:\n  url:\n    enabled: false\n")
    out = tmp_path / "curated"
    curate_params = {
        "dataset": "quality-ui",
        "inputs": [str(crawl)],
        "output": str(out),
        "config": str(config),
        "quality": {"enabled": True, "model": str(model), "threshold": None, "keep_fraction": 0.5},
    }
    parameters = {"params": curate_params, "then_tokenize": False}
    run = run_deployment("curate/curate", parameters=parameters, timeout=240, poll_interval=2)
    assert run.state.is_completed(), run.state
    summary = json.loads((out / "summary.json").read_text())
    quality = summary["quality"]
    assert quality["keep_fraction"] == 0.5 and quality["model_sha256"] == card["model_sha256"]
    assert quality["selected"] == math.ceil(0.5 * quality["scored"])
    assert next(s for s in summary["stages"] if s["name"] == "url_filter")["status"] == "off"
