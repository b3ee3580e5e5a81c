"""The training loop: GPT-2 on token shards, one process or many under torchrun, resumable to the step.

`train(cfg)` opens and verifies the shards, builds a `Trainer` (model, optimizer, loader: `trainer.trainer`),
resumes from the newest checkpoint in the run directory if there is one (refusing a run directory trained on
other shards), then loops: one optimizer step, reported as one llm.c-style line (`trainer.metrics`), with
validation, samples and checkpoints every N steps and at the end. Rank 0 writes `run.json` (lineage and final
status, `trainer.lineage`), `config.yaml`, `metrics.jsonl`, checkpoints and, when done, the Hugging Face export.

SIGTERM or SIGINT ends the current step, writes a checkpoint and returns with status "interrupted"
(`python -m trainer` then exits 143 or 130); rerunning into the same RUN_DIR resumes from the newest
checkpoint, bit for bit on CPU.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.run_record import write_run
from trainer import checkpoint as ckpt
from trainer import dist
from trainer.config import TrainConfig
from trainer.data import describe, open_shards
from trainer.hf import export_hf
from trainer.lineage import check_same_data, run_record
from trainer.metrics import MetricsLog, Reporter
from trainer.trainer import Trainer, TrainError, lr_at, make_optimizer, model_config

__all__ = ["TrainError", "lr_at", "make_optimizer", "train"]


class StopFlag:
    """Records SIGTERM/SIGINT so the loop can finish the step, checkpoint and leave."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum

    def restore(self) -> None:
        """Put the previous handlers back."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _due(every: int, step: int, final: bool) -> bool:
    return bool(every and step % every == 0) or final


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train according to `cfg`, in this process or as one rank under torchrun.

    Args:
        cfg: the run configuration.

    Returns:
        Final metrics: {"status", "step", "loss", "val_loss", "tok_per_s", "run_dir", "checkpoint", "signal"}.

    Raises:
        TrainError, ValueError: bad settings or data, before the first step.
    """
    info = dist.init(cfg.device)
    try:
        return _train(cfg, info)
    finally:
        dist.cleanup()


def _train(cfg: TrainConfig, info: dist.DistInfo) -> dict[str, Any]:
    cfg.grad_accum(info.world_size)  # bad settings fail before the data is read
    shards = open_shards(cfg.data, model_config(cfg).vocab_size, checksums=cfg.verify_checksums)
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest:
        check_same_data(run_dir, shards.manifest_path, shards.manifest_sha256)
    trainer = Trainer(cfg, info, shards)
    if latest:
        try:
            trainer.load_state_dict(ckpt.load_checkpoint(latest, map_location=info.device))
        except TrainError as e:
            raise TrainError(f"{latest}: {e}") from None

    run: dict[str, Any] = {}
    log = None
    if info.is_main:
        dist.print0(describe(shards))
        dist.print0(
            f"model {cfg.model}: {trainer.raw.num_params() / 1e6:.2f}M params | world {info.world_size} | "
            f"grad accum {trainer.accum} | device {info.device}" + (f" | resuming from {latest}" if latest else "")
        )
        dist.print0(cfg.to_yaml(), end="")
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        extra = {
            "model_config": trainer.model_config.to_dict(),
            "num_params": trainer.raw.num_params(),
            "world_size": info.world_size,
            "device": str(info.device),
            "resumed_from": str(latest) if latest else None,
        }
        run = run_record(cfg.model_dump(), shards.manifest_path, shards.manifest_sha256, shards.manifest, extra)
        write_run(run_dir, run)
        log = MetricsLog(run_dir, trainer.step, cfg.tensorboard)
    report = Reporter(cfg.steps, log)

    stop = StopFlag()
    status, last_val, last_ckpt, rates = "completed", None, latest, []
    try:
        if trainer.step == 0 and cfg.eval_every and (event := trainer.evaluate()):
            report(event)
            last_val = event["val_loss"]
        while trainer.step < cfg.steps:
            record, stop_requested = trainer.train_step(stop.signum)
            rates.append(record["tok_per_s"])
            report(record)
            if stop_requested:  # a signal on any rank: checkpoint at once (the supervisor's grace period is short)
                status = "interrupted"
                last_ckpt = trainer.save(run_dir)
                dist.print0(f"stopped by signal at step {trainer.step}; checkpoint {last_ckpt}")
                break
            final = trainer.step == cfg.steps
            if _due(cfg.eval_every, trainer.step, final) and (event := trainer.evaluate()):
                report(event)
                last_val = event["val_loss"]
            if _due(cfg.sample_every, trainer.step, final):
                for event in trainer.sample():
                    report(event)
            if _due(cfg.ckpt_every, trainer.step, final):
                last_ckpt = trainer.save(run_dir)
        if status == "completed" and cfg.hf_export and info.is_main:
            export_hf(trainer.raw, run_dir / "hf")
    except BaseException as e:
        status = "failed"
        run["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        stop.restore()
        if log is not None:
            log.close()
        result = {
            "status": status,
            "step": trainer.step,
            "loss": trainer.loss,
            "val_loss": last_val,
            "tok_per_s": float(np.median(rates)) if rates else None,
            "run_dir": str(run_dir),
            "checkpoint": str(last_ckpt) if last_ckpt else None,
            "signal": stop.signum or None,
        }
        if info.is_main:
            write_run(run_dir, {**run, **result, "finished": datetime.now(UTC).isoformat()})
    return result
