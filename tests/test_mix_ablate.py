"""A mixture variant in an ablation: "web only" against "70/30 web + edu" in one `fineforge ablate` command, at
equal tokens, with the usual record and verdict; the mixture's web source reuses the web variant's curate work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts, write_demo_crawl
from pipelines.ablate.job import Ablation, AblationError
from pipelines.ablate.spec import AblationSpec, Variant
from pipelines.tokenize import run_tokenize
from tests.builtin_text import builtin_web_texts, write_jsonl_gz
from tests.conftest import REPO_ROOT

FINEWEB = str(REPO_ROOT / "configs" / "fineweb.yaml")
SMALL_TOKENS = 2048  # 4 steps of the tiny preset's 512 tokens, as tests/test_ablate.py


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.mark.slow
def test_mixture_variant_trains_at_equal_tokens_with_a_verdict(tmp_path: Path) -> None:
    write_demo_crawl(tmp_path / "crawl")
    edu = tmp_path / "edu"
    run_tokenize([str(write_jsonl_gz(tmp_path / "edu.jsonl.gz", builtin_web_texts()[:60]))], edu, val_tokens=0)
    mixture = tmp_path / "webedu.yaml"
    mixture.write_text(
        f"mix:\n  sources:\n    - {{name: web, config: {FINEWEB}, weight: 0.7}}\n"
        "    - {name: edu, shards: edu, weight: 0.3}\n"  # relative to the mixture file
    )
    _jsonl(tmp_path / "eval.jsonl", demo_texts(2, seed=7))
    out = tmp_path / "out"
    args = ["ablate", "--input", str(tmp_path / "crawl" / "docs.jsonl"), "--variant", f"web={FINEWEB}"]
    args += ["--variant", f"webedu={mixture}", "--eval-data", str(tmp_path / "eval.jsonl"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--tokens", str(SMALL_TOKENS), "--seeds", "0", "--eval-points", "1"])
    assert result.exit_code == 0, result.output

    record = json.loads((out / "ablation.json").read_text())
    web, webedu = record["variants"]
    assert [r["tokens_trained"] for r in record["runs"]] == [SMALL_TOKENS, SMALL_TOKENS]  # equal tokens
    manifest = json.loads((out / "webedu" / "shards" / "manifest.json").read_text())
    assert webedu["sources"] == manifest["sources"] and [s["name"] for s in manifest["sources"]] == ["web", "edu"]
    taken = {s["name"]: s["train_tokens"] for s in manifest["sources"]}
    assert sum(taken.values()) == manifest["total_tokens"]["train"] == webedu["train_tokens"]
    assert abs(taken["web"] / sum(taken.values()) - 0.7) < 0.1  # whole documents of a few hundred tokens each
    assert manifest["sources"][1]["manifest"] == str((edu / "manifest.json").resolve())
    (verdict,) = record["verdicts"]
    assert {verdict["best"], verdict["runner_up"]} == {"web", "webedu"} and verdict["text"] in result.output
    assert "mixed: web" in result.output
    assert "webedu mixes web 0.7" in (out / "report.html").read_text()
    # the mixture's web source is the web variant's recipe over the same input: its curate steps were linked
    source_summary = json.loads((out / "webedu" / "sources" / "web" / "curated" / "summary.json").read_text())
    assert {s["status"] for s in source_summary["steps"]} == {"reused"}
    assert source_summary["docs_out"] == web["docs_out"]


def test_a_bad_mixture_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    _jsonl(tmp_path / "eval.jsonl", ["held out"])
    cases = {
        "mix:\n  sources:\n    - {name: a, shards: nowhere, weight: 1}\n": "source 'a':",
        "mix:\n  sources:\n    - {name: a, config: x.yaml, shards: y, weight: 1}\n": "exactly one of config",
        f"mix:\n  sources:\n    - {{name: a, config: {FINEWEB}, weight: 0}}\n": "mix.sources.0.weight",
    }
    for text, message in cases.items():
        (tmp_path / "m.yaml").write_text(text)
        variant = Variant(name="m", config=str(tmp_path / "m.yaml"))
        paths = {"eval_data": [str(tmp_path / "eval.jsonl")], "out": str(tmp_path / "out")}
        spec = AblationSpec(inputs=[str(tmp_path / "in.jsonl")], variants=[variant], **paths)
        with pytest.raises(AblationError, match=message):
            Ablation(spec).plan()
        assert not (tmp_path / "out").exists()
