"""When the flows skip a finished stage: only for the same inputs, the same settings and the same shards."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from pipelines.orchestration import finished_tokenize, finished_train
from pipelines.shards import file_sha256
from pipelines.tokenize import TokenizeSettings, run_tokenize


@pytest.fixture
def web_jsonl(corpora, tmp_path):
    """Sixty real web documents as a JSONL file."""
    path = tmp_path / "docs.jsonl"
    with gzip.open(corpora / "web-text.jsonl.gz", "rt") as f:
        path.write_text("".join(itertools.islice(f, 60)))
    return path


def test_finished_tokenize_needs_same_inputs_and_settings(web_jsonl, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    settings = TokenizeSettings(shard_tokens=5_000, val_tokens=500, seed=3)
    run_tokenize([str(web_jsonl)], out, shard_tokens=5_000, val_tokens=500, seed=3)
    monkeypatch.chdir(tmp_path)  # the flow may be given a relative path: it names the same file

    manifest = finished_tokenize(out, ["docs.jsonl"], settings.config_hash())
    assert manifest == json.loads((out / "manifest.json").read_text())
    other = TokenizeSettings(shard_tokens=4_000, val_tokens=500, seed=3)
    assert finished_tokenize(out, ["docs.jsonl"], other.config_hash()) is None
    (tmp_path / "more.jsonl").write_text(web_jsonl.read_text())
    assert finished_tokenize(out, ["more.jsonl"], settings.config_hash()) is None
    assert finished_tokenize(tmp_path / "empty", ["docs.jsonl"], settings.config_hash()) is None


def test_finished_train_needs_same_manifest(web_jsonl, tmp_path):
    shards = tmp_path / "shards"
    run_tokenize([str(web_jsonl)], shards, shard_tokens=5_000, val_tokens=500)
    manifest = shards / "manifest.json"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = {"status": "completed", "manifest": {"path": str(manifest), "sha256": file_sha256(manifest)}}
    (run_dir / "run.json").write_text(json.dumps(run))

    assert finished_train(run_dir, str(manifest)) == run
    assert finished_train(run_dir, str(shards)) == run  # the folder names the same manifest
    (run_dir / "run.json").write_text(json.dumps({**run, "status": "running"}))
    assert finished_train(run_dir, str(manifest)) is None
    (run_dir / "run.json").write_text(json.dumps(run))
    manifest.write_text(manifest.read_text().replace('"created"', '"created" ', 1))  # new manifest bytes
    assert finished_train(run_dir, str(manifest)) is None
