"""The demo's training run is smooth (issue 20): no loss spike a newcomer would see in the report.

With the `tiny` preset's old recipe the demo run (`fineforge demo`: 300 steps of 512 tokens on the demo crawl's
shards) spiked once at step 72 to a train loss of 18.6 (from a running minimum of 5.1, grad norm 30.8) and fell
back at the next step: the update of step 71 left a model that scored every batch at 16-19. This test trains the
demo's first `STEPS` steps exactly as the demo does (its shards, model, seed and 300-step schedule; the spike
reproduced at the same step, with the same loss, in-process) and bounds every later step's loss by the running
minimum and every gradient norm. About 80 CPU-seconds: curate and tokenize of the demo crawl, then 80 steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestration.demo import DEMO_MODEL, DEMO_STEPS, SHARD_TOKENS, VAL_TOKENS
from orchestration.demo_data import write_demo_crawl
from pipelines.common.stage import run_stage
from pipelines.curate import CurateConfig, CurateStage
from pipelines.tokenize import TokenizeSettings, TokenizeStage
from trainer import dist
from trainer.config import build_config
from trainer.data import open_shards
from trainer.trainer import Trainer, model_config

STEPS = 80  # the old recipe spiked at step 72
SETTLED = 30  # steps after which the warmup (20 steps) is over and the loss is falling steadily
MAX_RISE = 1.0  # nats above the running minimum; batch-to-batch noise here is about 0.3
MAX_NORM = 15.0  # pre-clip gradient norm: at most 8.6 (step 74) with lr 1e-3, 30.8 at the old spike


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory) -> Path:
    """The demo's shards: the demo crawl, curated and tokenized with `fineforge demo`'s settings."""
    root = tmp_path_factory.mktemp("demo")
    truth = write_demo_crawl(root / "crawl")
    inputs = [str(root / "crawl" / name) for name in truth["files"]]
    run_stage(CurateStage(CurateConfig(), inputs, root / "curated"))
    settings = TokenizeSettings(shard_tokens=SHARD_TOKENS, val_tokens=VAL_TOKENS)
    run_stage(TokenizeStage([str(root / "curated")], root / "shards", settings))
    return root / "shards"


def test_demo_training_has_no_loss_spike(demo_shards: Path, tmp_path: Path, one_thread) -> None:
    cfg = build_config({"data": str(demo_shards), "out": str(tmp_path), "model": DEMO_MODEL, "steps": DEMO_STEPS})
    trainer = Trainer(
        cfg, dist.DistInfo(0, 0, 1, torch.device("cpu")), open_shards(cfg.data, model_config(cfg).vocab_size)
    )
    records = [trainer.train_step(0)[0] for _ in range(STEPS)]
    losses = [r["loss"] for r in records]
    assert losses[-1] < losses[0] - 4  # it learns: 10.8 -> about 5.3 by step 80
    for i in range(SETTLED, STEPS):
        rise = losses[i] - min(losses[:i])
        assert rise < MAX_RISE, f"step {i + 1}: loss {losses[i]:.2f}, {rise:.2f} above the running minimum"
    norms = [r["norm"] for r in records[SETTLED:]]
    assert max(norms) < MAX_NORM, f"grad norms after step {SETTLED}: max {max(norms):.1f}"
