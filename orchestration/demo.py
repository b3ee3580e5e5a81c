"""`fineforge demo`: the whole job end to end on the built-in demo crawl, offline, on a CPU (timings: README).

Stages, each into its own folder of OUT (the layout the report discovers by lineage):

1. `crawl/`: `write_demo_crawl` (about 230 records with planted boilerplate, spam, duplicates, one broken line).
2. `curated/`: `CurateStage` with the default FineWeb config (about 100 documents survive).
3. `shards/`: `TokenizeStage` into one train and one val shard (about 38k + 4k tokens).
4. `run/`: the `tiny` GPT-2 preset (3.3M parameters, mostly the 50,257 x 64 embedding) trained by
   `TrainStage`, exactly as `fineforge train` trains it (a supervised `python -m trainer.child` process). 300 steps
   of 512 tokens (the preset's own recipe) is about 4 passes over the train split, with train and val loss
   falling smoothly from 10.8 to about 3.9 (`tests/test_trainer_smooth.py` checks the first 80 steps).
5. a few samples from the trained model (`model.sampling`), then `report.html` (`build_report` of the curated
   folder with the shards and the run).

The three stages run through `pipelines.common.stage.run_stage`, as in the CLI and the flows, so reruns are
idempotent by the same rule everywhere: a stage whose contract file matches its plan is reused, an unfinished
one resumes (a larger `--steps` continues the training run). The crawl is kept once its `ground_truth.json`
(written last) exists; the samples and the report are cheap and always redone. Datatrove's per-task log
(several hundred lines) goes to `OUT/curate.log`, the trainer's lines to `OUT/run/train.log`; the terminal
shows every validation loss and a short summary per stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from pipelines.common.layout import DatasetLayout
from pipelines.common.metrics import read_metrics
from pipelines.common.run_record import run_path
from pipelines.common.stage import run_stage

DEMO_MODEL = "tiny"  # model.gpt2.PRESETS: 2 layers, 64 wide
DEMO_STEPS = 300  # trainer.config.TRAIN_PRESETS["tiny"]: val loss 10.9 -> about 4 on the demo corpus
SHARD_TOKENS = 1_000_000  # the demo corpus is about 42k tokens: one shard per split
VAL_TOKENS = 4096  # whole documents, about 10 of 100; eval_tokens of the tiny preset (8192) reads them all
DEMO_PROMPTS = ["In the spring", "The village library", "Every autumn the farmer"]  # the demo text's style
SAMPLE_TOKENS = 40


def _write_crawl(crawl_dir: Path) -> dict[str, Any]:
    truth_path = crawl_dir / "ground_truth.json"
    if truth_path.exists():  # written last by write_demo_crawl: the crawl is complete
        return json.loads(truth_path.read_text())
    from orchestration.demo_data import write_demo_crawl

    return write_demo_crawl(crawl_dir)


def _curate(inputs: list[str], curated: Path, log_path: Path) -> dict[str, Any]:
    """Run the curate stage with datatrove's output sent to `log_path` instead of the terminal."""
    from pipelines.curate import CurateConfig, CurateStage
    from pipelines.curate.logs import datatrove_logs_to

    with datatrove_logs_to(log_path):
        return run_stage(CurateStage(CurateConfig(), inputs, curated)).result


def _train(shards: Path, run_dir: Path, steps: int, config_path: Path, console: Console) -> dict[str, Any]:
    """Train the demo model with `TrainStage`; print its validation losses as they come."""
    from trainer.config import build_config
    from trainer.stage import TrainerExit, TrainStage

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

    def show(line: str | None) -> None:
        if line and ("val loss" in line or "resuming from" in line):
            console.print("  " + line, markup=False, highlight=False)

    stage = TrainStage(build_config({"data": str(shards), "out": str(run_dir)}, config_path), on_output=show)
    try:
        outcome = run_stage(stage)
    except TrainerExit as e:
        if e.code in (130, 143):  # 128 + SIGINT/SIGTERM: the trainer wrote a checkpoint first
            raise RuntimeError(
                f"training stopped by a signal; rerun the same command to resume it from {run_dir}"
            ) from None
        tail = "".join(e.log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{e}\nlast lines of {e.log}:\n{tail}") from None
    if outcome.reused:
        console.print(f"  training already completed ({steps} steps): {run_dir}")
    return outcome.result


def _losses(metrics: Path) -> tuple[list[float], list[float]]:
    """Train losses of each step and validation losses of each evaluation, in file order."""
    records = read_metrics(metrics)
    train = [r["loss"] for r in records if r.get("type") == "step"]
    val = [r["val_loss"] for r in records if r.get("type") == "eval"]
    return train, val


def _print_samples(run_dir: Path, console: Console) -> None:
    from model.sampling import sample_text
    from trainer.checkpoint import load_model

    model = load_model(run_dir)
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
    from pipelines.curate.summary import summary_path
    from pipelines.report import print_summary, write_report
    from pipelines.shards import MANIFEST_NAME
    from pipelines.tokenize import TokenizeSettings, TokenizeStage

    console = console or Console()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = DatasetLayout.demo(out_dir)
    paths = {
        "crawl": out_dir / "crawl",
        "curated": folders.curated,
        "shards": folders.shards,
        "run": folders.run(),
        "report": out_dir / "report.html",
    }
    paths |= {
        "curate_summary": summary_path(paths["curated"]),
        "manifest": paths["shards"] / MANIFEST_NAME,
        "run_json": run_path(paths["run"]),
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
        f"{sum(summary['records_skipped'].values())} not documents, "
        f"{summary['docs_in']} docs in -> {summary['docs_out']} out"
    )
    for st in summary["stages"]:
        dropped = ", ".join(f"{reason} {n}" for reason, n in st["dropped"].items()) or "-"
        console.print(f"  {st['name']:<18} {st['docs_in']:>5} -> {st['docs_out']:>5}  dropped: {dropped}")
    console.print(f"  {results['curate']} (datatrove log: {out_dir / 'curate.log'})")
    timings["curate"] = time.perf_counter() - t0

    t0 = stage("3/5 tokenize (GPT-2 BPE, llm.c shards)")
    settings = TokenizeSettings(shard_tokens=SHARD_TOKENS, val_tokens=VAL_TOKENS)
    manifest = run_stage(TokenizeStage([str(paths["curated"])], paths["shards"], settings)).result
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
