"""Live progress of curate, tokenize and train: snapshots during the run that end at the contract's numbers.

Curate runs on 3,000 built-in demo articles in three files (one task reads them in turn, so the ETA appears
once the first file is done); its snapshots must come during the passes (not only at the end), grow
monotonically, and end at exactly the counts of summary.json. Tokenize must know its total from the Parquet
footers and end at it. Training progress is read from a metrics.jsonl as a trainer appends to it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from orchestration.demo_data import demo_texts
from orchestration.progress import TerminalProgress
from pipelines.common.progress import Progress, Throttle, format_duration, overall_fraction
from pipelines.curate import CurateConfig, run_curate
from pipelines.curate.progress import stage_row
from pipelines.curate.stages import DEDUP_STAGES
from pipelines.tokenize import run_tokenize
from tests.quality_helpers import texts_jsonl, train_spread
from trainer.stage import TrainProgress

FILES, DOCS_PER_FILE = 3, 1000
# No URL filter: its block lists take ~10 s to load, and it is tested elsewhere.
FAST = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}})


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> tuple[Path, dict, list[Progress]]:
    """A curate run over the demo articles: (output folder, summary, every progress snapshot)."""
    root = tmp_path_factory.mktemp("live")
    texts = demo_texts(FILES * DOCS_PER_FILE)
    for i in range(FILES):
        chunk = texts[i * DOCS_PER_FILE : (i + 1) * DOCS_PER_FILE]
        records = ({"id": f"{i}-{j}", "text": t, "url": f"https://ex.com/{i}/{j}"} for j, t in enumerate(chunk))
        lines = (json.dumps(r) for r in records)
        (root / f"part{i}.jsonl").write_text("\n".join(lines) + "\n")
    snapshots: list[Progress] = []
    summary = run_curate(FAST, [str(root / f"part{i}.jsonl") for i in range(FILES)], root / "out",
                         on_progress=snapshots.append)  # fmt: skip
    return root / "out", summary, snapshots


def test_curate_progress_is_live_and_ends_at_the_summary(curated) -> None:
    _, summary, snapshots = curated
    steps = [s.step for s in snapshots]
    assert steps == sorted(steps, key=["filter", "dedup", "done"].index), "a filter snapshot came after dedup began"
    overall = [s.overall for s in snapshots]
    assert overall == sorted(overall) and overall[-1] == 1.0
    filtering = [s for s in snapshots if s.step == "filter"]
    final = filtering[-1]
    assert final.done == summary["stages"][0]["docs_out"] == final.total  # documents read
    assert any(0 < s.done < final.done for s in filtering), "no snapshot while the filter pass ran"
    assert any(s.eta_s is not None and s.done < final.done for s in filtering), "no ETA from the finished files"
    by_name = {stage["name"]: stage_row(stage) for stage in summary["stages"]}  # without status and details
    assert final.rows and all(row == by_name[row["name"]] for row in final.rows)
    deduping = [s for s in snapshots if s.step == "dedup"][-1]
    assert [row["name"] for row in deduping.rows][-len(DEDUP_STAGES) :] == list(DEDUP_STAGES)
    assert all(row == by_name[row["name"]] for row in deduping.rows)
    assert snapshots[-1].step == "done" and snapshots[-1].rows == list(by_name.values())  # every stage, as published


def test_curate_knows_its_total_with_a_limit(curated, tmp_path: Path) -> None:
    out, _, _ = curated
    snapshots: list[Progress] = []
    run_curate(FAST, [str(out.parent / "part0.jsonl")], tmp_path / "out", limit=300, on_progress=snapshots.append)
    filtering = [s for s in snapshots if s.step == "filter" and s.done]
    assert filtering[0].total == 300 and filtering[-1].done == 300


def test_tokenize_progress_counts_to_the_parquet_rows(curated, tmp_path: Path) -> None:
    out, summary, _ = curated
    snapshots: list[Progress] = []
    manifest = run_tokenize([str(out)], tmp_path / "shards", shard_tokens=200_000, on_progress=snapshots.append)
    tokenizing = [s for s in snapshots if s.step == "tokenize"]
    assert tokenizing[0].total == summary["docs_out"] and tokenizing[-1].done == summary["docs_out"]
    shards = [s for s in snapshots if s.step == "shards"]
    assert shards[-1].done == shards[-1].total == len(manifest["shards"])
    assert snapshots[-1].overall == 1.0 and [r["step"] for r in snapshots[-1].rows] == ["tokenize", "shards"]


def test_train_progress_follows_the_metrics_file(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"type": "step", "step": 3, "loss": 7.0, "tok_per_s": 10.0}) + "\n")
    progress = TrainProgress(tmp_path, steps=10)  # resumes after step 3
    assert progress.snapshot().done == 3 and progress.baseline == 3
    with open(metrics, "a") as f:
        f.write(json.dumps({"type": "step", "step": 4, "loss": 6.5, "tok_per_s": 11.0}) + "\n")
        f.write(json.dumps({"type": "eval", "step": 4, "val_loss": 6.7}) + "\n")
        f.write('{"type": "step", "step": 5, "lo')  # a line still being written
    snap = progress.snapshot()
    assert (snap.done, snap.total, snap.overall) == (4, 10, 0.4) and snap.detail == "loss 6.5000"
    assert snap.rows == [{"step": 4, "loss": 6.5, "val_loss": 6.7, "tok_per_s": 11.0}]


def test_progress_arithmetic_and_rendering() -> None:
    snap = Progress("curate", "filter", done=150, total=600, unit="docs", elapsed_s=10, overall=0.2, baseline=50)
    assert snap.rate == 10 and snap.eta_s == 45 and snap.describe() == "filter: 150/600 docs, 10 docs/s, ETA 45s"
    assert Progress("train", "train", 5, None, "steps", 10, 0.5).eta_s is None
    assert [format_duration(s) for s in (42, 187, 7500)] == ["42s", "3m07s", "2h05m"]
    weights = {"a": 3.0, "b": 1.0}
    assert overall_fraction(weights, "a", 0.5) == 0.375 and overall_fraction(weights, "b", 1.0) == 1.0
    throttle = Throttle(0.2)
    assert throttle.ready() and not throttle.ready() and throttle.ready(force=True)
    time.sleep(0.25)
    assert throttle.ready()
    rows = [{"name": "read", "docs_in": 10, "docs_out": 8, "dropped": {"x": 2}}]
    console = Console(record=True, width=120, force_terminal=False)
    with TerminalProgress(console) as terminal:
        terminal(Progress("curate", "filter", 10, 10, "docs", 2.0, 0.85, rows=rows))
    text = console.export_text()
    assert "curate  85.0%" in text and "filter: 10/10 docs, 5.0 docs/s, ETA 0s" in text
    assert re.search(r"stage\s+docs_in\s+docs_out\s+dropped\s+read\s+10\s+8\s+2", text), text


def assert_later_step_reported(snapshots: list[Progress], summary: dict, step: str, stage_name: str) -> None:
    """`step` reports between filter and dedup, in order, and its last snapshot ends at its stage's summary row."""
    steps = [s.step for s in snapshots]
    order = ["filter", "score", "select", "screen", "dedup", "done"]
    assert steps == sorted(steps, key=order.index) and step in steps, steps
    stage = next(s for s in summary["stages"] if s["name"] == stage_name)
    last = [s for s in snapshots if s.step == step][-1]
    assert last.done == last.total == stage["docs_in"]
    assert next(r for r in last.rows if r["name"] == stage_name) == stage_row(stage)
    assert [s.overall for s in snapshots] == sorted(s.overall for s in snapshots)


def test_curate_progress_covers_the_screen_step(tmp_path: Path) -> None:
    """With decontamination on, the `screen` step reports between filter and dedup, ending at its stage's row."""
    from pipelines.curate.decontam_index import EvalSet, build_index

    texts = demo_texts(300, seed=5)
    leaked = [{"text": t.split("\n\n")[0]} for t in texts[:30]]  # the first paragraph of 30 documents
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in leaked))
    build_index([EvalSet("leak", tmp_path / "eval.jsonl")], tmp_path / "eval.idx")
    docs = texts_jsonl(tmp_path / "docs.jsonl", texts)
    screen = {"enabled": True, "index": str(tmp_path / "eval.idx"), "action": "drop"}
    cfg = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}, "decontaminate": screen})
    snapshots: list[Progress] = []
    summary = run_curate(cfg, [str(docs)], tmp_path / "out", on_progress=snapshots.append)
    stage = next(s for s in summary["stages"] if s["name"] == "decontaminate")
    assert stage["dropped"].get("contaminated:leak", 0) > 0  # the leaked paragraphs were found
    assert_later_step_reported(snapshots, summary, "screen", "decontaminate")


def test_curate_progress_covers_the_quality_steps(tmp_path: Path) -> None:
    """With the quality classifier on, `score` then `select` report between filter and dedup; select ends at the
    quality stage's row, and score counts every document the filters kept."""
    model = train_spread(tmp_path / "model")
    texts = demo_texts(300, seed=6)
    docs = texts_jsonl(tmp_path / "docs.jsonl", texts)
    quality = {"enabled": True, "model": str(model), "keep_fraction": 0.5}
    cfg = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}, "quality": quality})
    snapshots: list[Progress] = []
    summary = run_curate(cfg, [str(docs)], tmp_path / "out", on_progress=snapshots.append)
    stage = next(s for s in summary["stages"] if s["name"] == "quality")
    assert 0 < stage["docs_out"] < stage["docs_in"]  # the cut dropped some, kept some
    assert_later_step_reported(snapshots, summary, "select", "quality")
    scoring = [s for s in snapshots if s.step == "score"]
    assert scoring and scoring[-1].done == scoring[-1].total == stage["docs_in"]  # scored = what the filters kept
