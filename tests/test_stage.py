"""The stage interface: a stage is complete only for the same inputs, the same settings and the same shards."""

from __future__ import annotations

import json

import pytest

from orchestration.demo_data import demo_texts
from pipelines.common.hashing import file_sha256
from pipelines.common.stage import run_stage
from pipelines.tokenize import TokenizeSettings, TokenizeStage
from trainer.stage import TrainStage


@pytest.fixture
def docs_jsonl(tmp_path):
    """Sixty built-in English articles as a JSONL file."""
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in demo_texts(60)))
    return path


def test_tokenize_is_complete_for_same_inputs_and_settings_only(docs_jsonl, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    settings = TokenizeSettings(shard_tokens=5_000, val_tokens=500, seed=3)
    first = run_stage(TokenizeStage([str(docs_jsonl)], out, settings))
    assert not first.reused
    monkeypatch.chdir(tmp_path)  # a relative path names the same file

    def complete(inputs: list[str], settings: TokenizeSettings, folder=out) -> bool:
        stage = TokenizeStage(inputs, folder, settings)
        stage.plan()
        return stage.is_complete()

    assert complete(["docs.jsonl"], settings)
    again = run_stage(TokenizeStage(["docs.jsonl"], out, settings))
    assert again.reused and again.result == first.result
    assert not complete(["docs.jsonl"], TokenizeSettings(shard_tokens=4_000, val_tokens=500, seed=3))
    (tmp_path / "more.jsonl").write_text(docs_jsonl.read_text())
    assert not complete(["more.jsonl"], settings)
    assert not complete(["docs.jsonl"], settings, folder=tmp_path / "empty")
    (out / first.result["shards"][0]["path"]).write_bytes(b"cut")  # a damaged shard set is not complete
    assert not complete(["docs.jsonl"], settings)


def test_train_is_complete_for_same_manifest_and_steps_only(docs_jsonl, tmp_path):
    shards = tmp_path / "shards"
    run_stage(TokenizeStage([str(docs_jsonl)], shards, TokenizeSettings(shard_tokens=5_000, val_tokens=500)))
    manifest = shards / "manifest.json"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = {"status": "completed", "step": 7, "manifest": {"path": str(manifest), "sha256": file_sha256(manifest)}}
    (run_dir / "run.json").write_text(json.dumps(run))

    def complete(data: str, steps: int = 7) -> bool:
        stage = TrainStage(["--data", data, "--out", str(run_dir), "--model", "tiny", "--steps", str(steps)])
        stage.plan()
        return stage.is_complete()

    assert complete(str(manifest))
    assert complete(str(shards))  # the folder names the same manifest
    assert not complete(str(manifest), steps=8)  # more steps continue the run
    (run_dir / "run.json").write_text(json.dumps({**run, "status": "running"}))
    assert not complete(str(manifest))
    (run_dir / "run.json").write_text(json.dumps(run))
    manifest.write_text(manifest.read_text().replace('"created"', '"created" ', 1))  # new manifest bytes
    assert not complete(str(manifest))
