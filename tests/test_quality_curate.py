"""The curate `quality` stage on the built-in demo crawl: scores kept as columns, a new threshold without rescoring.

Real curate runs (datatrove, fastText, the GPT-2 tokenizer) on `write_demo_crawl`, with a small classifier trained
here whose scores spread over the crawl's articles. The URL filter is off (its block lists cost about 10 s per
task and are tested elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts, write_demo_crawl
from pipelines.common.stage import run_stage
from pipelines.curate import CurateConfig, CurateStage, run_curate
from pipelines.quality.config import QualityConfig
from pipelines.quality.model import QualityModel, QualityModelError
from pipelines.quality.steps import Cutoff, choose_cutoff
from pipelines.report import build_report, report_data
from tests.quality_helpers import texts_jsonl, train_spread

FIRST_PASS_STAGES = ("read", "extract", "language_filter", "gopher_repetition", "gopher_quality", "c4_quality")


def config(model: Path, **quality) -> CurateConfig:
    """Demo-crawl settings with the quality stage on."""
    return CurateConfig.model_validate(
        {"filters": {"url": {"enabled": False}}, "quality": {"enabled": True, "model": str(model), **quality}}
    )


def frame(folder: Path) -> pl.DataFrame:
    """Every Parquet file under `folder`, sorted by id (an empty frame when there are none)."""
    files = sorted(folder.rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal").sort("id") if files else pl.DataFrame()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the demo crawl, a model whose scores spread over it)."""
    base = tmp_path_factory.mktemp("quality-curate")
    write_demo_crawl(base / "crawl")
    return base / "crawl", train_spread(base / "model")


@pytest.fixture(scope="module")
def reused(setup, tmp_path_factory) -> dict:
    """A keep_fraction run, then the same output rerun with only a threshold: both summaries and the threshold."""
    crawl, model = setup
    out = tmp_path_factory.mktemp("reused") / "curated"
    first = run_curate(config(model, keep_fraction=0.5), [str(crawl)], out)
    scores = pl.read_parquet(out / "quality" / "scores.parquet")["quality_score"].sort()
    threshold = float(scores[len(scores) // 3])  # a stored score: keeps two thirds
    second = run_curate(config(model, threshold=threshold), [str(crawl)], out)
    return {"out": out, "first": first, "second": second, "threshold": threshold}


@pytest.fixture(scope="module")
def fresh(setup, reused, tmp_path_factory) -> Path:
    """A fresh run straight at the second run's threshold, in its own folder."""
    crawl, model = setup
    out = tmp_path_factory.mktemp("fresh") / "curated"
    run_curate(config(model, threshold=reused["threshold"]), [str(crawl)], out)
    return out


def test_a_new_threshold_reuses_the_scores(reused, fresh) -> None:
    first, second = reused["first"], reused["second"]
    assert [s["status"] for s in first["steps"]] == ["ran"] * 4
    steps = {s["name"]: s for s in second["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {
        "filter": "reused",
        "score": "reused",
        "select": "ran",
        "dedup": "ran",
    }
    assert steps["score"]["key"] == next(s["key"] for s in first["steps"] if s["name"] == "score")
    status = {s["name"]: s["status"] for s in second["stages"]}
    assert all(status[name] == "reused" for name in FIRST_PASS_STAGES)
    assert status["url_filter"] == "off" and status["quality"] == "ran" and status["minhash_dedup"] == "ran"
    assert second["quality"]["cutoff"] == reused["threshold"] and second["run_id"] != first["run_id"]

    # The same rows as a run made straight with the new threshold.
    out = reused["out"]
    assert frame(out / "data").equals(frame(fresh / "data"))
    assert frame(out / "rejects").equals(frame(fresh / "rejects"))
    assert frame(out / "quality").equals(frame(fresh / "quality"))
    published = json.loads((fresh / "summary.json").read_text())
    assert [s["docs_out"] for s in published["stages"]] == [s["docs_out"] for s in second["stages"]]
    assert [s["status"] for s in published["steps"]] == ["ran"] * 4
    # Only the published run's step folders remain.
    assert {p.name for p in (out / ".work").iterdir() if p.is_dir()} == {f"{n}-{s['key']}" for n, s in steps.items()}


def test_another_output_folder_links_the_steps_it_shares(setup, reused, fresh, tmp_path: Path) -> None:
    """`share_from` (an ablation's other variants): finished steps with the same keys are linked, not recomputed."""
    crawl, model = setup
    donor = reused["out"]
    donor_data = frame(donor / "data")

    same = run_stage(CurateStage(config(model, threshold=reused["threshold"]), [str(crawl)], tmp_path / "same",
                                 share_from=[donor])).result  # fmt: skip
    assert [s["status"] for s in same["steps"]] == ["reused"] * 4
    assert frame(tmp_path / "same" / "data").equals(frame(fresh / "data"))

    other = run_stage(CurateStage(config(model, keep_fraction=0.25), [str(crawl)], tmp_path / "other",
                                  share_from=[donor, tmp_path / "same"])).result  # fmt: skip
    statuses = {s["name"]: s["status"] for s in other["steps"]}
    assert statuses == {"filter": "reused", "score": "reused", "select": "ran", "dedup": "ran"}
    alone = run_curate(config(model, keep_fraction=0.25), [str(crawl)], tmp_path / "alone")
    assert frame(tmp_path / "other" / "data").equals(frame(tmp_path / "alone" / "data"))
    assert [s["docs_out"] for s in other["stages"]] == [s["docs_out"] for s in alone["stages"]]
    assert frame(donor / "data").equals(donor_data)  # the donor's folders are linked from, never changed


def test_every_scored_document_carries_its_score(reused) -> None:
    out, threshold, summary = reused["out"], reused["threshold"], reused["second"]
    scores = pl.read_parquet(out / "quality" / "scores.parquet")
    quality = next(s for s in summary["stages"] if s["name"] == "quality")
    assert scores.height == quality["docs_in"] == summary["quality"]["scored"]
    assert scores["selected"].sum() == quality["docs_out"] == (scores["quality_score"] >= threshold).sum()
    assert quality["dropped"] == {"below_quality_threshold": quality["docs_in"] - quality["docs_out"]}
    assert (scores["tokens"] > 100).all()

    data = frame(out / "data")
    assert data.columns[-1] == "quality_score" and data["quality_score"].null_count() == 0
    assert (data["quality_score"] >= threshold).all()
    assert all("quality_score" not in json.loads(m) for m in data["metadata"])
    stored = dict(zip(scores["id"], scores["quality_score"], strict=True))
    assert all(stored[i] == s for i, s in zip(data["id"], data["quality_score"], strict=True))

    by_stage = {p.name: frame(p) for p in (out / "rejects").iterdir()}
    below = by_stage["quality"]
    assert set(below["reason"]) == {"below_quality_threshold"} and (below["quality_score"] < threshold).all()
    assert by_stage["exact_dedup"]["quality_score"].null_count() == 0  # scored, then dropped as a copy
    assert "quality_score" not in by_stage["gopher_quality"].columns  # dropped before the quality stage saw it
    assert summary["quality"]["model_sha256"] == QualityModel.load(summary["quality"]["model"]).card.sha256


def test_scores_are_the_same_for_any_worker_count(setup, fresh, tmp_path) -> None:
    crawl, model = setup
    settings = json.loads((fresh / "summary.json").read_text())["quality"]
    summary = run_curate(config(model, threshold=settings["threshold"]), [str(crawl)], tmp_path / "two", workers=2)
    assert summary["tasks"] == 2
    assert frame(tmp_path / "two" / "quality").equals(frame(fresh / "quality"))
    assert frame(tmp_path / "two" / "data").equals(frame(fresh / "data"))
    # A rerun of a published run is recognised and touches nothing.
    stage = CurateStage(config(model, threshold=settings["threshold"]), [str(crawl)], tmp_path / "two", workers=2)
    assert run_stage(stage).reused


def test_keep_fraction_breaks_ties_by_id() -> None:
    scores = pl.DataFrame({"id": ["e", "c", "a", "b", "d"], "quality_score": [0.9, 0.5, 0.5, 0.5, 0.1]})
    cutoff = choose_cutoff(QualityConfig(keep_fraction=0.6), scores)
    assert cutoff == Cutoff(0.5, "b")
    kept = scores.filter(cutoff.expression())["id"].sort().to_list()
    assert kept == ["a", "b", "e"] == sorted(i for i, s in scores.iter_rows() if cutoff.keeps(s, i))
    assert choose_cutoff(QualityConfig(keep_fraction=0.1), pl.concat([scores] * 6)).score == 0.9  # ceil(3.0), not 4
    assert choose_cutoff(QualityConfig(threshold=0.7), scores) == Cutoff(0.7)
    assert choose_cutoff(QualityConfig(score_only=True), scores).keeps(-1.0, "z")


def test_a_bad_model_fails_before_any_document_is_read(setup, tmp_path) -> None:
    crawl, model = setup
    with pytest.raises(QualityModelError, match="does not exist"):
        run_curate(config(tmp_path / "missing.bin"), [str(crawl)], tmp_path / "out")
    damaged = tmp_path / "damaged.bin"
    damaged.write_bytes(model.read_bytes()[:50_000])
    damaged.with_suffix(".json").write_text(model.with_suffix(".json").read_text())
    with pytest.raises(QualityModelError, match="damaged or replaced"):
        run_curate(config(damaged), [str(crawl)], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # planning failed: no work folder, nothing read

    command = ["quality", "score", "--model", str(damaged), "-i", str(crawl), "-o", str(tmp_path / "scored")]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "damaged or replaced" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "scored").exists()
    with pytest.raises(ValueError, match="quality.enabled needs quality.model"):
        CurateConfig.model_validate({"quality": {"enabled": True}})


def test_quality_score_command(setup, tmp_path, monkeypatch) -> None:
    _, model = setup
    monkeypatch.chdir(tmp_path)
    texts = demo_texts(12, seed=5)
    docs = texts_jsonl(tmp_path / "docs.jsonl", texts)
    docs.write_text(docs.read_text() + '{"id": "cut", "text": "no end\n')  # one broken line: quarantined
    result = CliRunner().invoke(app, ["quality", "score", "--model", str(model), "-i", str(docs), "-o", "scored"])
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("scored/summary.json").read_text())
    assert summary["quarantined"] == 1 and summary["quality"]["scored"] == summary["docs_out"] == 12
    data = frame(Path("scored/data"))
    expected = QualityModel.load(model).score(texts)
    assert data["id"].to_list() == [f"docs-{i:03d}" for i in range(12)]
    assert data["quality_score"].to_list() == expected.tolist()


def test_report_shows_what_a_threshold_keeps(reused, tmp_path) -> None:
    out, threshold = reused["out"], reused["threshold"]
    path = build_report(out, tmp_path / "report.html")
    html = path.read_text()
    assert '<section id="quality">' in html and 'id="quality-curve"' in html
    quality = json.loads(html.split('id="report-data">')[1].split("</script>")[0])["quality"]
    scores = pl.read_parquet(out / "quality" / "scores.parquet")
    for row in quality["curve"]:
        kept = scores.filter(pl.col("quality_score") >= row["threshold"])
        assert (row["docs"], row["tokens"]) == (kept.height, kept["tokens"].sum())
    this_run = [row for row in quality["curve"] if row["this_run"]]
    assert len(this_run) == 1 and this_run[0]["threshold"] == threshold
    assert this_run[0]["docs"] == reused["second"]["quality"]["selected"]
    assert sum(b["docs"] for b in quality["bands"]) == scores.height
    assert sum(b["passed"] for b in quality["bands"]) == scores["selected"].sum()
    assert "score 0." in html  # band samples name each document's score


def test_runs_without_the_stage_have_no_quality_section(tmp_path) -> None:
    texts = texts_jsonl(tmp_path / "docs.jsonl", demo_texts(8, seed=4))
    cfg = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}})
    summary = run_curate(cfg, [str(texts)], tmp_path / "out")
    assert summary["quality"] is None and not (tmp_path / "out" / "quality").exists()
    assert next(s for s in summary["stages"] if s["name"] == "quality")["status"] == "off"
    assert frame(tmp_path / "out" / "data").columns[-1] == "metadata"  # no quality_score column
    assert report_data(tmp_path / "out")["quality"] is None
