"""Acceptance 5: a corrupt shard or manifest, a vocabulary mismatch and an indivisible batch each stop
`fineforge train` with a clear error (exit 2) before the first step."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from cli import app
from tests.trainer_helpers import REPO_ROOT, TINY_FLAGS, trainer_cmd, trainer_env


@pytest.fixture
def clean_shards(trainer_shards):
    return trainer_shards.parent


@pytest.fixture
def shards(clean_shards, tmp_path):
    """A private copy of the shard set that a test may damage."""
    return shutil.copytree(clean_shards, tmp_path / "shards")


def train(data, out, *extra):
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(out), *TINY_FLAGS, *extra])
    assert result.exit_code == 2, result.output
    assert not (out / "metrics.jsonl").exists()  # no step ran
    return result.output


def test_corrupt_shard(shards, tmp_path):
    path = shards / "train_000000.bin"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert f"{path}: sha256 does not match" in train(shards, tmp_path / "run")


def test_truncated_shard(shards, tmp_path):
    path = shards / "train_000001.bin"
    path.write_bytes(path.read_bytes()[:-6])
    assert f"{path}: size" in train(shards, tmp_path / "run")


def test_corrupt_manifest(shards, tmp_path):
    path = shards / "manifest.json"
    path.write_text(path.read_text()[:200])
    assert f"{path}: not valid JSON" in train(shards, tmp_path / "run")


def test_manifest_missing_field(shards, tmp_path):
    path = shards / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["shards"]
    path.write_text(json.dumps(manifest))
    assert "lacks the field(s) 'shards'" in train(shards, tmp_path / "run")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("vocab_size", 50304, "vocab_size 50304 does not match the model's vocab_size 50257"),
     ("eot", 0, "eot 0 is not GPT-2's <|endoftext|> (50256)")],
)  # fmt: skip
def test_vocabulary_mismatch(shards, tmp_path, field, value, message):
    path = shards / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    assert message in train(shards, tmp_path / "run")


def test_indivisible_batch(clean_shards, tmp_path):
    out = train(clean_shards, tmp_path / "run", "--batch-tokens", "100")
    assert "batch_tokens 100 is not divisible by micro_batch x seq_len x world_size = 2 x 32 x 1 = 64" in out


def test_indivisible_batch_for_the_world_size(clean_shards, tmp_path):
    """192 tokens divide for 1 process (3 micro steps) but not for 2 ranks of 64: torchrun's ranks refuse."""
    out = tmp_path / "run"
    cmd = [*trainer_cmd(clean_shards, out, 5), "--batch-tokens", "192", "--nproc", "2"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=trainer_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "batch_tokens 192 is not divisible by micro_batch x seq_len x world_size = 2 x 32 x 2 = 128" in proc.stderr
    assert not (out / "metrics.jsonl").exists()


def test_seq_len_beyond_context(clean_shards, tmp_path):
    out = train(clean_shards, tmp_path / "run", "--seq-len", "512", "--batch-tokens", "1024")
    assert "seq_len 512 exceeds the context length 256 of 'tiny'" in out


def test_resume_on_other_shards_refused(shards, clean_shards, tmp_path):
    """A run directory trained on one shard set does not silently continue on another."""
    run = tmp_path / "run"
    first = CliRunner().invoke(app, ["train", "--data", str(clean_shards), "--out", str(run), *TINY_FLAGS,
                                     "--steps", "2", "--eval-every", "0", "--sample-every", "0"])  # fmt: skip
    assert first.exit_code == 0, first.output
    path = shards / "manifest.json"
    path.write_text(path.read_text().replace("2026-01-01", "2026-01-02"))  # same shards, another manifest
    second = CliRunner().invoke(app, ["train", "--data", str(shards), "--out", str(run), *TINY_FLAGS, "--steps", "4"])
    assert second.exit_code == 2, second.output
    assert f"{run}: its checkpoints were trained on" in second.output
    assert "train into a new --out" in second.output
