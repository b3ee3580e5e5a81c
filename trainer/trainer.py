"""The Trainer: the parts of one training run, built once, with one method per job.

`train_step` runs one optimizer step (gradient accumulation, DDP all-reduce on the last micro step only,
clipping, AdamW), `evaluate` the validation loss, `sample` the fixed prompts; `state_dict` and
`load_state_dict` define what a checkpoint holds, in one place: model weights (unwrapped), model config,
optimizer, step, last loss, the loader's position, the RNG states and the trainer config. The loop that calls
them is `trainer.train.train`.

Recipe (GPT-3 paper, appendix B, as llm.c and nanoGPT use it for GPT-2): AdamW with betas (0.9, 0.95) and
weight decay 0.1 on matrices and embeddings only (tensors with dim >= 2; biases and LayerNorm gains are not
decayed), linear warmup, then cosine decay to 10% of the peak learning rate, gradient clipping at norm 1.0.
Gradient accumulation makes the optimizer batch `batch_tokens = micro_batch x seq_len x world_size x accum`.
On CUDA: bf16 autocast, TF32 matmuls, fused AdamW and, by default, torch.compile; on CPU everything is fp32
unless `dtype: bfloat16` asks for CPU autocast (the same code path, so the tests exercise it without a GPU).
MFU is `flops_per_token x tokens/s / (peak FLOP/s x GPUs)` with llm.c's FLOP count; "n/a" where the device's
peak is unknown (CPUs). The step time covers the whole step, data loading included.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from model.gpt2 import GPT, GPTConfig, config_from_preset, flops_per_token, peak_flops
from model.sampling import sample_text
from trainer import checkpoint as ckpt
from trainer import dist
from trainer.config import TrainConfig
from trainer.data import ShardSet, TrainLoader, val_batches
from trainer.evaluate import val_loss, val_sums
from trainer.weights import unwrap_key


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


def model_config(cfg: TrainConfig) -> GPTConfig:
    """The model shape of the run's preset, checked against its sequence length.

    Raises:
        TrainError: seq_len is longer than the model's context.
    """
    model_cfg = config_from_preset(cfg.model)
    if cfg.seq_len > model_cfg.block_size:
        raise TrainError(f"seq_len {cfg.seq_len} exceeds the context length {model_cfg.block_size} of {cfg.model!r}")
    return model_cfg


def autocast_context(device: torch.device, dtype: str) -> Callable[[], contextlib.AbstractContextManager]:
    """Return a factory of the forward pass's autocast context: bf16 for "bfloat16" (or "auto" on CUDA), else none."""
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the initialisation and anything else drawn from the global streams)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Model, optimizer, loader and validation batches of one run on one rank.

    Args:
        cfg: the run configuration.
        info: this process's place in the job.
        shards: the verified shard set.
    """

    def __init__(self, cfg: TrainConfig, info: dist.DistInfo, shards: ShardSet):
        self.cfg, self.info = cfg, info
        self.device = info.device
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model_config = model_config(cfg)
        self.accum = cfg.grad_accum(info.world_size)
        seed_everything(cfg.seed)
        self.raw = GPT(self.model_config).to(self.device)
        self.optimizer = make_optimizer(self.raw, cfg, self.device)
        self.loader = TrainLoader(shards.train, cfg.seq_len, cfg.micro_batch, info.rank, info.world_size, cfg.seed)
        self.has_val = bool(shards.val)
        self.val = val_batches(shards.val, cfg.seq_len, cfg.micro_batch, cfg.eval_tokens, info.rank, info.world_size)
        share = max(1, cfg.eval_tokens // max(1, len(shards.val_by_source)))  # a mixture: the same tokens in all
        self.val_by_source = {
            name: val_batches(maps, cfg.seq_len, cfg.micro_batch, share, info.rank, info.world_size)
            for name, maps in shards.val_by_source.items()
        }
        self.model: nn.Module = (
            torch.compile(self.raw) if (cfg.compile if cfg.compile is not None else cuda) else self.raw
        )
        if info.distributed:
            self.model = DDP(self.model, device_ids=[info.local_rank] if cuda else None)
        self.autocast = autocast_context(self.device, cfg.dtype)
        self.peak_flops = peak_flops(self.device)
        self.flops_per_token = flops_per_token(self.model_config, cfg.seq_len)
        self.step = 0
        self.loss: float | None = None

    def train_step(self, stop_signal: int = 0) -> tuple[dict[str, Any], bool]:
        """Run the next optimizer step.

        Args:
            stop_signal: a signal this rank received (0: none); all ranks learn whether any rank got one.

        Returns:
            The step's record (`type` "step", step, loss, norm, lr, ms, mfu, tok_per_s) and whether any rank
            was asked to stop.
        """
        cfg, info = self.cfg, self.info
        t0 = time.perf_counter()
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(self.accum):
            x, y = self.loader.next_batch()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            sync = not info.distributed or micro == self.accum - 1
            with contextlib.nullcontext() if sync else self.model.no_sync():  # all-reduce once per step
                with self.autocast():
                    _, loss = self.model(x, y)
                    loss = loss / self.accum
                loss_sum += loss.detach()
                loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.grad_clip if cfg.grad_clip else math.inf)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        reduced = dist.all_reduce_sum([loss_sum.item(), float(stop_signal)], info)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        self.step += 1
        self.loss = reduced[0] / info.world_size
        tok_per_s = cfg.batch_tokens / dt
        mfu = (
            100.0 * self.flops_per_token * tok_per_s / (self.peak_flops * info.world_size) if self.peak_flops else None
        )
        record = {
            "type": "step",
            "step": self.step,
            "loss": self.loss,
            "norm": norm.item(),
            "lr": lr,
            "ms": dt * 1000.0,
            "mfu": mfu,
            "tok_per_s": tok_per_s,
        }
        return record, bool(reduced[1])

    def evaluate(self) -> dict[str, Any] | None:
        """Return the validation event (mean loss over all ranks' batches), or None without a val split.

        On a mixture (`val_by_source`) each source's val shards are scored apart on an equal share of
        `eval_tokens`: the event adds `val_loss_by_source` {name: loss}, and `val_loss` is the mean over all of them.
        """
        if not self.has_val:
            return None
        if not self.val_by_source:
            return {
                "type": "eval",
                "step": self.step,
                "val_loss": val_loss(self.model, self.val, self.info, self.autocast),
            }
        sums = {name: val_sums(self.model, b, self.info, self.autocast) for name, b in self.val_by_source.items()}
        return {
            "type": "eval",
            "step": self.step,
            "val_loss": sum(t for t, _ in sums.values()) / max(1.0, sum(c for _, c in sums.values())),
            "val_loss_by_source": {name: total / max(count, 1.0) for name, (total, count) in sums.items()},
        }

    def sample(self) -> list[dict[str, Any]]:
        """Return one sample event per prompt (rank 0 samples; other ranks wait and return nothing)."""
        events = []
        if self.info.is_main:
            for i, prompt in enumerate(self.cfg.prompts):
                (text,) = sample_text(
                    self.raw, prompt, num_samples=1, max_new_tokens=self.cfg.sample_tokens, seed=self.cfg.seed + i
                )
                events.append({"type": "sample", "step": self.step, "prompt": prompt, "text": text})
        dist.barrier(self.info)
        return events

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs: the contents of a checkpoint."""
        return {
            "model": self.raw.state_dict(),
            "model_config": self.model_config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "loss": self.loss,
            "loader": self.loader.state_dict(),
            "rng": ckpt.rng_state(),
            "config": self.cfg.model_dump(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's contents; model keys may carry the `_orig_mod.` or `module.` prefixes of a state
        dict saved from a torch.compile'd or DDP-wrapped model.

        Raises:
            TrainError: the checkpoint holds another model shape.
        """
        if state["model_config"] != self.model_config.to_dict():
            raise TrainError(f"checkpoint model {state['model_config']} differs from {self.model_config.to_dict()}")
        self.raw.load_state_dict({unwrap_key(k): v for k, v in state["model"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.loss = state["step"], state.get("loss")

    def save(self, run_dir) -> Any:
        """Write a checkpoint of the current state (rank 0) and wait for every rank; return its path on rank 0."""
        path = (
            ckpt.save_checkpoint(run_dir, self.state_dict(), self.cfg.keep_checkpoints) if self.info.is_main else None
        )
        dist.barrier(self.info)
        return path
