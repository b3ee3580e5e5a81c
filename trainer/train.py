"""The training loop: GPT-2 on token shards, one process or many under torchrun, resumable to the step.

Recipe (GPT-3 paper, appendix B, as llm.c and nanoGPT use it for GPT-2): AdamW with betas (0.9, 0.95) and
weight decay 0.1 on matrices and embeddings only (tensors with dim >= 2; biases and LayerNorm gains are not
decayed), linear warmup, then cosine decay to 10% of the peak learning rate, gradient clipping at norm 1.0.
Gradient accumulation makes the optimizer batch `batch_tokens = micro_batch x seq_len x world_size x
accum`; DDP all-reduces gradients only on the last micro step. On CUDA: bf16 autocast, TF32 matmuls, fused
AdamW and, by default, torch.compile; on CPU everything is fp32.

Each step prints one line in llm.c's format and appends it to `RUN_DIR/metrics.jsonl` (also TensorBoard
when installed). The step time covers the whole step, data loading included. MFU is
`flops_per_token x tokens/s / (peak FLOP/s x GPUs)` with llm.c's FLOP count (`model.gpt2.flops_per_token`);
it is "n/a" where the device's peak is unknown (CPUs).

SIGTERM or SIGINT ends the current step, writes a checkpoint and returns with status "interrupted"
(`python -m trainer` then exits 143 or 130); rerunning into the same RUN_DIR resumes from the newest
checkpoint, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from model.gpt2 import GPT, GPTConfig, config_from_preset, export_hf, flops_per_token, peak_flops
from model.sampling import sample_text
from pipelines.shards import write_json_atomic
from trainer import checkpoint as ckpt
from trainer import dist
from trainer.config import TrainConfig
from trainer.data import ShardSet, TrainLoader, describe, open_shards, val_batches
from trainer.evaluate import val_loss

REPO_ROOT = Path(__file__).resolve().parents[1]


class TrainError(ValueError):
    """A run that cannot start (bad settings for this model or world size); raised before step 1."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based `step`: linear warmup to `cfg.lr`, then cosine down to `min_lr_frac x lr`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    min_lr = cfg.lr * cfg.min_lr_frac
    decay_steps = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / decay_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on tensors of dim >= 2 only; fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


def format_step(step: int, steps: int, rec: dict[str, Any]) -> str:
    """One log line in llm.c's format, e.g. `step  540/32000 | loss 4.123456 | ... | 150234 tok/s`."""
    mfu = f"{rec['mfu']:.1f}%" if rec["mfu"] is not None else "n/a"
    return (
        f"step {step:4d}/{steps} | loss {rec['loss']:.6f} | norm {rec['norm']:.4f} | lr {rec['lr']:.2e} | "
        f"{rec['ms']:.2f} ms | {mfu} MFU | {rec['tok_per_s']:.0f} tok/s"
    )


def git_commit() -> str | None:
    """The git commit of the FineForge checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _record_step(line: str) -> float:
    """The step of a metrics.jsonl line; infinity for a line cut short by a kill (so that it is dropped)."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


class MetricsLog:
    """metrics.jsonl (one JSON object per event) plus TensorBoard scalars when available; rank 0 only."""

    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool):
        """Open the log, dropping records after `resume_step` left by a run that was killed after them."""
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines() if _record_step(ln) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tb = None
            else:
                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        """Append one event and mirror its numbers to TensorBoard."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("type", "step") and isinstance(value, int | float):
                    self.tb.add_scalar(f"{record['type']}/{key}", value, record["step"])
            if record["type"] == "sample":
                self.tb.add_text(f"sample/{record['prompt']}", record["text"], record["step"])

    def close(self) -> None:
        """Flush and close."""
        self.file.close()
        if self.tb is not None:
            self.tb.close()


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


def run_record(cfg: TrainConfig, shards: ShardSet, model: GPT, info: dist.DistInfo, resumed: Path | None) -> dict:
    """The lineage part of run.json: what was trained on (manifest and its source), how, and by which code."""
    manifest = shards.manifest
    return {
        "status": "running",
        "run_dir": str(Path(cfg.out).resolve()),
        "manifest": {
            "path": str(shards.manifest_path),
            "sha256": shards.manifest_sha256,
            "config_hash": manifest.get("config_hash"),  # the tokenize settings' hash, when recorded
        },
        "source": {k: (manifest.get("source") or {}).get(k) for k in ("run_id", "config_hash")},
        "config": cfg.model_dump(),
        "model_config": model.config.to_dict(),
        "num_params": model.num_params(),
        "world_size": info.world_size,
        "device": str(info.device),
        "fineforge_version": metadata.version("fineforge"),
        "git_commit": git_commit(),
        "started": datetime.now(UTC).isoformat(),
        "resumed_from": str(resumed) if resumed else None,
    }


def _restore(path: Path, model: GPT, optimizer, loader: TrainLoader, device: torch.device) -> tuple[int, float | None]:
    """Load a checkpoint into the model, optimizer, loader and RNGs; return (its step, its loss)."""
    state = ckpt.load_checkpoint(path, map_location=device)
    if state["model_config"] != model.config.to_dict():
        raise TrainError(f"{path}: checkpoint model {state['model_config']} differs from {model.config.to_dict()}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    loader.load_state_dict(state["loader"])
    ckpt.set_rng_state(state["rng"])
    return state["step"], state.get("loss")


def _check_same_data(run_dir: Path, shards: ShardSet) -> None:
    """Refuse to resume a run directory whose checkpoints were trained on another shard set."""
    try:
        recorded = json.loads((run_dir / "run.json").read_text())["manifest"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no lineage recorded (a checkpoint copied in by hand): nothing to compare against
    if recorded.get("sha256") != shards.manifest_sha256:
        raise TrainError(
            f"{run_dir}: its checkpoints were trained on {recorded.get('path')} (manifest sha256 "
            f"{recorded.get('sha256')}), not on {shards.manifest_path} (sha256 {shards.manifest_sha256}); "
            "train into a new --out to start a run on these shards"
        )


def _model_config(cfg: TrainConfig) -> GPTConfig:
    model_cfg = config_from_preset(cfg.model)
    if cfg.seq_len > model_cfg.block_size:
        raise TrainError(f"seq_len {cfg.seq_len} exceeds the context length {model_cfg.block_size} of {cfg.model!r}")
    return model_cfg


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train according to `cfg`, in this process or as one rank under torchrun.

    Args:
        cfg: the run configuration.

    Returns:
        Final metrics: {"status", "step", "loss", "val_loss", "tok_per_s", "run_dir", "checkpoint"}.

    Raises:
        TrainError, ValueError: bad settings or data, before the first step.
    """
    info = dist.init(cfg.device)
    try:
        return _train(cfg, info)
    finally:
        dist.cleanup()


def _train(cfg: TrainConfig, info: dist.DistInfo) -> dict[str, Any]:
    accum = cfg.grad_accum(info.world_size)
    model_cfg = _model_config(cfg)
    shards = open_shards(cfg.data, model_cfg.vocab_size, checksums=cfg.verify_checksums)
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    device, cuda = info.device, info.device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    _seed_everything(cfg.seed)
    raw = GPT(model_cfg).to(device)
    optimizer = make_optimizer(raw, cfg, device)
    loader = TrainLoader(shards.train, cfg.seq_len, cfg.micro_batch, info.rank, info.world_size, cfg.seed)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest:
        _check_same_data(run_dir, shards)
    start_step, loss_value = _restore(latest, raw, optimizer, loader, device) if latest else (0, None)

    model: nn.Module = raw
    if cfg.compile if cfg.compile is not None else cuda:
        model = torch.compile(model)
    if info.distributed:
        model = DDP(model, device_ids=[info.local_rank] if cuda else None)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    val = val_batches(shards.val, cfg.seq_len, cfg.micro_batch, cfg.eval_tokens, info.rank, info.world_size)
    peak = peak_flops(device)
    flops_tok = flops_per_token(model_cfg, cfg.seq_len)

    run: dict[str, Any] = {}
    log = None
    if info.is_main:
        dist.print0(describe(shards))
        dist.print0(
            f"model {cfg.model}: {raw.num_params() / 1e6:.2f}M params | world {info.world_size} | "
            f"grad accum {accum} | device {device}" + (f" | resuming from {latest}" if latest else "")
        )
        dist.print0(cfg.to_yaml(), end="")
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        run = run_record(cfg, shards, raw, info, latest)
        write_json_atomic(run_dir / "run.json", run)
        log = MetricsLog(run_dir, start_step, cfg.tensorboard)

    def emit(record: dict[str, Any]) -> None:
        if log is not None:
            log.write(record)

    def evaluate(step: int) -> float | None:
        if not shards.val:
            return None
        loss = val_loss(model, val, info, autocast)
        dist.print0(f"step {step:4d}/{cfg.steps} | val loss {loss:.6f}")
        emit({"type": "eval", "step": step, "val_loss": loss})
        return loss

    def sample(step: int) -> None:
        if info.is_main:
            for i, prompt in enumerate(cfg.prompts):
                (text,) = sample_text(raw, prompt, num_samples=1, max_new_tokens=cfg.sample_tokens, seed=cfg.seed + i)
                dist.print0(f"step {step:4d}/{cfg.steps} | sample: {text!r}")
                emit({"type": "sample", "step": step, "prompt": prompt, "text": text})
        dist.barrier(info)

    def save(step: int, loss: float | None) -> Path | None:
        path = None
        if info.is_main:
            state = {
                "model": raw.state_dict(),
                "model_config": model_cfg.to_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "loss": loss,
                "loader": loader.state_dict(),
                "rng": ckpt.rng_state(),
                "config": cfg.model_dump(),
            }
            path = ckpt.save_checkpoint(run_dir, state, cfg.keep_checkpoints)
        dist.barrier(info)
        return path

    stop = StopFlag()
    status, step, last_val, last_ckpt, rates = "completed", start_step, None, latest, []
    try:
        if start_step == 0 and cfg.eval_every:
            last_val = evaluate(0)
        for step in range(start_step + 1, cfg.steps + 1):
            t0 = time.perf_counter()
            lr = lr_at(step - 1, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(accum):
                x, y = loader.next_batch()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                last = micro == accum - 1
                with model.no_sync() if info.distributed and not last else contextlib.nullcontext():  # sync once
                    with autocast():
                        _, loss = model(x, y)
                        loss = loss / accum
                    loss_sum += loss.detach()
                    loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip if cfg.grad_clip else math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            reduced = [loss_sum.item(), float(stop.signum)]
            if info.distributed:
                reduced = dist.all_reduce_sum(reduced, info)
                reduced[0] /= info.world_size
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            loss_value, tok_per_s = reduced[0], cfg.batch_tokens / dt
            rates.append(tok_per_s)
            mfu = 100.0 * flops_tok * tok_per_s / (peak * info.world_size) if peak else None
            rec = {
                "type": "step",
                "step": step,
                "loss": loss_value,
                "norm": norm.item(),
                "lr": lr,
                "ms": dt * 1000.0,
                "mfu": mfu,
                "tok_per_s": tok_per_s,
            }
            dist.print0(format_step(step, cfg.steps, rec))
            emit(rec)
            if reduced[1]:  # a signal on any rank: checkpoint at once (the supervisor's grace period is short)
                status = "interrupted"
                last_ckpt = save(step, loss_value)
                dist.print0(f"stopped by signal at step {step}; checkpoint {last_ckpt}")
                break
            final = step == cfg.steps
            if (cfg.eval_every and step % cfg.eval_every == 0) or final:
                last_val = evaluate(step)
            if (cfg.sample_every and step % cfg.sample_every == 0) or final:
                sample(step)
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or final:
                last_ckpt = save(step, loss_value)
        if status == "completed" and cfg.hf_export and info.is_main:
            export_hf(raw, run_dir / "hf")
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
            "step": step,
            "loss": loss_value,
            "val_loss": last_val,
            "tok_per_s": float(np.median(rates)) if rates else None,
            "run_dir": str(run_dir),
            "checkpoint": str(last_ckpt) if last_ckpt else None,
            "signal": stop.signum or None,
        }
        if info.is_main:
            write_json_atomic(run_dir / "run.json", {**run, **result, "finished": datetime.now(UTC).isoformat()})
    return result
