"""Hostile inputs to `fineforge curate` (issue 11): every case through the real command, with the accounting.

Each case asserts the exit code, a message naming the file and the problem, and that no record goes uncounted:
`records_read = docs_in + quarantined + sum(records_skipped)`, quarantine lines = `quarantined`, rows in `data/`
= `docs_out` (`tests.test_curate.assert_accounting`). Inputs are built here from the built-in demo crawl and
`demo_texts`, so every case runs on a fresh clone; the shared corpora add real-data cases where present.
The URL filter is switched off in these runs (`FAST_CONFIG`): it loads its block lists for ~10 s per run and no
case here is about URLs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts, write_demo_crawl
from pipelines.curate.dedup_index import INDEX_DIR
from tests.test_curate import assert_accounting

FAST_CONFIG = "filters:\n  url:\n    enabled: false\n"


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo crawl (crawl.warc.gz: 1 warcinfo, 90 requests, 90 responses; docs.jsonl), written once."""
    folder = tmp_path_factory.mktemp("crawl")
    write_demo_crawl(folder)
    return folder


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(FAST_CONFIG)
    return path


def curate(*args: str, config: Path | None = None):
    """Run `fineforge curate ARGS` in-process; return the click result."""
    extra = ["--config", str(config)] if config else []
    return CliRunner().invoke(app, ["curate", *args, *extra])


def quarantine_lines(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((out / "quarantine").glob("*.jsonl")) for line in path.open()]


def members(data: bytes) -> list[bytes]:
    """The decompressed records of a one-member-per-record `.warc.gz`."""
    records, offset = [], 0
    while offset < len(data):
        inflater = zlib.decompressobj(31)
        records.append(inflater.decompress(data[offset:]))
        offset = len(data) - len(inflater.unused_data)
    return records


def with_length(record: bytes, delta: int) -> bytes:
    """The record with its WARC Content-Length changed by `delta` (its bytes unchanged)."""
    match = re.search(rb"Content-Length: (\d+)\r\n", record)
    return record[: match.start(1)] + str(int(match.group(1)) + delta).encode() + record[match.end(1) :]


def response_index(records: list[bytes], n: int) -> int:
    """Index of the n-th response record."""
    return [i for i, r in enumerate(records) if b"WARC-Type: response" in r[:600]][n]


def test_output_holding_the_input_is_refused_and_nothing_deleted(tmp_path: Path, config: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "rejects").mkdir()
    corpus = proj / "data" / "my_corpus.parquet"
    pq.write_table(pa.table({"text": demo_texts(5)}), corpus)
    (proj / "rejects" / "note.txt").write_text("my notes")
    before = {p: p.read_bytes() for p in proj.rglob("*") if p.is_file()}

    result = curate("--input", str(corpus), "--output", str(proj), config=config)
    assert result.exit_code == 2, result.output
    assert f"input {corpus} lies inside the output folder {proj}" in result.output
    result = curate("--input", str(corpus), "--output", str(proj), "--overwrite", config=config)
    assert result.exit_code == 2 and "lies inside the output folder" in result.output
    assert {p: p.read_bytes() for p in proj.rglob("*") if p.is_file()} == before


def test_foreign_output_folder_is_refused_unless_overwrite(crawl: Path, tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    (out / "rejects").mkdir(parents=True)
    (out / "rejects" / "note.txt").write_text("my notes")
    (out / "README.md").write_text("a folder of mine")
    inputs = ["--input", str(crawl / "docs.jsonl"), "--output", str(out)]

    result = curate(*inputs, config=config)
    assert result.exit_code == 2, result.output
    assert f"{out}: not empty (README.md, rejects) and not a curate output folder" in result.output
    assert "--overwrite" in result.output
    result = curate(*inputs, "--overwrite", config=config)  # --overwrite never deletes a file of another kind
    assert result.exit_code == 2 and "rejects/note.txt was not written by FineForge" in result.output
    assert (out / "rejects" / "note.txt").read_text() == "my notes"

    (out / "rejects" / "note.txt").unlink()
    (out / "data").mkdir()
    pq.write_table(pa.table({"text": ["old"]}), out / "data" / "old.parquet")
    result = curate(*inputs, config=config)
    assert result.exit_code == 2 and "not a curate output folder" in result.output
    result = curate(*inputs, "--overwrite", config=config)  # replaces curate's own kinds of files only
    assert result.exit_code == 0, result.output
    assert not (out / "data" / "old.parquet").exists()
    assert (out / "README.md").read_text() == "a folder of mine"
    summary = assert_accounting(out)

    # A file dropped into curate's own output later is not deleted by the next run either.
    (out / "quarantine" / "keep.txt").write_text("mine")
    (tmp_path / "strict.yaml").write_text(FAST_CONFIG + "  language:\n    threshold: 0.9\n")
    result = curate(*inputs, config=tmp_path / "strict.yaml")
    assert result.exit_code == 2 and "quarantine/keep.txt was not written by FineForge" in result.output
    assert (out / "quarantine" / "keep.txt").exists() and json.loads((out / "summary.json").read_text()) == summary
    (out / "quarantine" / "keep.txt").unlink()
    result = curate(*inputs, config=tmp_path / "strict.yaml")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["run_id"] != summary["run_id"]


def test_rerun_of_a_finished_run_keeps_its_summary(crawl: Path, tmp_path: Path, config: Path) -> None:
    """A no-op rerun returns the published summary; `duration_s` stays the real run's."""
    out = tmp_path / "out"
    args = ["--input", str(crawl / "docs.jsonl"), "--output", str(out)]
    assert curate(*args, config=config).exit_code == 0
    first = (out / "summary.json").read_bytes()
    again = curate(*args, config=config)
    assert again.exit_code == 0, again.output
    assert (out / "summary.json").read_bytes() == first
    recorded = json.loads(first)
    assert f"in {recorded['duration_s']:.1f} s" in again.output and f"run {recorded['run_id']}" in again.output


@pytest.mark.parametrize("compressed", [True, False], ids=["warc.gz", "warc"])
def test_warc_cut_mid_record_quarantines_the_partial_record(
    crawl: Path, tmp_path: Path, config: Path, compressed: bool
) -> None:
    data = (crawl / "crawl.warc.gz").read_bytes()
    records = members(data)
    cut = response_index(records, 4)
    if compressed:
        offsets = [0]
        for record in records:
            offsets.append(offsets[-1] + len(gzip.compress(record, mtime=0)))
        whole = b"".join(gzip.compress(r, mtime=0) for r in records)
        start = offsets[cut]
        broken = whole[: start + (offsets[cut + 1] - start) // 2]
    else:
        start = sum(map(len, records[:cut]))
        broken = b"".join(records)[: start + len(records[cut]) // 2]
    path = tmp_path / ("cut.warc.gz" if compressed else "cut.warc")
    path.write_bytes(broken)

    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=config)
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    (bad,) = quarantine_lines(out)
    assert bad["file"] == str(path) and bad["offset"] == start
    assert bad["error"].startswith("WARC record cut short")
    assert "truncated file" in bad["error"]
    assert summary["docs_in"] == 4 and summary["records_skipped"] == {"request": 5, "warcinfo": 1}


@pytest.mark.parametrize("delta", [+500, -500], ids=["too-long", "too-short"])
@pytest.mark.parametrize("compressed", [True, False], ids=["warc.gz", "warc"])
def test_wrong_content_length_loses_only_that_record(
    crawl: Path, tmp_path: Path, config: Path, delta: int, compressed: bool
) -> None:
    records = members((crawl / "crawl.warc.gz").read_bytes())
    damaged = response_index(records, 2)
    records[damaged] = with_length(records[damaged], delta)
    chunks = [gzip.compress(r, mtime=0) if compressed else r for r in records]
    path = tmp_path / ("bad.warc.gz" if compressed else "bad.warc")
    path.write_bytes(b"".join(chunks))
    start, end = sum(map(len, chunks[:damaged])), sum(map(len, chunks[: damaged + 1]))

    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=config)
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    (bad,) = quarantine_lines(out)
    assert (bad["file"], bad["offset"], bad["end"]) == (str(path), start, end)
    assert "does not end at a record boundary" in bad["error"] and "read on at the next WARC/1. header" in bad["error"]
    assert summary["records_read"] == 181 and summary["quarantined"] == 1
    assert summary["docs_in"] == 89 and summary["records_skipped"] == {"request": 90, "warcinfo": 1}


@pytest.mark.parametrize("name", ["notes.warc.gz", "notes.warc"])
def test_a_text_file_named_warc_is_one_quarantine_line(tmp_path: Path, config: Path, name: str) -> None:
    text = "these are my notes, not a web archive\n" * 100
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=config)
    assert result.exit_code == 0, result.output
    assert_accounting(out)
    (bad,) = quarantine_lines(out)
    assert bad["file"] == str(path) and bad["offset"] == 0
    assert bad["error"] == f"not a WARC file: no WARC/1.x record header in its {len(text):,} bytes"


def test_garbage_after_the_last_record_and_corrupt_member(crawl: Path, tmp_path: Path, config: Path) -> None:
    """Already held: bytes appended to a WARC. Now also: a corrupt gzip member is skipped, the rest read."""
    data = (crawl / "crawl.warc.gz").read_bytes()
    records = members(data)
    chunks = [gzip.compress(r, mtime=0) for r in records]
    hit = response_index(records, 1)
    flipped = bytearray(chunks[hit])
    flipped[len(flipped) // 2] ^= 0xFF
    chunks[hit] = bytes(flipped)
    path = tmp_path / "damaged.warc.gz"
    path.write_bytes(b"".join(chunks) + b"trailing garbage, not gzip\n" * 3)
    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=config)
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    errors = [(q["offset"], q["error"]) for q in quarantine_lines(out)]
    start = sum(map(len, chunks[:hit]))
    assert errors[0][0] == start and "corrupt gzip member" in errors[0][1]
    assert errors[1][0] == sum(map(len, chunks)) and errors[1][1].startswith("bytes that are not a gzip member")
    assert len(errors) == 2 and summary["docs_in"] == 89


def test_parquet_without_the_text_column_fails_the_run(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(300)], "body": demo_texts(300)}), path)
    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=config)
    assert result.exit_code == 2, result.output
    assert "stage 'read' quarantined 300 of 300 records (>= 99%)" in result.output
    assert "missing text field 'text' (keys: body, id) (x300)" in result.output
    assert not (out / "summary.json").exists()
    (tmp_path / "allow.yaml").write_text(FAST_CONFIG + "expected_drop: [read]\nread:\n  text_key: body\n")
    result = curate("--input", str(path), "--output", str(out), config=tmp_path / "allow.yaml")
    assert result.exit_code == 0, result.output
    assert assert_accounting(out)["docs_in"] == 300


def test_a_record_over_the_size_cap_is_quarantined_unread(tmp_path: Path, config: Path) -> None:
    texts = demo_texts(4)
    huge = "word " * (3 * 2**20 // 5)  # a 3 MiB line
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts)]
    lines.insert(2, json.dumps({"id": "huge", "text": huge}))
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    (tmp_path / "cap.yaml").write_text(FAST_CONFIG + "read:\n  max_record_mb: 1\n")
    out = tmp_path / "out"
    result = curate("--input", str(path), "--output", str(out), config=tmp_path / "cap.yaml")
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    (bad,) = quarantine_lines(out)
    size = len(lines[2].encode()) + 1
    assert (bad["file"], bad["line"]) == (str(path), 3)
    assert bad["error"] == f"line of {size:,} bytes is larger than read.max_record_mb (1 MiB)"
    assert summary["docs_in"] == 4


def test_a_50_mb_line_costs_no_more_than_the_cap(tmp_path: Path) -> None:
    """The reader holds at most the cap (16 MiB) of a 50 MB line, where it used to hold all of it."""
    import tracemalloc

    from pipelines.common.inputs import discover_inputs
    from pipelines.curate.read import SourceReader

    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b'{"id": "big", "text": "' + b"x" * 50_000_000 + b'"}\n{"id": "small", "text": "hello"}\n')
    reader = SourceReader(discover_inputs([str(path)]), str(tmp_path / "q"))
    tracemalloc.start()
    docs = list(reader.run(None))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [d.id for d in docs] == ["small"]
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    (bad,) = [json.loads(line) for line in (tmp_path / "q" / "00000.jsonl").open()]
    assert bad["line"] == 1 and "larger than read.max_record_mb (16 MiB)" in bad["error"]


def test_warc_records_that_are_not_documents_stay_out_of_the_funnel(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = curate("--input", str(crawl), "--output", str(out))  # the default config, URL filter included
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    assert summary["records_skipped"] == {"request": 90, "warcinfo": 1}
    read = summary["stages"][0]
    assert read["docs_in"] == 90 + 50  # responses and JSONL lines; requests and warcinfo are not documents
    assert not {"warc_request", "warc_warcinfo"} & set(read["dropped"])
    assert summary["records_read"] == 181 + 51 and summary["quarantined"] == 1  # docs.jsonl: one broken line

    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    html = (out / "report.html").read_text()
    assert html.count("Records that are not documents") == 1 and "request 90, warcinfo 1" in html
    assert "warc_request" not in html and "warc_warcinfo" not in html
    assert "91 records are not documents (request 90, warcinfo 1)" in report.output


def test_inputs_that_already_gave_clear_answers(tmp_path: Path, config: Path) -> None:
    """The cases that held before issue 11, through the command: each bad record quarantined with its reason."""
    result = curate("--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o1"), config=config)
    assert result.exit_code == 2 and f"{tmp_path / 'missing.jsonl'}: no such file or folder" in result.output

    data = tmp_path / "in"
    data.mkdir()
    good = [json.dumps({"id": f"g{i}", "text": t}).encode() for i, t in enumerate(demo_texts(6))]
    bad = [b'{"id": "b1", "text": "unterminated', b'{"id": "u1", "text": "caf\xe9"}', b'{"id": "n", "text": 42}']
    (data / "mixed.jsonl").write_bytes(b"\n".join(good[:3] + bad + good[3:]) + b"\n")
    (data / "empty.jsonl").write_bytes(b"")
    out = tmp_path / "out"
    result = curate("--input", str(data), "--output", str(out), config=config)
    assert result.exit_code == 0, result.output
    summary = assert_accounting(out)
    errors = {(Path(q["file"]).name, q.get("line", q.get("offset"))): q["error"] for q in quarantine_lines(out)}
    assert errors[("mixed.jsonl", 4)].startswith("broken JSON line")
    assert errors[("mixed.jsonl", 5)].startswith("invalid UTF-8 at byte")
    assert errors[("mixed.jsonl", 6)] == "text field 'text' is int, not a string"
    assert errors[("empty.jsonl", 0)] == "empty file"
    assert summary["records_read"] == 10 and summary["docs_in"] == 6


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("filters:\n  language: {threshold: 0.5\n", "not valid YAML at line 3, column 1"),
        ("filters:\n  language:\n    threshold: -0.5\n", "filters.language.threshold\n  Input should be greater than"),
        ("filters:\n  language:\n    threshold: 5.0\n", "filters.language.threshold\n  Input should be less than"),
        ("filters:\n  gopher_quality:\n    max_doc_words: -5\n", "filters.gopher_quality.max_doc_words\n"),
        (
            "filters:\n  gopher_quality:\n    min_doc_words: 500\n    max_doc_words: 50\n",
            "min_doc_words (500) is above",
        ),
        ("read:\n  max_record_mb: 0\n", "read.max_record_mb\n  Input should be greater than 0"),
        ("- a list\n", "expected a YAML mapping of settings at the top level, got a list"),
    ],
)
def test_bad_config_is_one_clear_error(crawl: Path, tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    for command in (["config", "show"], ["curate", "--input", str(crawl), "--output", str(tmp_path / "out")]):
        result = CliRunner().invoke(app, [*command, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and str(path) in result.output and message in result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_or_unwritable(crawl: Path, tmp_path: Path, config: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("a file")
    result = curate("--input", str(crawl), "--output", str(a_file), config=config)
    assert result.exit_code == 2 and f"{a_file}: is a file, not a folder" in result.output
    result = curate("--input", str(crawl), "--output", str(a_file / "sub"), config=config)
    assert result.exit_code == 2 and f"{a_file / 'sub'}: cannot create the output folder" in result.output
    locked = unwritable_folder(tmp_path)
    result = curate("--input", str(crawl), "--output", str(locked), config=config)
    assert result.exit_code == 2 and str(locked) in result.output and result.output.startswith("error: ")


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder path this process cannot create: under a read-only folder, or under /sys when running as root."""
    if os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o500)
        return parent / "out"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without /sys: no folder is unwritable")
    return Path("/sys/kernel/fineforge-test-out")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("read: [unclosed\n")
    result = CliRunner().invoke(app, ["--debug", "config", "show", "--config", str(path)])
    assert result.exit_code == 1 and type(result.exception).__name__ == "SettingsFileError"


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_warc_records_over_the_cap_are_skipped_unread(crawl: Path, tmp_path: Path, name: str) -> None:
    from pipelines.common.inputs import discover_inputs
    from pipelines.curate.read import SourceReader

    records = members((crawl / "crawl.warc.gz").read_bytes())
    path = tmp_path / name
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) if name.endswith(".gz") else r for r in records))
    lengths = [int(re.search(rb"Content-Length: (\d+)\r\n", r).group(1)) for r in records]
    cap = 4000
    reader = SourceReader(discover_inputs([str(path)]), str(tmp_path / "q"), max_record_bytes=cap)
    docs = list(reader.run(None))
    bad = [json.loads(line) for line in (tmp_path / "q" / "00000.jsonl").open()]
    assert len(bad) == sum(n > cap for n in lengths) > 0
    assert all(
        re.search(r"record of [\d,]+ bytes is larger than read.max_record_mb \(.+\); skipped", q["error"]) for q in bad
    )
    ends = {q["end"] for q in bad}
    if name.endswith(".gz"):  # each skipped range ends where the next gzip member starts
        starts, offset = set(), 0
        for record in records:
            offset += len(gzip.compress(record, mtime=0))
            starts.add(offset)
        assert ends <= starts
    counts = {key: int(metric.total) for key, metric in reader.stats.stats.items()}
    assert counts["records"] == 181 == counts["quarantined"] + counts["skipped"] + counts["total"]
    assert len(docs) == counts["forwarded"] > 0


def test_bad_dedup_against_folders_are_one_error_line(crawl: Path, tmp_path: Path, config: Path) -> None:
    """`--dedup-against` (issue 24) naming no curate output, an unfinished run, an index of other settings, a
    damaged index, the output itself or a missing folder: one `error:` line naming the folder, exit code 2,
    nothing written into the earlier output and no output folder made."""
    prior = tmp_path / "prior"
    assert curate("--input", str(crawl / "docs.jsonl"), "--output", str(prior), config=config).exit_code == 0

    def hashes(folder: Path) -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    before = hashes(prior)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("hello")
    unfinished, damaged = tmp_path / "unfinished", tmp_path / "damaged"
    shutil.copytree(prior, unfinished)
    (unfinished / "summary.json").unlink()
    shutil.copytree(prior, damaged)
    with (damaged / INDEX_DIR / "minhash_keys.npy").open("r+b") as f:
        f.truncate(200)
    other = tmp_path / "other.yaml"
    other.write_text(FAST_CONFIG + "dedup:\n  n_grams: 3\n")
    out = tmp_path / "out"
    cases = [
        (notes, config, f"{notes}: not a curate output"),
        (unfinished, config, f"{unfinished / 'summary.json'}: missing; an unfinished curate run"),
        (prior, other, f"{prior / INDEX_DIR}: dedup index made with other settings: n_grams 5 (this run: 3)"),
        (damaged, config, f"{damaged / INDEX_DIR}: damaged dedup index"),
        (out, config, f"{out}: is this run's own --output"),
        (tmp_path / "nowhere", config, f"{tmp_path / 'nowhere'}: --dedup-against needs a curate output folder"),
    ]
    for earlier, settings, message in cases:
        args = ["--input", str(crawl / "docs.jsonl"), "--output", str(out), "--dedup-against", str(earlier)]
        result = curate(*args, config=settings)
        assert result.exit_code == 2, (message, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (message, lines)
        assert not out.exists()
    assert hashes(prior) == before
