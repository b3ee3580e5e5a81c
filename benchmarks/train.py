"""Trainer throughput against a bare training loop, side by side in one run.

The bare loop is the least a training step can do: the same model, optimizer (`trainer.train.make_optimizer`),
micro batch, gradient accumulation, clipping, autocast and torch.compile setting, but tokens already in
device memory, no data loader, no logging, no checkpoints. The trainer runs through `trainer.train.train` on
shards of synthetic tokens written to a temporary folder (validation, samples and checkpoints only at the
end, outside the timed steps). Both record per-step tokens/s after `--warmup-steps` steps and alternate
`--repeat` times so that other load on the machine hits both. Reported: the median and the best step of
each (other load only ever slows a step down, so the best step is the steadiest estimate on a shared
machine) and the ratios trainer / bare of both.

CPU (default): `python -m benchmarks.train` (tiny model, seq 128). Target ratio >= 0.95.
GPU: `python -m benchmarks.train --device cuda --repeat 1` (GPT-2 124M, bf16 autocast, torch.compile,
seq 1024, micro batch 32, 2 micro steps, 30 steps; each loop compiles once); prints tokens/s and MFU (llm.c's
FLOP count over the GPU's dense bf16 peak, `model.gpt2.peak_flops`). Needs only this
repository and torch; the tokens are synthetic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from model.gpt2 import GPT, config_from_preset, flops_per_token, peak_flops
from model.tokenizer import EOT_TOKEN, VOCAB_SIZE
from pipelines.shards import Manifest, shard_name, write_manifest, write_shard
from trainer.config import TrainConfig
from trainer.train import make_optimizer, train

SETTINGS = {
    "cpu": dict(model="tiny", seq_len=128, micro_batch=4, accum=2, steps=12),
    "cuda": dict(model="gpt2", seq_len=1024, micro_batch=32, accum=2, steps=30),
}


def token_shards(directory: Path, splits: dict[str, np.ndarray], source: str) -> Path:
    """Write one shard per split (`{"train": tokens, "val": tokens}`) plus a manifest; return the directory.

    Args:
        directory: where the shards go (created if needed).
        splits: uint16 token stream of each split; documents are counted by their EOT tokens (at least 1).
        source: what the tokens are, recorded as the manifest's `source.path`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shards = []
    for split, tokens in splits.items():
        name = shard_name(split, 0)
        sha, docs = write_shard(directory / name, tokens), max(1, int((tokens == EOT_TOKEN).sum()))
        shards.append(dict(path=name, split=split, tokens=int(tokens.size), documents=docs, sha256=sha))
    write_manifest(
        directory,
        Manifest.model_validate({
            "format": "llm.c-gpt2-v1", "tokenizer": "gpt2", "vocab_size": VOCAB_SIZE, "eot": EOT_TOKEN,
            "source": {"path": source, "run_id": None, "config_hash": None}, "shards": shards,
            "total_tokens": {s["split"]: s["tokens"] for s in shards},
            "documents": {s["split"]: s["documents"] for s in shards}, "created": source,
        }),
    )  # fmt: skip
    return directory


def synthetic_shards(directory: Path, train_tokens: int, seed: int = 0) -> Path:
    """Write one train and one val shard of uniform random tokens plus a manifest; return the directory."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", train_tokens), ("val", 16_384)):
        splits[split] = rng.integers(0, VOCAB_SIZE, n, dtype=np.uint16)
        splits[split][0] = EOT_TOKEN
    return token_shards(directory, splits, "synthetic")


def bare_loop(cfg: TrainConfig, accum: int, device: torch.device, warmup: int) -> tuple[float, list[float]]:
    """Time the bare loop; return its per-step tokens/s after the warmup steps."""
    torch.manual_seed(cfg.seed)
    model = GPT(config_from_preset(cfg.model)).to(device)
    optimizer = make_optimizer(model, cfg, device)
    step_model = torch.compile(model) if cfg.compile else model
    cuda = device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    pool = torch.randint(0, VOCAB_SIZE, (8, cfg.micro_batch, cfg.seq_len + 1), device=device)
    pool = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in pool]  # (B, T) inputs and targets
    rates = []
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr
        for micro in range(accum):
            x, y = pool[(step * accum + micro) % len(pool)]
            with autocast():
                _, loss = step_model(x, y)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the trainer reads the loss every step too
        if cuda:
            torch.cuda.synchronize()
        rates.append(cfg.batch_tokens / (time.perf_counter() - t0))
    return rates[warmup:]


def trainer_run(cfg: TrainConfig, warmup: int) -> tuple[float, list[float]]:
    """Run the real trainer; return its per-step tokens/s after the warmup steps, from its metrics.jsonl."""
    train(cfg)
    records = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tok_per_s"] for r in records if r["type"] == "step"]
    return rates[warmup:]


def main() -> None:
    """Parse flags, run both loops alternately, print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", help="model preset (default: tiny on CPU, gpt2 on CUDA)")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--micro-batch", type=int)
    parser.add_argument("--accum", type=int, help="micro steps per optimizer step")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps left out at the start")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    s = {**SETTINGS[args.device], **{k: v for k, v in vars(args).items() if k in SETTINGS["cpu"] and v is not None}}
    device = torch.device(args.device)
    compile_ = args.compile if args.compile is not None else args.device == "cuda"
    batch_tokens = s["micro_batch"] * s["seq_len"] * s["accum"]
    results: dict[str, list[float]] = {"bare": [], "trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_shards(Path(tmp), train_tokens=(s["steps"] + 2) * batch_tokens + s["seq_len"] + 1)
        for r in range(args.repeat):
            cfg = TrainConfig(
                data=str(data), out=f"{tmp}/run{r}", model=s["model"], steps=s["steps"], batch_tokens=batch_tokens,
                micro_batch=s["micro_batch"], seq_len=s["seq_len"], warmup=0, eval_every=0, eval_tokens=s["seq_len"],
                sample_every=0, sample_tokens=1, prompts=["Hi"], ckpt_every=0, keep_checkpoints=1, compile=compile_,
                device=args.device, hf_export=False, tensorboard=False,
            )  # fmt: skip
            results["bare"] += bare_loop(cfg, s["accum"], device, args.warmup_steps)
            results["trainer"] += trainer_run(cfg, args.warmup_steps)
    median = {k: statistics.median(v) for k, v in results.items()}
    best = {k: max(v) for k, v in results.items()}
    model_cfg = config_from_preset(s["model"])
    peak = peak_flops(device)
    flops = flops_per_token(model_cfg, s["seq_len"])
    mfu = {k: round(100 * flops * v / peak, 2) for k, v in median.items()} if peak else None
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), **s, "batch_tokens": batch_tokens,
        "compile": compile_, "steps_timed": {k: len(v) for k, v in results.items()},
        "median_tok_per_s": {k: round(v, 1) for k, v in median.items()},
        "best_tok_per_s": {k: round(v, 1) for k, v in best.items()},
        "ratio_median": round(median["trainer"] / median["bare"], 4),
        "ratio_best": round(best["trainer"] / best["bare"], 4),
        "mfu_percent_median": mfu,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
