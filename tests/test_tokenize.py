"""Tokenize: web texts into llm.c shards; round trip, totals, determinism, resume after kill -9, errors.

The texts are the built-in web text (`tests/builtin_text.py`: English articles, 19 other languages, emoji,
control characters, empty documents) and, as a second case of each test where they exist, the 580 real texts
of the shared web-text.jsonl.gz (`web_text` fixture).
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app
from model.tokenizer import EOT_TOKEN, decode, encode
from orchestration.demo_data import write_demo_crawl
from pipelines.curate import run_curate
from pipelines.curate.config import load_config
from pipelines.shards import read_shard, verify
from pipelines.tokenize import job as tokenize
from pipelines.tokenize.inputs import InputError, resolve_inputs
from pipelines.tokenize.job import (
    TokenizeError,
    document_order,
    encode_batch,
    run_tokenize,
    validation_documents,
)
from tests.builtin_text import TextSource
from tests.conftest import REPO_ROOT, SOURCES


@pytest.fixture(scope="module")
def texts(web_text: TextSource) -> list[str]:
    return web_text.texts


def write_parquet(folder: Path, texts: list[str], files: int = 3) -> Path:
    """Write `texts` in order across `files` Parquet files (small row groups) plus an id column."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(texts)), files)):
        table = pa.table({"id": [f"doc-{j}" for j in part], "text": [texts[j] for j in part]})
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=64)
    return folder


@pytest.fixture(scope="module")
def parquet_dir(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(tmp_path_factory.mktemp("parquet"), texts)


def split_documents(out: Path, manifest: dict, split: str) -> list[np.ndarray]:
    """Concatenate a split's shards and cut the stream at each EOT: one token array per document."""
    shards = [np.asarray(read_shard(out / s["path"])) for s in manifest["shards"] if s["split"] == split]
    if not shards:
        return []
    stream = np.concatenate(shards)
    assert stream[0] == EOT_TOKEN
    return np.split(stream, np.flatnonzero(stream == EOT_TOKEN)[1:])


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.bin"))}


def stable_manifest(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("created")
    return manifest


@pytest.fixture(scope="module")
def shuffled(parquet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The Parquet texts tokenized with the default shuffle and a 50k-token validation split, 1 worker."""
    out = tmp_path_factory.mktemp("shuffled")
    return out, run_tokenize([str(parquet_dir)], out, shard_tokens=40_000, val_tokens=50_000, seed=7)


def test_round_trip_every_document(shuffled: tuple[Path, dict], texts: list[str]) -> None:
    """Acceptance 1: decoding each document's tokens gives back its text exactly, each document once."""
    out, manifest = shuffled
    val = [decode(d[1:].tolist()) for d in split_documents(out, manifest, "val")]
    train = [decode(d[1:].tolist()) for d in split_documents(out, manifest, "train")]
    assert collections.Counter(val + train) == collections.Counter(texts)  # each document in exactly one split
    assert (len(val), len(train)) == (manifest["documents"]["val"], manifest["documents"]["train"])
    assert train != texts[len(val) :]  # shuffled


def test_manifest_totals_equal_encode_plus_one_eot_per_document(
    shuffled: tuple[Path, dict], texts: list[str], parquet_dir: Path
) -> None:
    """Acceptance 2, plus the shard layout the issue promises."""
    out, manifest = shuffled
    assert verify(out) == manifest
    tokens = manifest["total_tokens"]
    assert tokens["train"] + tokens["val"] == sum(len(encode(t)) for t in texts) + len(texts)
    assert manifest["documents"]["train"] + manifest["documents"]["val"] == len(texts)
    assert 50_000 <= tokens["val"] < 50_000 + max(len(encode(t)) + 1 for t in texts)
    for split in ("train", "val"):
        shards = [s for s in manifest["shards"] if s["split"] == split]
        assert [s["path"] for s in shards] == [f"{split}_{i:06d}.bin" for i in range(len(shards))]
        assert all(s["tokens"] == 40_000 for s in shards[:-1]) and 0 < shards[-1]["tokens"] <= 40_000
        assert sum(s["tokens"] for s in shards) == tokens[split]
        for s in shards:  # a shard's document count is the number of documents starting in it
            assert int((np.asarray(read_shard(out / s["path"])) == EOT_TOKEN).sum()) == s["documents"]
        assert sum(s["documents"] for s in shards) == manifest["documents"][split]
    assert set(manifest) == {
        "format", "tokenizer", "vocab_size", "eot", "config_hash", "source",
        "shards", "total_tokens", "documents", "created",
    }  # fmt: skip
    assert manifest["source"] == {"path": str(parquet_dir), "run_id": None, "config_hash": None}


def test_no_shuffle_keeps_input_order_and_reads_jsonl(web_text: TextSource, tmp_path: Path) -> None:
    manifest = run_tokenize([str(web_text.path)], tmp_path, shard_tokens=100_000, seed=None)
    docs = split_documents(tmp_path, manifest, "val") + split_documents(tmp_path, manifest, "train")
    assert [decode(d[1:].tolist()) for d in docs] == web_text.texts
    assert manifest["documents"]["val"] >= 1  # the default validation share, 1% of tokens, is not empty


def test_same_bytes_for_any_worker_count_and_idempotent_rerun(
    parquet_dir: Path, shuffled: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _ = shuffled
    monkeypatch.setattr(tokenize, "PARALLEL_SHARD_TOKENS", 1)  # shards written by the pool too, not just BPE
    run_tokenize([str(parquet_dir)], tmp_path, shard_tokens=40_000, val_tokens=50_000, seed=7, workers=2)
    assert shard_bytes(tmp_path) == shard_bytes(reference)
    assert stable_manifest(tmp_path) == stable_manifest(reference)
    assert not (tmp_path / ".tokenize" / "chunks").exists()  # scratch store removed once the manifest exists
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*")}
    again = run_tokenize([str(parquet_dir)], tmp_path, shard_tokens=40_000, val_tokens=50_000, seed=7)
    assert again == json.loads((tmp_path / "manifest.json").read_text())
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*")} == stamps  # nothing rewritten
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "train_000002.bin").unlink()
    run_tokenize([str(parquet_dir)], tmp_path, shard_tokens=40_000, val_tokens=50_000, seed=7)
    assert shard_bytes(tmp_path) == shard_bytes(reference)  # a lost shard is rebuilt, the same
    assert (tmp_path / "train_000000.bin").stat().st_mtime_ns == stamps["train_000000.bin"]


def test_other_settings_or_inputs_refuse_a_used_output_unless_overwrite(texts: list[str], tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in", texts[:200], files=2)
    out = tmp_path / "out"
    run_tokenize([str(source)], out, shard_tokens=20_000)
    with pytest.raises(TokenizeError, match="other settings"):
        run_tokenize([str(source)], out, shard_tokens=20_000, seed=8)
    with pytest.raises(TokenizeError, match="other input files"):
        run_tokenize([str(source / "part-000.parquet")], out, shard_tokens=20_000)
    (tmp_path / "foreign").mkdir()
    shutil.copy(out / "train_000000.bin", tmp_path / "foreign")
    with pytest.raises(TokenizeError, match="holds shards not made by this job"):
        run_tokenize([str(source)], tmp_path / "foreign")
    (out / "train_000001.bin").unlink()
    with pytest.raises(TokenizeError, match="finished shard set was changed"):
        run_tokenize([str(source)], out, shard_tokens=20_000)
    manifest = run_tokenize([str(source / "part-000.parquet")], out, shard_tokens=1 << 20, overwrite=True)
    assert sorted(p.name for p in out.glob("*.bin")) == ["train_000000.bin", "val_000000.bin"]
    assert manifest["documents"]["train"] + manifest["documents"]["val"] == 100
    assert verify(out) == manifest
    (out / "manifest.json").unlink()  # an unfinished run of other settings is simply replaced
    manifest = run_tokenize([str(source)], out, shard_tokens=30_000)
    assert manifest["documents"]["train"] + manifest["documents"]["val"] == 200
    assert {p.name for p in out.glob("*.bin")} == {s["path"] for s in manifest["shards"]}  # nothing stale left
    assert verify(out) == manifest


def test_seed_changes_the_order_only(parquet_dir: Path, shuffled: tuple[Path, dict], tmp_path: Path) -> None:
    out, manifest = shuffled
    other = run_tokenize([str(parquet_dir)], tmp_path, shard_tokens=40_000, val_tokens=0, seed=8)
    assert other["total_tokens"]["val"] == 0 and not list(tmp_path.glob("val_*"))
    assert other["total_tokens"]["train"] == sum(manifest["total_tokens"].values())
    assert shard_bytes(tmp_path)["train_000000.bin"] != shard_bytes(out)["train_000000.bin"]


def test_curate_output_folder(texts: list[str], tmp_path: Path) -> None:
    """A curate output: only data/*.parquet is read; summary.json supplies the provenance."""
    curated = tmp_path / "curated"
    write_parquet(curated / "data", texts[:100], files=2)
    write_parquet(curated / "rejects" / "gopher_quality", texts[100:150], files=1)
    (curated / "summary.json").write_text(json.dumps({"run_id": "run-42", "config_hash": "abc123", "docs_out": 100}))
    manifest = run_tokenize([str(curated)], tmp_path / "out", shard_tokens=1 << 20)
    assert manifest["source"] == {"path": str(curated), "run_id": "run-42", "config_hash": "abc123"}
    assert sum(manifest["documents"].values()) == 100
    assert sum(manifest["total_tokens"].values()) == sum(len(encode(t)) + 1 for t in texts[:100])


def _curate_inputs(source: str, request: pytest.FixtureRequest, folder: Path) -> list[str]:
    """Curate inputs: the built-in demo crawl, or the shared web-text.jsonl.gz (skips where it is absent)."""
    if source == "builtin":
        write_demo_crawl(folder)
        return [str(folder)]
    corpora = request.getfixturevalue("corpora")
    # 509 web-text records have no URL; give those a placeholder, as a crawl would have one.
    crawl = folder / "web-text.jsonl"
    folder.mkdir(parents=True)
    with gzip.open(corpora / "web-text.jsonl.gz", "rt") as f, open(crawl, "w") as out:
        for record in map(json.loads, f):
            record["url"] = record["url"] or f"https://corpus.invalid/{record['id']}"
            out.write(json.dumps(record) + "\n")
    return [str(crawl)]


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_real_curate_output(source: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Acceptance 1 on a curate output: curate a crawl for real, tokenize it, decode every document."""
    inputs = _curate_inputs(source, request, tmp_path / "crawl")
    summary = run_curate(load_config(None), inputs, tmp_path / "curated")
    curated_texts = pq.read_table(tmp_path / "curated" / "data", columns=["text"]).column("text").to_pylist()
    assert len(curated_texts) == summary["docs_out"] >= 100
    out = tmp_path / "shards"
    manifest = run_tokenize([str(tmp_path / "curated")], out, shard_tokens=30_000, workers=2)
    docs = split_documents(out, manifest, "val") + split_documents(out, manifest, "train")
    assert collections.Counter(decode(d[1:].tolist()) for d in docs) == collections.Counter(curated_texts)
    assert sum(manifest["total_tokens"].values()) == sum(len(encode(t)) + 1 for t in curated_texts)
    assert manifest["source"] == {
        "path": str(tmp_path / "curated"), "run_id": summary["run_id"], "config_hash": summary["config_hash"]
    }  # fmt: skip


def test_encoding_is_ordinary_text() -> None:
    """A literal <|endoftext|> in a document is text, never the separator; lone surrogates are repaired."""
    docs = ["hello <|endoftext|> world", "caf\u00e9 \U0001f600", "", "broken \ud800 surrogate"]
    lengths, tokens = encode_batch(docs)
    expected = [encode(d) for d in docs]
    assert lengths.tolist() == [len(e) for e in expected]
    assert tokens.tolist() == [t for e in expected for t in e]
    assert EOT_TOKEN not in tokens.tolist()


def test_literal_eot_text_and_empty_documents_round_trip(tmp_path: Path) -> None:
    docs = ["before <|endoftext|> after", "", "<|endoftext|>", "plain"]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    source = str(tmp_path / "docs.jsonl")
    manifest = run_tokenize([source], tmp_path / "out", val_tokens=0, seed=None, text_column="body")
    assert manifest["documents"]["train"] == 4
    assert [decode(d[1:].tolist()) for d in split_documents(tmp_path / "out", manifest, "train")] == docs


def test_document_order_and_validation_rule() -> None:
    order = document_order(1000, seed=3)
    assert sorted(order.tolist()) == list(range(1000)) and order.tolist() != list(range(1000))
    assert order.tolist() == document_order(1000, seed=3).tolist() != document_order(1000, seed=4).tolist()
    assert document_order(5, seed=None).tolist() == [0, 1, 2, 3, 4]
    units = np.array([10, 20, 30, 40])
    assert validation_documents(units, 25) == 2  # whole documents until at least 25 tokens
    assert validation_documents(units, 30) == 2
    assert validation_documents(units, 0) == 0
    assert validation_documents(units, None) == 1  # 1% of 100 tokens: one document
    assert validation_documents(np.array([100]), None) == 0  # never the only document
    with pytest.raises(TokenizeError, match="leaves no training documents"):
        validation_documents(units, 61)


CUT_GZIP = gzip.compress("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(5000)).encode())[:5000]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": \n', r"bad.jsonl: line 2: invalid JSON"),
        ("missing.jsonl", '{"text": "ok"}\n\n{"body": "x"}\n', r"missing.jsonl: line 3: no field 'text'"),
        ("number.jsonl", '{"text": 5}\n', r"number.jsonl: line 1: field 'text' is int, expected a string"),
        ("notes.txt", "hello", r"notes.txt: cannot tell the format"),
        ("no-column.parquet", pa.table({"body": ["x"]}), r"no-column.parquet: no column 'text' \(columns: body\)"),
        ("null.parquet", pa.table({"text": ["a", "b", None]}), r"null.parquet: row 2: 'text' is null"),
        ("ints.parquet", pa.table({"text": [1, 2]}), r"ints.parquet: column 'text' has type int64"),
        ("garbage.parquet", "not parquet at all", r"garbage.parquet: not a readable Parquet file"),
        ("cut.jsonl.gz", CUT_GZIP, r"cut.jsonl.gz: unreadable after line \d+"),
        ("latin1.jsonl", '{"text": "caf\u00e9"}\n'.encode("latin-1"), r"latin1.jsonl: unreadable after line 0"),
    ],
)
def test_bad_input_names_file_and_record(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        run_tokenize([str(path)], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_folder_glob_and_several_inputs(tmp_path: Path) -> None:
    """Folders give their Parquet/JSONL files sorted, skipping hidden and '_' names; several inputs keep order.

    A `.json` file whose first line is a JSON object is JSON Lines (the rule curate uses too); `notes.txt` is not.
    """
    for name in ("b/one.jsonl.gz", "a.jsonl", ".tokenize/c.jsonl", "_tmp/d.jsonl", "x.json", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        with (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "wt") as f:
            f.write(json.dumps({"text": name}) + "\n")
    source = resolve_inputs([str(tmp_path)])
    expected = [str(tmp_path / name) for name in ("a.jsonl", "b/one.jsonl.gz", "x.json")]
    assert [f.url for f in source.files] == expected
    both = resolve_inputs([str(tmp_path / "b" / "*.jsonl.gz"), str(tmp_path / "a.jsonl")])
    assert [f.url for f in both.files] == [str(tmp_path / "b" / "one.jsonl.gz"), str(tmp_path / "a.jsonl")]
    assert both.manifest_entry() == {
        "path": [str(tmp_path / "b" / "*.jsonl.gz"), str(tmp_path / "a.jsonl")],
        "run_id": [None, None],
        "config_hash": [None, None],
    }
    manifest = run_tokenize([str(tmp_path)], tmp_path / "out", val_tokens=0, seed=None)
    docs = split_documents(tmp_path / "out", manifest, "train")
    assert [decode(d[1:].tolist()) for d in docs] == ["a.jsonl", "b/one.jsonl.gz", "x.json"]


def test_missing_or_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        run_tokenize([str(tmp_path / "absent")], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no input files found"):
        run_tokenize([str(tmp_path / "empty")], tmp_path / "out2")


KILLABLE_RUN = """
import sys
import pipelines.tokenize.job as tokenize
tokenize.CHUNK_TOKENS = 50_000  # many small scratch chunks, so the kill lands between two of them
tokenize.run_tokenize([sys.argv[1]], sys.argv[2], shard_tokens=20_000, val_tokens=100_000, seed=1)
"""


def _start_and_kill(source: Path, out: Path, ready) -> None:
    """Run a tokenize subprocess and SIGKILL it as soon as `ready()` holds; fail if it finished first."""
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, str(source), str(out)], cwd=REPO_ROOT)
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_resume_after_kill_is_byte_identical(texts: list[str], tmp_path: Path) -> None:
    """Kill -9 mid-tokenize, then mid-shard-writing; the rerun redoes only what was unfinished."""
    source = write_parquet(tmp_path / "big", texts * 8, files=4)  # about 3M tokens
    reference = tmp_path / "reference"
    run_tokenize([str(source)], reference, shard_tokens=20_000, val_tokens=100_000, seed=1)

    out = tmp_path / "out"
    chunks = out / ".tokenize" / "chunks"
    _start_and_kill(source, out, lambda: (chunks / "chunk_000003.docs.npy").exists())
    assert not (chunks / "done.json").exists() and not list(out.glob("*.bin"))
    first_chunk = (chunks / "chunk_000000.tok.npy").stat().st_ino

    done = out / ".tokenize" / "done"
    _start_and_kill(source, out, lambda: len(list(done.glob("*.bin.json"))) >= 10)
    assert (chunks / "chunk_000000.tok.npy").stat().st_ino == first_chunk  # completed chunks were kept
    names = [p.name.removesuffix(".json") for p in done.glob("*.bin.json")]
    finished = {name: (out / name).stat().st_ino for name in names}
    plan = json.loads((out / ".tokenize" / "plan.json").read_text())
    assert 10 <= len(finished) < len(plan["shards"])
    # What a kill in the middle of a write leaves (the kill above may land between two shards): the rerun removes it.
    (out / f"train_{len(finished):06d}.bin.0123456789ab.tmp").write_bytes(b"half a shard")
    (out / "manifest.json.ba9876543210.tmp").write_text("{")

    run_tokenize([str(source)], out, shard_tokens=20_000, val_tokens=100_000, seed=1)
    assert {name: (out / name).stat().st_ino for name in finished} == finished  # finished shards not rewritten
    assert shard_bytes(out) == shard_bytes(reference)
    assert stable_manifest(out) == stable_manifest(reference)
    assert not list(out.rglob("*.tmp"))


def test_cli_tokenize_and_verify(web_text: TextSource, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "shards"
    args = ["tokenize", "--input", str(web_text.path), "--output", str(out), "--shard-tokens", "150000"]
    result = runner.invoke(app, [*args, "--no-shuffle", "--val-tokens", "0", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    shards = len(manifest["shards"])
    assert shards == -(-manifest["total_tokens"]["train"] // 150_000) >= 2 and manifest["total_tokens"]["val"] == 0
    assert f"train {manifest['total_tokens']['train']:,} tokens" in result.output
    result = runner.invoke(app, ["verify-shards", str(out / "manifest.json")])
    assert result.exit_code == 0 and f"{shards} shards OK" in result.output, result.output
    with open(out / "train_000001.bin", "r+b") as f:
        f.truncate(2000)
    result = runner.invoke(app, ["verify-shards", str(out)])
    assert result.exit_code == 1 and "train_000001.bin" in result.output
    result = runner.invoke(app, [*args, "--seed", "5"])
    assert result.exit_code == 2 and "other settings" in result.output
