"""`fineforge demo`: the whole job end to end on the built-in demo crawl, offline, on a CPU, in about 2 minutes.

Stages, each into its own folder of OUT (the layout the report discovers by lineage):

1. `crawl/`: `write_demo_crawl` (about 230 records with planted boilerplate, spam, duplicates, one broken line).
2. `curated/`: `run_curate` with the default FineWeb config (about 100 documents survive).
3. `shards/`: `run_tokenize` into one train and one val shard (about 38k + 4k tokens).
4. `run/`: the `tiny` GPT-2 preset (3.3M parameters, mostly the 50,257 x 64 embedding) trained by
   `python -m trainer` in a subprocess, so torch, its threads and its signal handlers stay out of this
   process and the run is exactly what `fineforge train` would do. 300 steps of 512 tokens (the preset's
   own recipe) is about 4 passes over the train split; measured here on 2 shared cores at about 250 ms a step
   (75 s), with train loss falling from 10.9 to about 4 and val loss from 10.9 to about 4.
5. a few samples from the trained model (`model.sampling`), then `report.html` (`build_report` of the curated
   folder with the shards and the run).

Reruns are idempotent through each stage's own completion contract: the crawl is kept once its
`ground_truth.json` (written last) exists; curate and tokenize resume or return at once from their markers;
training is skipped when `run/run.json` says "completed" at the requested step count, and otherwise resumes
from its newest checkpoint (a larger `--steps` continues the run). The samples and the report are cheap and
always redone. Datatrove's per-task log (several hundred lines) goes to `OUT/curate.log`, the trainer's step
lines to `OUT/run/train.log`; the terminal shows every validation loss and a short summary per stage.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

DEMO_MODEL = "tiny"  # model.gpt2.PRESETS: 2 layers, 64 wide; trains in about a minute on 2 cores
DEMO_STEPS = 300  # trainer.config.TRAIN_PRESETS["tiny"]: val loss 10.9 -> about 4 on the demo corpus
SHARD_TOKENS = 1_000_000  # the demo corpus is about 42k tokens: one shard per split
VAL_TOKENS = 4096  # whole documents, about 10 of 100; eval_tokens of the tiny preset (8192) reads them all
DEMO_PROMPTS = ["In the spring", "The village library", "Every autumn the farmer"]  # the demo text's style
SAMPLE_TOKENS = 40


def _write_crawl(crawl_dir: Path) -> dict[str, Any]:
    truth_path = crawl_dir / "ground_truth.json"
    if truth_path.exists():  # written last by write_demo_crawl: the crawl is complete
        return json.loads(truth_path.read_text())
    from pipelines.demo_data import write_demo_crawl

    return write_demo_crawl(crawl_dir)


def _curate(inputs: list[str], curated: Path, log_path: Path) -> dict[str, Any]:
    """Run curate with datatrove's loguru output sent to `log_path` instead of the terminal.

    Datatrove logs outside tasks through loguru's current handlers and, per task, adds a handler on
    `sys.stderr` (`datatrove.utils.logging.add_task_logger`), so both are pointed at the file here.
    """
    from loguru import logger

    from pipelines.config import CurateConfig
    from pipelines.curate import run_curate

    with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        logger.remove()
        logger.add(log, level="INFO")
        try:
            return run_curate(CurateConfig(), inputs, curated)
        finally:
            logger.remove()  # drop handlers bound to the log file before it closes
            logger.add(sys.stderr)  # loguru's default handler again


def _train(shards: Path, run_dir: Path, steps: int, config_path: Path, console: Console) -> dict[str, Any]:
    """Train the demo model in a `python -m trainer` subprocess; print its validation losses as they come."""
    run_json = run_dir / "run.json"
    if run_json.exists():
        done = json.loads(run_json.read_text())
        if done.get("status") == "completed" and done.get("step") == steps:
            console.print(f"  training already completed ({steps} steps): {run_dir}")
            return done
    settings = {
        "model": DEMO_MODEL,
        "steps": steps,
        "eval_every": max(1, steps // 6),
        "sample_every": max(1, steps // 3),
        "ckpt_every": max(1, steps // 3),  # so an interrupted demo resumes near where it stopped
        "prompts": DEMO_PROMPTS,
        "device": "cpu",
        "tensorboard": False,
    }
    config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "trainer", "--data", str(shards), "--out", str(run_dir), "--config", str(config_path)]
    log_path = run_dir / "train.log"
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if "val loss" in line or "resuming from" in line:
                console.print("  " + line.rstrip(), markup=False, highlight=False)
        code = proc.wait()
    if code in (130, 143):  # 128 + SIGINT/SIGTERM: the trainer wrote a checkpoint first (trainer/launch.py)
        raise RuntimeError(f"training stopped by a signal; rerun the same command to resume it from {run_dir}")
    if code != 0:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"training failed (exit {code}): {' '.join(cmd)}\nlast lines of {log_path}:\n{tail}")
    return json.loads(run_json.read_text())


def _losses(metrics: Path) -> tuple[list[float], list[float]]:
    """Train losses of each step and validation losses of each evaluation, in file order."""
    train, val = [], []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("type") == "step":
            train.append(rec["loss"])
        elif rec.get("type") == "eval":
            val.append(rec["val_loss"])
    return train, val


def _print_samples(run_dir: Path, console: Console) -> None:
    from model.sampling import load_for_sampling, sample_text

    model = load_for_sampling(run_dir)
    for i, prompt in enumerate(DEMO_PROMPTS):
        (text,) = sample_text(model, prompt, num_samples=1, max_new_tokens=SAMPLE_TOKENS, temperature=0.8, seed=i)
        console.print(f"  [dim]sample {i}:[/] {text!r}", highlight=False)


def run_demo(out_dir: Path, steps: int = DEMO_STEPS, console: Console | None = None) -> dict[str, Path]:
    """Run crawl -> curate -> tokenize -> train -> samples -> report into `out_dir`, offline, on the CPU.

    Args:
        out_dir: output folder (crawl/, curated/, shards/, run/, report.html); rerunning resumes or skips.
        steps: optimizer steps of the demo training run (512 tokens each).
        console: where to print (default: a new stdout console).

    Returns:
        Paths of what was produced: crawl, curated, curate_summary, shards, manifest, run, run_json,
        metrics, hf, report.

    Raises:
        RuntimeError: the training subprocess failed (its log's last lines are in the message) or was
            stopped by a signal (a rerun resumes it).
    """
    from pipelines.report import print_summary, write_report
    from pipelines.tokenize import run_tokenize

    console = console or Console()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "crawl": out_dir / "crawl",
        "curated": out_dir / "curated",
        "shards": out_dir / "shards",
        "run": out_dir / "run",
        "report": out_dir / "report.html",
    }
    paths |= {
        "curate_summary": paths["curated"] / "summary.json",
        "manifest": paths["shards"] / "manifest.json",
        "run_json": paths["run"] / "run.json",
        "metrics": paths["run"] / "metrics.jsonl",
        "hf": paths["run"] / "hf",
    }
    timings: dict[str, float] = {}
    results: dict[str, str] = {}

    def stage(name: str) -> float:
        console.rule(f"[bold]{name}")
        return time.perf_counter()

    t0 = stage("1/5 demo crawl")
    truth = _write_crawl(paths["crawl"])
    inputs = [str(paths["crawl"] / name) for name in truth["files"]]
    results["crawl"] = f"{len(truth['cases'])} planted documents in {', '.join(truth['files'])}"
    console.print(f"  {results['crawl']}: {paths['crawl']}")
    timings["crawl"] = time.perf_counter() - t0

    t0 = stage("2/5 curate (FineWeb recipe)")
    summary = _curate(inputs, paths["curated"], out_dir / "curate.log")
    results["curate"] = (
        f"{summary['records_read']} records, {summary['quarantined']} quarantined, "
        f"{summary['docs_in']} docs in -> {summary['docs_out']} out"
    )
    for st in summary["stages"]:
        dropped = ", ".join(f"{reason} {n}" for reason, n in st["dropped"].items()) or "-"
        console.print(f"  {st['name']:<18} {st['docs_in']:>5} -> {st['docs_out']:>5}  dropped: {dropped}")
    console.print(f"  {results['curate']} (datatrove log: {out_dir / 'curate.log'})")
    timings["curate"] = time.perf_counter() - t0

    t0 = stage("3/5 tokenize (GPT-2 BPE, llm.c shards)")
    manifest = run_tokenize([str(paths["curated"])], paths["shards"], shard_tokens=SHARD_TOKENS, val_tokens=VAL_TOKENS)
    tok, docs = manifest["total_tokens"], manifest["documents"]
    results["tokenize"] = (
        f"train {tok['train']:,} tokens / {docs['train']} docs, val {tok.get('val', 0):,} / {docs.get('val', 0)}"
    )
    console.print(f"  {results['tokenize']}: {paths['manifest']}")
    timings["tokenize"] = time.perf_counter() - t0

    t0 = stage(f"4/5 train GPT-2 '{DEMO_MODEL}' for {steps} steps (CPU)")
    run = _train(paths["shards"], paths["run"], steps, out_dir / "train.yaml", console)
    train_losses, val_losses = _losses(paths["metrics"])
    results["train"] = f"{run['status']} at step {run['step']}: train loss {train_losses[0]:.2f} -> {run['loss']:.2f}"
    if val_losses:
        results["train"] += f", val loss {val_losses[0]:.2f} -> {val_losses[-1]:.2f}"
    console.print(f"  {results['train']} (log: {paths['run'] / 'train.log'})")
    timings["train"] = time.perf_counter() - t0

    t0 = stage("5/5 samples and report")
    _print_samples(paths["run"], console)
    html, tables = write_report(paths["curated"], paths["report"], shards=paths["shards"], train=paths["run"])
    print_summary(tables, console)
    timings["report"] = time.perf_counter() - t0

    overview = Table(title="FineForge demo", title_justify="left")
    for name, justify in (("stage", "left"), ("result", "left"), ("s", "right")):
        overview.add_column(name, justify=justify)
    for name, text in results.items():
        overview.add_row(name, text, f"{timings[name]:.1f}")
    overview.add_row("report", str(html), f"{timings['report']:.1f}")
    console.print(overview)
    console.print(f"[bold green]report:[/] {html}")
    return paths
