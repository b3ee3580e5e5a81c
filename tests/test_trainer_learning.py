"""Acceptance 3, as a slow test: on shards that `pipelines.tokenize` makes, the tiny preset's validation loss falls
by >= 30%. On the shared corpora within 300 CPU steps (with the preset's lr 1e-3: 10.84 -> 7.39 by step 200 here,
32%; CPU runs are deterministic, so this is a fixed result per torch build, not a noisy one). On the built-in web
text, whose articles come from a small vocabulary and so are learnt faster, within 60 steps (10.84 -> 7.12 at
step 60 here, 34%)."""

from __future__ import annotations

import json
import sys

import pytest

from pipelines.tokenize import run_tokenize
from tests.conftest import SOURCES
from tests.trainer_helpers import run_trainer

CORPORA_INPUTS = [
    "web-text.jsonl.gz",
    "dolma/multiple_files",
    "c4-samples/c4_100_domains_5_www.theguardian.com_00000000.jsonl.gz",
]
STEPS = {"builtin": 60, "corpora": 300}


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_tiny_model_learns_web_text(source, request, tmp_path):
    if source == "builtin":
        inputs = [str(request.getfixturevalue("builtin_text").path)]
    else:
        inputs = [str(request.getfixturevalue("corpora") / p) for p in CORPORA_INPUTS]
    shards = tmp_path / "shards"
    run_tokenize(inputs, shards, shard_tokens=500_000, val_tokens=30_000, seed=0)
    out = tmp_path / "run"
    steps, every = STEPS[source], STEPS[source] // 3
    cmd = [sys.executable, "-m", "trainer", "--data", str(shards), "--out", str(out), "--model", "tiny",
           "--steps", str(steps), "--eval-every", str(every), "--ckpt-every", "0"]  # fmt: skip
    run_trainer(cmd, timeout=900)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = {r["step"]: r["val_loss"] for r in records if r["type"] == "eval"}
    assert sorted(curve) == [0, every, 2 * every, steps]
    assert curve[steps] <= 0.7 * curve[0], f"validation loss fell only from {curve[0]:.3f} to {curve[steps]:.3f}"
