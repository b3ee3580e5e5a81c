"""Curate end to end: accounting invariants, drop guard, run identity, config files.

Built-in inputs: the demo crawl (WARC pages and JSONL texts with planted junk, duplicates and a broken line) plus
the multilingual and edge documents of tests/builtin_text.py. Acceptance 2 of issue 2 runs where the shared
corpora exist: on trafilatura-eval HTML, the htmldate WARC and web-text.jsonl.gz curate completes and the
summary invariants hold. The full htmldate WARC (435 pages) and all 580 web texts run; trafilatura-eval is
subsampled (every 10th page, 104 of 1,032) to keep the file under two minutes on a busy 2-core machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

from orchestration.demo_data import write_demo_crawl
from pipelines.curate import STAGES, CurateConfig, CurateStage, DropGuardError, config_hash, load_config, run_curate
from pipelines.curate.summary import check as check_invariants
from tests.builtin_text import EDGE_TEXTS, MULTILINGUAL, TextSource, write_jsonl_gz
from tests.conftest import SOURCES

REPO = Path(__file__).resolve().parents[1]


def assert_accounting(out: Path) -> dict:
    """Re-derive every invariant from the files on disk (independently of the check in finish())."""
    summary = json.loads((out / "summary.json").read_text())
    data = pl.read_parquet(sorted((out / "data").glob("*.parquet"))) if list((out / "data").glob("*")) else None
    rows = 0 if data is None else data.height
    assert [s["name"] for s in summary["stages"]] == list(STAGES)
    skipped = sum(summary["records_skipped"].values())
    assert summary["records_read"] == summary["docs_in"] + summary["quarantined"] + skipped
    previous = summary["docs_in"]
    for stage in summary["stages"]:
        assert stage["docs_in"] == previous, stage
        assert stage["docs_in"] == stage["docs_out"] + sum(stage["dropped"].values()), stage
        previous = stage["docs_out"]
    assert previous == summary["docs_out"] == rows
    quarantined = sum(len(p.read_text().splitlines()) for p in (out / "quarantine").glob("*.jsonl"))
    assert quarantined == summary["quarantined"]
    check_invariants(summary, rows)
    return summary


def assert_output_columns(out: Path, summary: dict) -> pl.DataFrame:
    """Kept documents: the contract's columns, English only, unique ids; rejects: a sample of counted drops."""
    data = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    assert data.columns == ["id", "text", "url", "source_file", "language", "language_score", "metadata"]
    assert set(data["language"]) == {"en"} and data["language_score"].min() >= 0.65
    assert data["id"].n_unique() == data.height
    assert all(isinstance(json.loads(m), dict) for m in data["metadata"])

    stages = {s["name"]: s for s in summary["stages"]}
    rejects = pl.read_parquet(sorted((out / "rejects").rglob("*.parquet")))
    assert rejects.columns == ["id", "text", "url", "source_file", "stage", "reason", "metadata"]
    for stage, rows in rejects.group_by("stage"):
        counted = stages[stage[0]]["dropped"]
        for reason, n in rows.group_by("reason").len().iter_rows():
            assert 0 < n <= counted[reason], (stage, reason)  # a sample (here: all) of the counted drops
    return rejects


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """The demo crawl plus a JSONL of the multilingual and edge documents, curated with the default config."""
    crawl = tmp_path_factory.mktemp("crawl")
    truth = write_demo_crawl(crawl)
    write_jsonl_gz(crawl / "unicode.jsonl.gz", [*MULTILINGUAL.values(), *EDGE_TEXTS])
    out = tmp_path_factory.mktemp("curate")
    return out, truth, run_curate(CurateConfig(), [str(crawl)], out)


def test_builtin_invariants(builtin_run: tuple[Path, dict, dict]) -> None:
    out, truth, summary = builtin_run
    assert assert_accounting(out) == summary
    pages = sum(case["file"] == "crawl.warc.gz" for case in truth["cases"])
    lines = sum(case["file"] == "docs.jsonl" for case in truth["cases"])
    extra = len(MULTILINGUAL) + len(EDGE_TEXTS)
    assert summary["input_files"] == 3
    assert summary["records_read"] == (1 + 2 * pages) + lines + extra  # warcinfo, request and response per page
    assert summary["quarantined"] == truth["counts"]["broken_line"] == 1
    assert summary["records_skipped"] == {"warcinfo": 1, "request": pages}  # not documents, outside the funnel
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["read"]["docs_in"] == summary["records_read"] - 1 - pages - summary["quarantined"]
    assert stages["read"]["dropped"] == {"warc_non_html": 1, "empty_text": sum(not t.strip() for t in EDGE_TEXTS)}
    assert stages["language_filter"]["dropped"]["wrong_language"] >= len(MULTILINGUAL)
    assert summary["docs_out"] == truth["counts"]["good"]

    rejects = assert_output_columns(out, summary)
    unicode_rejects = rejects.filter(pl.col("url").str.starts_with("https://builtin.example.org/"))
    assert unicode_rejects.height == extra - stages["read"]["dropped"]["empty_text"]  # none kept, each rejected
    foreign = set(MULTILINGUAL.values())
    by_text = dict(zip(unicode_rejects["text"], unicode_rejects["stage"], strict=True))
    assert {by_text[t] for t in foreign} == {"language_filter"}


@pytest.fixture(scope="module")
def corpora_run(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("curate")
    pages = sorted((corpora / "trafilatura-eval" / "html").rglob("*.html.gz"))[::10]
    inputs = [str(corpora / "htmldate" / "htmldate-multilingual.warc.gz"), str(corpora / "web-text.jsonl.gz")]
    summary = run_curate(CurateConfig(), inputs + [str(p) for p in pages], out)
    return out, summary


def test_shared_corpora_invariants(corpora_run: tuple[Path, dict]) -> None:
    out, summary = corpora_run
    assert assert_accounting(out) == summary
    assert summary["input_files"] == 2 + 104
    assert summary["records_read"] == 436 + 580 + 104  # WARC records (warcinfo too), text lines, HTML files
    assert summary["records_skipped"] == {"warcinfo": 1}  # not a document, outside the funnel
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["read"]["docs_out"] == 435 + 580 + 104
    assert stages["extract"]["docs_out"] > 0.8 * stages["extract"]["docs_in"]  # text docs pass through
    assert 0 < stages["language_filter"]["docs_out"] < stages["language_filter"]["docs_in"]  # de/es/fr pages
    assert summary["docs_out"] > 300

    assert_output_columns(out, summary)
    data = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    assert set(data["source_file"].map_elements(lambda s: Path(s).suffix, return_dtype=pl.String)) == {".gz"}


KEPT_AT_LEAST = {"builtin": 100, "corpora": 300}  # the demo crawl's good documents; most of web-text


def _crawl(source: str, request: pytest.FixtureRequest, folder: Path) -> tuple[list[str], int]:
    """Inputs of at least 100 documents (the drop guard's minimum), and how many the read stage passes on."""
    if source == "corpora":
        return [str(request.getfixturevalue("corpora") / "web-text.jsonl.gz")], 580
    truth = write_demo_crawl(folder)
    return [str(folder)], sum(c["kind"] not in ("image", "broken_line") for c in truth["cases"])


@pytest.mark.parametrize("source", SOURCES)
def test_drop_guard_names_the_stage_and_new_run_ids(source: str, request: pytest.FixtureRequest, tmp_path: Path):
    inputs, documents = _crawl(source, request, tmp_path / "crawl")
    out = tmp_path / "out"
    # Keep only Yoruba: the language filter drops every document and the run must fail, naming it.
    wrong = CurateConfig.model_validate({"filters": {"url": {"enabled": False}, "language": {"languages": ["yo"]}}})
    with pytest.raises(DropGuardError, match=f"stage 'language_filter' dropped {documents} of {documents}"):
        run_curate(wrong, inputs, out)
    assert not (out / "summary.json").exists()

    # Saying the drop is expected keeps config hash and run id, so the rerun resumes the finished filter tasks.
    allowed = wrong.model_copy(update={"expected_drop": ["language_filter"]})
    assert config_hash(allowed) == config_hash(wrong)
    summary = run_curate(allowed, inputs, out)
    assert summary["docs_out"] == 0 and assert_accounting(out)["stages"][1]["docs_in"] == documents
    first_run = summary["run_id"]

    # A changed config gets a new run id and its own step folders; outputs are replaced, never mixed, and the
    # superseded run's work state goes once the new run is published.
    fine = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}, "rejects": {"sample_per_reason": 2}})
    job = CurateStage(fine, inputs, out)
    job.plan()
    assert job.run_id != first_run and not job.is_complete()
    job.claim()
    first_steps = _step_dirs(out)
    steps = dict(job.steps())
    steps["filter"]()
    assert _step_dirs(out) == first_steps | {job.work["filter"].dir.name}
    steps["dedup"]()
    summary = job.finish()
    assert _step_dirs(out) == {f"{step['name']}-{step['key']}" for step in summary["steps"]}
    assert [step["status"] for step in summary["steps"]] == ["ran", "ran"]
    assert summary["docs_out"] >= KEPT_AT_LEAST[source] and assert_accounting(out)["run_id"] == summary["run_id"]
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["url_filter"]["dropped"] == {} and stages["exact_dedup"]["dropped"]["exact_duplicate"] > 0
    # Rejects keep a sample of 2 per reason (one task here); the exact counts stay in the summary.
    rejects = pl.read_parquet(sorted((out / "rejects").rglob("*.parquet"))).group_by("stage", "reason").len()
    for stage, reason, n in rejects.iter_rows():
        assert n == min(2, stages[stage]["dropped"][reason]), (stage, reason)
    assert rejects.height == sum(len(s["dropped"]) for s in summary["stages"] if s["name"] != "read")


def _step_dirs(out: Path) -> set[str]:
    """The step folders under DIR/.work (pipelines.curate.work)."""
    return {p.name for p in (out / ".work").iterdir() if p.is_dir()}


def _run_id(config: CurateConfig, inputs: list[str], out: Path, limit: int | None = None) -> str:
    stage = CurateStage(config, inputs, out, limit=limit)
    stage.plan()
    return stage.run_id


def test_run_id_depends_on_config_inputs_and_limit(tmp_path: Path) -> None:
    write_demo_crawl(tmp_path / "crawl")
    docs, warc = str(tmp_path / "crawl" / "docs.jsonl"), str(tmp_path / "crawl" / "crawl.warc.gz")
    out = tmp_path / "out"
    base = _run_id(CurateConfig(), [docs], out)
    assert _run_id(CurateConfig(), [docs], out) == base
    changed = CurateConfig.model_validate({"filters": {"gopher_quality": {"min_doc_words": 40}}})
    ids = {
        base,
        _run_id(changed, [docs], out),
        _run_id(CurateConfig(), [docs, warc], out),
        _run_id(CurateConfig(), [docs], out, limit=10),
    }
    assert len(ids) == 4
    ray_cfg = CurateConfig.model_validate({"run": {"ray": {"cpus_per_task": 2}}})  # where it runs, not what
    assert _run_id(ray_cfg, [docs], out) == base
    assert not out.exists(), "planning wrote into the output folder"


def test_limit_reads_at_most_n_documents(web_text: TextSource, tmp_path: Path) -> None:
    cfg = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}})
    summary = run_curate(cfg, [str(web_text.path)], tmp_path, limit=50)
    assert summary["stages"][0]["docs_out"] == 50
    assert_accounting(tmp_path)


def test_config_files(tmp_path: Path) -> None:
    assert load_config(REPO / "configs" / "fineweb.yaml") == CurateConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters:\n  gopher_quality:\n    min_doc_wrds: 10\n")
    with pytest.raises(ValueError, match="min_doc_wrds"):
        load_config(bad)
    with pytest.raises(ValueError, match="unknown stages"):
        CurateConfig(expected_drop=["extraction"])


def test_extraction_that_drops_everything_fails_the_run(tmp_path: Path) -> None:
    # 120 pages whose body holds only a script: trafilatura returns nothing for each, as it would for every
    # page if a dependency were broken. The run must stop after stage 1 and name the stage.
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(120):
        (pages / f"{i:03d}.html").write_text(f"<html><body><script>var page = {i};</script></body></html>")
    with pytest.raises(DropGuardError, match=r"stage 'extract' dropped 120 of 120 .*empty_extraction=120"):
        run_curate(CurateConfig(), [str(pages)], tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_extraction_dependency_is_checked_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.curate.extract import HtmlExtractor

    monkeypatch.setitem(sys.modules, "lxml_html_clean", None)  # what `import` sees when the package is absent
    with pytest.raises(RuntimeError, match="lxml_html_clean"):
        HtmlExtractor()
