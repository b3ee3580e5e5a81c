"""The stage interface: a stage is complete only for the same inputs, the same settings and the same shards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts
from pipelines.common.hashing import file_sha256
from pipelines.common.stage import run_stage
from pipelines.tokenize import TokenizeSettings, TokenizeStage
from tests.trainer_helpers import TINY_FLAGS, TINY_YAML
from trainer.config import build_config
from trainer.process import PGID_FILE
from trainer.stage import TrainStage

# TINY_FLAGS as build_config's field names
TINY_SETTINGS = {
    flag.removeprefix("--").replace("-", "_"): value
    for flag, value in zip(TINY_FLAGS[::2], TINY_FLAGS[1::2], strict=True)
}


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
        stage = TrainStage(build_config({"data": data, "out": str(run_dir), "model": "tiny", "steps": steps}))
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


def test_trainer_child_reads_its_settings_from_the_config_file_only(trainer_shards, tmp_path):
    """The parent builds the TrainConfig once and writes RUN_DIR/config.yaml; the child's argv names that file and
    no training flag, and the run trains exactly the settings of the file (the flags' precedence applied once)."""
    import yaml

    config_file = tmp_path / "train.yaml"
    config_file.write_text(TINY_YAML + "steps: 9\nlr: 0.002\n")
    run_dir = tmp_path / "run"
    overrides = {**TINY_SETTINGS, "data": str(trainer_shards), "out": str(run_dir), "steps": 2, "eval_every": 0}
    cfg = build_config({**overrides, "hf_export": False, "tensorboard": False}, config_file)
    assert (cfg.steps, cfg.lr, cfg.seq_len) == (2, 0.002, 32)  # flag > file > preset
    argvs: list[list[str]] = []

    def record_argv(line: str | None) -> None:
        if not argvs:
            pid = int((run_dir / PGID_FILE).read_text())
            argvs.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1])

    result = run_stage(TrainStage(cfg, on_output=record_argv)).result
    assert argvs[0][1:] == ["-m", "trainer.child", str(run_dir / "config.yaml")]
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written == cfg.model_copy(update={"data": str(trainer_shards), "out": str(run_dir)}).model_dump()
    assert result["status"] == "completed" and result["step"] == 2
    assert result["config"] == written


def test_trainer_child_starts_with_the_malloc_settings_unless_the_user_set_them(trainer_shards, tmp_path):
    """The real trainer child's environment (read from /proc while it trains) holds glibc's malloc trim threshold
    at 1 GiB, and the mmap threshold the user set already, unchanged."""
    run_dir = tmp_path / "run"
    settings = {"steps": 1, "eval_every": 0, "hf_export": False, "tensorboard": False}
    cfg = build_config({**TINY_SETTINGS, "data": str(trainer_shards), "out": str(run_dir), **settings})
    environs: list[dict[str, str]] = []

    def record_environ(line: str | None) -> None:
        if not environs:
            pid = int((run_dir / PGID_FILE).read_text())
            entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")[:-1]
            environs.append(dict(entry.split("=", 1) for entry in entries))

    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    run_stage(TrainStage(cfg, on_output=record_environ, env={**env, "MALLOC_MMAP_THRESHOLD_": "65536"}))
    malloc = {key: value for key, value in environs[0].items() if key.startswith("MALLOC_")}
    assert malloc == {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
