"""Incremental dedup (issue 24): `fineforge curate --dedup-against` drops what earlier runs kept.

Real `fineforge curate` runs (in-process through the CLI) on built-in articles: crawl 1 is curated first; crawl 2
holds exact copies of crawl 1's documents, near copies (a word inserted: 5-gram Jaccard about 0.9), new documents
and exact copies among the new ones. Every earlier output is hashed file by file before and after and must stay
byte-identical. The bad `--dedup-against` folders are hostile cases, in tests/test_hostile_curate.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from flows import CurateParams
from orchestration.demo_data import demo_texts
from pipelines.curate.clusters import EXPORT_DIR, EXPORT_FILE
from pipelines.curate.dedup import DedupConfig
from pipelines.curate.dedup_index import INDEX_DIR
from pipelines.curate.prior_dedup import cache_folder
from pipelines.report.build import report_data
from tests.quality_helpers import texts_jsonl
from tests.test_curate import assert_accounting

TEXTS = demo_texts(150, seed=7)
# crawl 2 by the index in TEXTS of each document's source: exact copies of crawl 1 (10-29), near copies of crawl 1
# (40-49), new documents (80-109) with three copies among them, and exact copies of crawl 0 (120-124)
CRAWL2 = [*range(10, 30), *range(40, 50), *range(80, 110), *range(80, 83), *range(120, 125)]
NEAR = range(20, 30)  # positions in crawl 2 of the near copies
FAST_CONFIG = "filters:\n  url:\n    enabled: false\n"  # no URL block list to load (about 10 s per task)


def near_copy(text: str) -> str:
    """The text with one word inserted in the middle: a near duplicate (5-gram Jaccard about 0.9)."""
    words = text.split(" ")
    return " ".join([*words[: len(words) // 2], "indeed", *words[len(words) // 2 :]])


def curate(*args: str) -> object:
    """Run `fineforge curate ARGS` in-process; return the click result."""
    return CliRunner().invoke(app, ["curate", *args])


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def gate(summary: dict, name: str) -> dict:
    return next(stage for stage in summary["stages"] if stage["name"] == name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """crawl1 -> cur1 (curated), crawl2 and crawl0 written, and the fast config."""
    root = tmp_path_factory.mktemp("prior")
    config = root / "fast.yaml"
    config.write_text(FAST_CONFIG)
    texts_jsonl(root / "crawl0" / "zero.jsonl", TEXTS[120:150])
    texts_jsonl(root / "crawl1" / "one.jsonl", TEXTS[:80] + TEXTS[:5])  # 5 copies within the crawl
    crawl2 = [near_copy(TEXTS[i]) if pos in NEAR else TEXTS[i] for pos, i in enumerate(CRAWL2)]
    texts_jsonl(root / "crawl2" / "two.jsonl", crawl2)
    for name in ("0", "1"):
        result = curate("-i", str(root / f"crawl{name}"), "-o", str(root / f"cur{name}"), "-c", str(config))
        assert result.exit_code == 0, result.output
    return {"root": root, "config": config}


def test_prior_duplicates_dropped_attributed_and_exported(runs: dict[str, Path], tmp_path: Path) -> None:
    """Exact and near copies of two earlier runs' kept documents are dropped under their own reasons, per run;
    copies within the new crawl still go to exact_dedup; the earlier outputs stay byte-identical; the cluster
    export maps every dropped duplicate to the document it duplicates."""
    root = runs["root"]
    cur0, cur1, out = root / "cur0", root / "cur1", tmp_path / "cur2"
    before = {cur: hashes(cur) for cur in (cur0, cur1)}
    args = ["-i", str(root / "crawl2"), "-o", str(out), "-c", str(runs["config"])]
    result = curate(*args, "--dedup-against", str(cur1), "--dedup-against", str(cur0))
    assert result.exit_code == 0, result.output
    assert {cur: hashes(cur) for cur in (cur0, cur1)} == before

    summary = assert_accounting(out)
    run0, run1 = summary_of(cur0)["run_id"], summary_of(cur1)["run_id"]
    assert [(r["path"], r["run_id"]) for r in summary["dedup_against"]] == [(str(cur1), run1), (str(cur0), run0)]
    prior = gate(summary, "prior_dedup")
    assert prior["status"] == "ran"
    assert prior["dropped"] == {"prior_exact_duplicate": 25, "prior_minhash_duplicate": 10}
    assert prior["runs"] == [
        {"run_id": run1, "path": str(cur1), "exact": 20, "minhash": 10},
        {"run_id": run0, "path": str(cur0), "exact": 5, "minhash": 0},
    ]
    assert gate(summary, "exact_dedup")["dropped"] == {"exact_duplicate": 3}
    assert summary["docs_out"] == 30

    clusters = pl.read_parquet(out / EXPORT_DIR / EXPORT_FILE)
    assert clusters.columns == ["id", "reason", "cluster_id", "kept_id", "kept_run", "similarity"]
    assert clusters["kept_id"].null_count() == 0 and clusters.height == 38
    texts = {
        run: dict(pl.read_parquet(sorted((folder / "data").glob("*.parquet")), columns=["id", "text"]).iter_rows())
        for run, folder in ((run0, cur0), (run1, cur1), (summary["run_id"], out))
    }
    for row in clusters.iter_rows(named=True):
        kept = texts[row["kept_run"]][row["kept_id"]]  # as curate published it (paragraphs normalised)
        position = int(row["id"].removeprefix("two-"))
        assert " ".join(kept.split()) == " ".join(TEXTS[CRAWL2[position]].split()), row
        near = row["reason"] == "prior_minhash_duplicate"
        assert near == (position in NEAR) and row["similarity"] == (None if near else 1.0), row
    by_reason = clusters.group_by("reason", "kept_run").len().sort("reason", "kept_run").rows()
    assert sorted(by_reason) == sorted(
        [
            ("exact_duplicate", summary["run_id"], 3),
            ("prior_exact_duplicate", run0, 5),
            ("prior_exact_duplicate", run1, 20),
            ("prior_minhash_duplicate", run1, 10),
        ]
    )
    # the new run's own index holds exactly its kept documents, for the next crawl
    meta = json.loads((out / INDEX_DIR / "meta.json").read_text())
    assert meta["documents"] == summary["docs_out"]

    # the report: drops per earlier run, and pairs side by side (each kept text that of the dropped one's source)
    report = report_data(out)["duplicates"]
    assert report["runs"] == prior["runs"]
    assert {row["reason"]: row["docs"] for row in report["reasons"]} == {
        "exact_duplicate": 3,
        "prior_exact_duplicate": 25,
        "prior_minhash_duplicate": 10,
    }
    assert {row["reason"] for row in report["pairs"]} == {r["reason"] for r in report["reasons"]}
    for row in report["pairs"]:
        source = TEXTS[CRAWL2[int(row["id"].removeprefix("two-"))]]
        assert row["kept_text"] and " ".join(source.split()).startswith(row["kept_text"].rstrip("…")), row
    assert hashes(cur1) == before[cur1]


def test_index_built_for_an_older_output_outside_it(runs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """An output without dedup_index/ (written before it existed) gets one built into FINEFORGE_HOME's cache,
    once; the older output stays byte-identical, and the result equals a run against the published index."""
    monkeypatch.setenv("FINEFORGE_HOME", str(tmp_path / "home"))
    root = runs["root"]
    old = tmp_path / "old"
    shutil.copytree(root / "cur1", old)
    shutil.rmtree(old / INDEX_DIR)
    shutil.rmtree(old / EXPORT_DIR)
    mark = json.loads((old / ".fineforge-curate.json").read_text())
    mark["published"] = {k: v for k, v in mark["published"].items() if k not in (INDEX_DIR, EXPORT_DIR)}
    (old / ".fineforge-curate.json").write_text(json.dumps(mark))
    before = hashes(old)
    args = ["-i", str(root / "crawl2"), "-c", str(runs["config"])]
    result = curate(*args, "-o", str(tmp_path / "a"), "--dedup-against", str(old))
    assert result.exit_code == 0, result.output
    assert hashes(old) == before
    run1 = summary_of(old)["run_id"]
    cached = cache_folder(run1, DedupConfig())
    assert json.loads((cached / "meta.json").read_text())["documents"] == summary_of(old)["docs_out"]
    assert summary_of(tmp_path / "a")["dedup_against"][0]["index"] == str(cached)
    built = (cached / "meta.json").stat().st_mtime_ns
    result = curate(*args, "-o", str(tmp_path / "b"), "--dedup-against", str(old))
    assert result.exit_code == 0, result.output
    assert (cached / "meta.json").stat().st_mtime_ns == built  # built once
    result = curate(*args, "-o", str(tmp_path / "c"), "--dedup-against", str(root / "cur1"))
    assert result.exit_code == 0, result.output
    assert (
        gate(summary_of(tmp_path / "a"), "prior_dedup")["dropped"]
        == gate(summary_of(tmp_path / "c"), "prior_dedup")["dropped"]
    )


def test_changed_list_reruns_from_dedup_and_config_carries_it(runs: dict[str, Path], tmp_path: Path) -> None:
    """`dedup_against` in a config file (as an ablation variant's) joins the dedup step key: the same output
    rerun with it reuses the filter step and reruns dedup; the flow form passes it as well."""
    root = runs["root"]
    out = tmp_path / "cur2"
    result = curate("-i", str(root / "crawl2"), "-o", str(out), "-c", str(runs["config"]))
    assert result.exit_code == 0, result.output
    assert gate(summary_of(out), "prior_dedup")["status"] == "off"
    variant = tmp_path / "against.yaml"
    variant.write_text(FAST_CONFIG + f"dedup_against:\n  - {root / 'cur1'}\n")
    result = curate("-i", str(root / "crawl2"), "-o", str(out), "-c", str(variant))
    assert result.exit_code == 0, result.output
    summary = summary_of(out)
    assert {s["name"]: s["status"] for s in summary["steps"]} == {"filter": "reused", "dedup": "ran"}
    assert gate(summary, "prior_dedup")["dropped"] == {"prior_exact_duplicate": 20, "prior_minhash_duplicate": 10}
    form = CurateParams(inputs=["x"], config=str(runs["config"]), dedup_against=[str(root / "cur1")])
    assert form.curate_config().dedup_against == [str(root / "cur1")]


def test_exact_copy_of_a_near_duplicate_maps_to_its_cluster_keeper(runs: dict[str, Path], tmp_path: Path) -> None:
    """Within one run: B, A, A' with B a near copy of A and A' an exact copy of A. Exact dedup drops A', MinHash
    then drops A in favour of B; the export maps A' to B (through A's cluster), and A to B as a near copy."""
    a = TEXTS[60]
    crawl = texts_jsonl(tmp_path / "crawl" / "c.jsonl", [near_copy(a), a, a]).parent
    out = tmp_path / "out"
    result = curate("-i", str(crawl), "-o", str(out), "-c", str(runs["config"]))
    assert result.exit_code == 0, result.output
    clusters = pl.read_parquet(out / EXPORT_DIR / EXPORT_FILE).sort("id")
    run_id = summary_of(out)["run_id"]
    assert clusters.select("id", "reason", "kept_id", "kept_run", "similarity").rows() == [
        ("c-001", "minhash_duplicate", "c-000", run_id, None),
        ("c-002", "exact_duplicate", "c-000", run_id, 1.0),
    ]
