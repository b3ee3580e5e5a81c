"""Helpers for the trainer tests: token shards from the built-in web text, and running the trainer as a process.

The shards are written here with `pipelines.shards` (documents in file order, EOT before each, the first
`VAL_DOCS` documents as the val split) rather than through `pipelines.tokenize`, so that the trainer's
reference losses do not move when the tokenizer stage changes its shuffle or shard sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from model.tokenizer import EOT_TOKEN, VOCAB_SIZE, get_encoding
from pipelines.shards import Manifest, shard_name, write_manifest, write_shard
from tests.builtin_text import TextSource

REPO_ROOT = Path(__file__).resolve().parents[1]
VAL_DOCS = 20
SHARD_TOKENS = 150_000

# A tiny model and batch: 2 sequences x 32 tokens per micro step, 2 micro steps per optimizer step.
TINY_FLAGS = ["--model", "tiny", "--seq-len", "32", "--micro-batch", "2", "--batch-tokens", "128", "--warmup", "5"]
TINY_YAML = 'eval_tokens: 256\nsample_tokens: 8\nprompts: ["The web is"]\n'


def write_test_shards(source: TextSource, out: Path) -> Path:
    """Encode `source`'s texts into train/val shards plus a manifest in `out`; return the manifest path."""
    if (out / "manifest.json").exists():
        return out / "manifest.json"
    out.mkdir(parents=True, exist_ok=True)
    enc = get_encoding()
    docs = [np.array([EOT_TOKEN, *enc.encode_ordinary(t)], dtype=np.uint16) for t in source.texts]
    shards = []
    for split, split_docs in (("val", docs[:VAL_DOCS]), ("train", docs[VAL_DOCS:])):
        stream = np.concatenate(split_docs)
        for i, start in enumerate(range(0, stream.size, SHARD_TOKENS)):
            piece = stream[start : start + SHARD_TOKENS]
            name = shard_name(split, i)
            sha = write_shard(out / name, piece)
            n_docs = int((piece == EOT_TOKEN).sum())
            shards.append(dict(path=name, split=split, tokens=int(piece.size), documents=n_docs, sha256=sha))
    total = {s: sum(e["tokens"] for e in shards if e["split"] == s) for s in ("train", "val")}
    documents = {s: sum(e["documents"] for e in shards if e["split"] == s) for s in ("train", "val")}
    manifest = {
        "format": "llm.c-gpt2-v1",
        "tokenizer": "gpt2",
        "vocab_size": VOCAB_SIZE,
        "eot": EOT_TOKEN,
        "source": {"path": str(source.path), "run_id": "test-run", "config_hash": "test-hash"},
        "shards": shards,
        "total_tokens": total,
        "documents": documents,
        "created": "2026-01-01T00:00:00+00:00",
    }
    return write_manifest(out, Manifest.model_validate(manifest))


def tiny_config(directory: Path) -> Path:
    """Write the YAML settings shared by the trainer tests (small eval and samples) and return its path."""
    path = directory / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


def trainer_env() -> dict[str, str]:
    """Environment for trainer subprocesses: one thread each, so that 2 ranks fit 2 cores."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def trainer_cmd(data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    """`python -m trainer` with the tiny settings, `steps` steps and `extra` flags."""
    return [sys.executable, "-m", "trainer", "--data", str(data), "--out", str(out), "--steps", str(steps),
            *TINY_FLAGS, "--config", str(tiny_config(out.parent)), *extra]  # fmt: skip


def run_trainer(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a trainer command to completion from the repository root; fail the test with its output otherwise."""
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=trainer_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"trainer failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def step_losses(run_dir: Path) -> dict[int, float]:
    """Map step -> training loss from a run's metrics.jsonl, checking each step appears once."""
    losses: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "step":
            assert rec["step"] not in losses, f"step {rec['step']} logged twice in {run_dir}"
            losses[rec["step"]] = rec["loss"]
    return losses
