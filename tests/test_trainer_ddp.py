"""Acceptance 1: 2-process DDP on CPU (torchrun, gloo) gives the losses of 1 process with the same global batch.

Also checks the loader contract behind it: ranks read disjoint windows whose union is the 1-process batch.
"""

from __future__ import annotations

import json

import pytest

from model.tokenizer import VOCAB_SIZE
from tests.trainer_helpers import run_trainer, step_losses, trainer_cmd
from trainer.data import TrainLoader, open_shards

STEPS = 20


def test_ranks_read_disjoint_windows_of_the_single_process_stream(trainer_shards):
    train = open_shards(trainer_shards, VOCAB_SIZE).train
    single = TrainLoader(train, seq_len=32, micro_batch=4, rank=0, world_size=1, seed=7)
    ranks = [TrainLoader(train, seq_len=32, micro_batch=2, rank=r, world_size=2, seed=7) for r in range(2)]
    for _ in range(5):
        x1, y1 = single.next_batch()
        (xa, ya), (xb, yb) = (loader.next_batch() for loader in ranks)
        assert x1[:2].equal(xa) and x1[2:].equal(xb) and y1[:2].equal(ya) and y1[2:].equal(yb)
        assert not xa.equal(xb)
        assert xa[:, 1:].equal(ya[:, :-1])  # targets are the inputs shifted by one token
    assert ranks[0].state_dict() == ranks[1].state_dict() == single.state_dict()


def test_two_process_ddp_matches_one_process(trainer_shards, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    batch = ["--batch-tokens", "256"]  # 4 micro batches of 2 x 32 tokens
    run_trainer(trainer_cmd(trainer_shards, single, STEPS, *batch))  # 1 process: 4 micro steps
    run_trainer(trainer_cmd(trainer_shards, ddp, STEPS, *batch, "--nproc", "2"))  # torchrun: 2 ranks x 2 micro steps
    a, b = step_losses(single), step_losses(ddp)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5), f"step {step}: 1 process {a[step]}, DDP {b[step]}"
    assert a[STEPS] < a[1]  # it learned something
    run = json.loads((ddp / "run.json").read_text())
    assert run["world_size"] == 2 and run["status"] == "completed"
