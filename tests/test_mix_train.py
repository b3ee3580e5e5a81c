"""Training on a mixture reports validation loss per source: a real tiny run on a real `fineforge mix` output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from pipelines.common.metrics import read_metrics
from pipelines.mix import parse_source, run_mix
from pipelines.report.downstream import load_training
from pipelines.tokenize import run_tokenize
from tests.builtin_text import builtin_web_texts, write_jsonl_gz
from tests.trainer_helpers import TINY_FLAGS, TINY_YAML


def test_eval_events_and_lineage_name_every_source(tmp_path: Path) -> None:
    texts = builtin_web_texts()
    sources = {}
    for name, part in (("web", texts[:300]), ("edu", texts[300:450])):
        sources[name] = tmp_path / name
        run_tokenize([str(write_jsonl_gz(tmp_path / f"{name}.jsonl.gz", part))], sources[name], val_tokens=1_000)
    mix = tmp_path / "mix"
    run_mix([parse_source(f"web={sources['web']}:0.7"), parse_source(f"edu={sources['edu']}:0.3")], mix, 50_000)
    (tmp_path / "train.yaml").write_text(TINY_YAML)
    out = tmp_path / "run"
    args = ["train", "--data", str(mix), "--out", str(out), *TINY_FLAGS, "--steps", "4", "--eval-every", "2"]
    result = CliRunner().invoke(app, [*args, "--config", str(tmp_path / "train.yaml")])
    assert result.exit_code == 0, result.output

    evals = [e for e in read_metrics(out / "metrics.jsonl") if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2, 4]
    for event in evals:
        assert set(event["val_loss_by_source"]) == {"web", "edu"}
        assert (
            min(event["val_loss_by_source"].values()) <= event["val_loss"] <= max(event["val_loss_by_source"].values())
        )
    assert evals[-1]["val_loss_by_source"]["web"] < evals[0]["val_loss_by_source"]["web"]  # it learned
    assert len(set(evals[-1]["val_loss_by_source"].values())) == 2  # scored apart, not one number twice
    log = (out / "train.log").read_text() if (out / "train.log").exists() else result.output
    assert "val loss" in log and "by_source" not in log  # the llm.c-style line stays as it was

    run = json.loads((out / "run.json").read_text())
    assert [s["name"] for s in run["sources"]] == ["web", "edu"]
    assert run["sources"][0]["manifest"] == str((sources["web"] / "manifest.json").resolve())
    assert load_training(out)["by_source"]["edu"] == [(e["step"], e["val_loss_by_source"]["edu"]) for e in evals]
