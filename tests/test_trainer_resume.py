"""Acceptance 2: a run killed with SIGKILL at step 12 of 30 and rerun into the same directory continues
bit for bit (CPU); SIGTERM checkpoints and exits 143 (what the Prefect flow's cancellation relies on)."""

from __future__ import annotations

import json
import signal
import subprocess

import torch

from model.tokenizer import VOCAB_SIZE
from tests.trainer_helpers import REPO_ROOT, run_trainer, step_losses, trainer_cmd, trainer_env
from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.data import TrainLoader, open_shards

STEPS = 30


def test_loader_position_restores_exactly_across_epochs(trainer_shards):
    train = open_shards(trainer_shards, VOCAB_SIZE).train

    def make(seed: int) -> TrainLoader:
        return TrainLoader(train, seq_len=2048, micro_batch=8, rank=0, world_size=1, seed=seed)

    a = make(3)
    per_epoch = sum(a.n_windows) // 8  # whole batches in one epoch (22 on the built-in text)
    assert per_epoch >= 10
    epoch0 = [a.next_batch()[0] for _ in range(per_epoch + 8)]  # crosses into epoch 1
    state = a.state_dict()
    assert state["epoch"] == 1
    b = make(3)
    b.load_state_dict(state)
    assert all(a.next_batch()[0].equal(b.next_batch()[0]) for _ in range(30))
    again = make(3)
    assert all(again.next_batch()[0].equal(x) for x in epoch0)  # same seed, same order
    assert not make(4).next_batch()[0].equal(epoch0[0])  # another seed, another order
    windows = {tuple(row.tolist()) for x in epoch0[:per_epoch] for row in x}
    assert len(windows) == 8 * per_epoch  # no window twice within an epoch


def run_until(cmd: list[str], step: int, sig: int) -> int:
    """Start the trainer, send `sig` once it logs `step`, and return its exit code."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=trainer_env(), stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith(f"step {step:4d}/") and "| loss" in line:
                proc.send_signal(sig)
                break
        proc.stdout.read()
        return proc.wait(timeout=120)
    finally:
        proc.kill()


def test_sigkill_then_resume_is_bitwise_identical(trainer_shards, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_trainer(trainer_cmd(trainer_shards, ref, STEPS, "--ckpt-every", "4"))
    killed_cmd = trainer_cmd(trainer_shards, killed, STEPS, "--ckpt-every", "4")
    assert run_until(killed_cmd, 12, signal.SIGKILL) == -signal.SIGKILL
    resumed_at = list_checkpoints(killed)[-1][0]
    assert resumed_at in (8, 12)  # the step-12 checkpoint may or may not have been written before the kill
    run_trainer(killed_cmd)
    a, b = step_losses(ref), step_losses(killed)  # also checks that no step is logged twice after the resume
    assert sorted(b) == list(range(1, STEPS + 1))
    assert [b[s] for s in range(13, STEPS + 1)] == [a[s] for s in range(13, STEPS + 1)]
    run = json.loads((killed / "run.json").read_text())
    assert run["status"] == "completed" and run["resumed_from"].endswith(f"step_{resumed_at:06d}.pt")
    final_ref, final_killed = (
        load_checkpoint(list_checkpoints(ref)[-1][1]),
        load_checkpoint(list_checkpoints(killed)[-1][1]),
    )
    assert all(torch.equal(final_ref["model"][k], v) for k, v in final_killed["model"].items())
    assert [s for s, _ in list_checkpoints(killed)] == [24, 28, 30]  # the last 3 kept


def test_sigterm_checkpoints_and_exits_then_resumes(trainer_shards, tmp_path):
    out = tmp_path / "run"
    cmd = trainer_cmd(trainer_shards, out, 12, "--ckpt-every", "100")
    assert run_until(cmd, 3, signal.SIGTERM) == 128 + signal.SIGTERM
    run = json.loads((out / "run.json").read_text())
    stopped = run["step"]
    assert run["status"] == "interrupted" and stopped >= 3
    assert [s for s, _ in list_checkpoints(out)] == [stopped]  # saved on the signal, not by --ckpt-every
    ckpt = load_checkpoint(list_checkpoints(out)[-1][1])
    assert set(ckpt) >= {"model", "model_config", "optimizer", "step", "loader", "rng", "config"}
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["model"])
    run_trainer(cmd)
    assert sorted(step_losses(out)) == list(range(1, 13))
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert (out / "hf" / "config.json").is_file()


def test_sigterm_to_a_multi_process_launch_checkpoints_every_rank_out(trainer_shards, tmp_path):
    """`--nproc 2`: the launcher passes SIGTERM to torchrun, which passes it to both ranks; they agree on
    the step to stop at (the signal is all-reduced), rank 0 writes the checkpoint, and the exit code is 143."""
    out = tmp_path / "run"
    assert run_until(trainer_cmd(trainer_shards, out, 200, "--nproc", "2"), 3, signal.SIGTERM) == 128 + signal.SIGTERM
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["world_size"] == 2
    assert [s for s, _ in list_checkpoints(out)] == [run["step"]]
