"""`fineforge demo` end to end: every stage's contract file, the report naming the run, and an idempotent rerun."""

import json
from io import StringIO
from pathlib import Path

from rich.console import Console

from orchestration.demo import run_demo
from pipelines.shards import verify


def test_demo_end_to_end_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    console = Console(file=StringIO(), width=120)
    paths = run_demo(out, steps=4, console=console)

    assert (paths["crawl"] / "ground_truth.json").is_file()
    summary = json.loads(paths["curate_summary"].read_text())
    assert 0 < summary["docs_out"] < summary["docs_in"]
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["total_tokens"]["val"] > 0 and manifest["total_tokens"]["train"] > 0
    verify(paths["manifest"])
    run = json.loads(paths["run_json"].read_text())
    assert run["status"] == "completed" and run["step"] == 4
    evals = [r for r in map(json.loads, paths["metrics"].read_text().splitlines()) if r["type"] == "eval"]
    assert evals and evals[-1]["step"] == 4
    assert (paths["hf"] / "config.json").is_file()
    html = paths["report"].read_text(encoding="utf-8")
    assert str(paths["run"]) in html and summary["run_id"] in html
    printed = console.file.getvalue()
    assert "sample 0:" in printed and str(paths["report"]) in printed

    # A rerun skips the finished stages by their contracts: same curate run, same shards, training untouched.
    metrics_before = paths["metrics"].read_text()
    rerun = Console(file=StringIO(), width=120)
    run_demo(out, steps=4, console=rerun)
    assert json.loads(paths["curate_summary"].read_text())["run_id"] == summary["run_id"]
    assert json.loads(paths["manifest"].read_text())["shards"] == manifest["shards"]
    assert paths["metrics"].read_text() == metrics_before
    assert "training already completed" in rerun.file.getvalue()
