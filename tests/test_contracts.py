"""Each contract file has one owner module: typed fields, reader, writer, invariants (issue 21).

A real curate run on the demo crawl, its real shards and a four-step tiny training run give one file of each
contract; every owner's writer must reproduce the bytes its stage wrote from what its reader returns. A broken
summary must make the stage's check raise and the report show the same check failing. The last test counts the
modules whose string literals name each contract file as a path (the file name itself, or a path ending in it).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestration.demo_data import write_demo_crawl
from pipelines.common import run_record
from pipelines.curate import CurateConfig, run_curate
from pipelines.curate import summary as curate_summary
from pipelines.curate.job import parquet_rows
from pipelines.report.data import ReportError, load_curate
from pipelines.shards import Manifest, ShardError, load_manifest, verify, write_manifest
from pipelines.tokenize import run_tokenize

REPO = Path(__file__).resolve().parents[1]
CONTRACT_FILES = ("summary.json", "manifest.json", "run.json", "ablation.json")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base/{curated,shards,train}: real curate, tokenize and a 4-step tiny training run on the demo crawl."""
    from trainer.config import TrainConfig
    from trainer.train import train

    base = tmp_path_factory.mktemp("chain")
    write_demo_crawl(base / "crawl")
    run_curate(CurateConfig(), [str(base / "crawl")], base / "curated")
    run_tokenize([str(base / "curated")], base / "shards", shard_tokens=20_000, val_tokens=4_000)
    settings = dict(model="tiny", steps=4, batch_tokens=256, micro_batch=4, seq_len=64, warmup=1, eval_every=2)
    settings |= dict(eval_tokens=512, ckpt_every=0, hf_export=False, tensorboard=False, sample_tokens=2)
    train(TrainConfig(data=str(base / "shards"), out=str(base / "train"), device="cpu", **settings))
    return base


def test_summary_round_trip(chain: Path, tmp_path: Path) -> None:
    written = curate_summary.summary_path(chain / "curated").read_bytes()
    summary = curate_summary.read(chain / "curated", ReportError, "not a curate run")
    assert summary == json.loads(written) == curate_summary.recorded(chain / "curated")
    path = curate_summary.write(tmp_path, curate_summary.CurateSummary.model_validate(summary))
    assert path.read_bytes() == written
    assert all(row["ok"] for row in curate_summary.checks(summary, parquet_rows(chain / "curated" / "data")))


def test_broken_summary_raises_in_the_stage_and_shows_in_the_report(chain: Path, tmp_path: Path) -> None:
    folder = tmp_path / "curated"
    shutil.copytree(chain / "curated", folder)
    summary = curate_summary.read(folder, ReportError, "not a curate run")
    stage = next(s for s in summary["stages"] if sum(s["dropped"].values()))
    reason = next(iter(stage["dropped"]))
    stage["dropped"][reason] += 1  # one document counted twice: docs_in != docs_out + dropped
    curate_summary.write(folder, curate_summary.CurateSummary.model_validate(summary))

    with pytest.raises(
        curate_summary.InvariantError, match=f"every stage: docs_in = docs_out \\+ dropped: {stage['name']}"
    ):
        curate_summary.check(summary, summary["docs_out"])
    checks = {row["check"]: row for row in load_curate(folder).tables["checks"]}
    shown = checks["every stage: docs_in = docs_out + dropped"]
    assert not shown["ok"] and shown["detail"] == stage["name"]
    assert all(row["ok"] for name, row in checks.items() if name != shown["check"])


def test_funnel_and_drops_are_the_summary_rows(chain: Path) -> None:
    from orchestration import artifacts

    summary = curate_summary.read(chain / "curated", ReportError, "not a curate run")
    tables = load_curate(chain / "curated").tables
    base = curate_summary.stage_rows(summary)
    assert [{k: row[k] for k in base[0]} for row in tables["funnel"]] == base
    assert [{k: row[k] for k in base[0]} for row in artifacts.funnel_rows(summary)] == base
    reasons = [(r["stage"], r["reason"], r["docs"]) for r in curate_summary.reason_rows(summary)]
    assert [(r["stage"], r["reason"], r["docs"]) for r in tables["drops"]] == reasons
    shown = {(r["stage"], r["reason"], r["documents"]) for r in artifacts.drop_rows(summary)}
    assert shown == {r for r in reasons if r[2]} | {("read", "quarantined", summary["quarantined"])}


def test_manifest_round_trip_and_check(chain: Path, tmp_path: Path) -> None:
    written = (chain / "shards" / "manifest.json").read_bytes()
    manifest = load_manifest(chain / "shards")
    assert write_manifest(tmp_path, Manifest.model_validate(manifest)).read_bytes() == written
    broken = manifest | {"total_tokens": {**manifest["total_tokens"], "train": manifest["total_tokens"]["train"] + 1}}
    shards = tmp_path / "shards"
    shutil.copytree(chain / "shards", shards)
    write_manifest(shards, Manifest.model_validate(broken))
    with pytest.raises(ShardError, match="total_tokens\\['train'\\]"):
        verify(shards, checksums=False)


def test_run_record_round_trip(chain: Path, tmp_path: Path) -> None:
    written = run_record.run_path(chain / "train").read_bytes()
    record = run_record.recorded_run(chain / "train")
    assert record["status"] == "completed" and record["step"] == 4
    assert run_record.write_run(tmp_path, record).read_bytes() == written
    with pytest.raises(ValidationError, match="status"):
        run_record.write_run(tmp_path, {k: v for k, v in record.items() if k != "status"})


def _path_literals(tree: ast.AST, name: str) -> bool:
    """True when a string literal in `tree` is `name` or a path ending in it (`*/name`, `dir/name`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value.strip()
            if value == name or value.endswith(f"/{name}"):
                return True
    return False


def test_each_contract_file_is_named_by_at_most_two_modules() -> None:
    folders = [p for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")]
    folders = [p for p in folders if p.name not in {"tests", "benchmarks"} and (p / "__init__.py").exists()]
    modules = [*REPO.glob("*.py"), *(m for folder in folders for m in folder.rglob("*.py"))]
    trees = {p.relative_to(REPO): ast.parse(p.read_text(encoding="utf-8")) for p in modules}
    for name in CONTRACT_FILES:
        naming = sorted(str(path) for path, tree in trees.items() if _path_literals(tree, name))
        assert 1 <= len(naming) <= 2, f"{name} is named as a path in {naming}"
