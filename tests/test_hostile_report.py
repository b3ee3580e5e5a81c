"""Hostile inputs to `fineforge report` (issue 11, case 10): damaged curate folders are one clear error, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts

FAST_CONFIG = "filters:\n  url:\n    enabled: false\n"
EVIL = '<script>alert("x")</script><img src="http://evil.example/x.png">'


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished curate run over demo texts, one of them carrying markup in its text and URL."""
    base = tmp_path_factory.mktemp("report")
    lines = [{"id": f"d{i}", "text": text, "url": f"https://example.org/{i}"} for i, text in enumerate(demo_texts(8))]
    lines[0]["text"] = EVIL + " " + lines[0]["text"]
    lines[0]["url"] = "https://example.org/?q=" + EVIL
    (base / "docs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (base / "fast.yaml").write_text(FAST_CONFIG)
    out = base / "curated"
    args = ["curate", "--input", str(base / "docs.jsonl"), "--output", str(out), "--config", str(base / "fast.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def copy_of(curated: Path, tmp_path: Path) -> Path:
    target = tmp_path / "curated"
    shutil.copytree(curated, target)
    return target


def report(folder: Path):
    return CliRunner().invoke(app, ["report", str(folder), "--html", str(folder / "report.html")])


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_corrupt_parquet_is_named(curated: Path, tmp_path: Path, damage: str) -> None:
    folder = copy_of(curated, tmp_path)
    (path,) = sorted((folder / "data").glob("*.parquet"))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # the footer intact, the column pages garbage
        data[4 : len(data) // 2] = b"\x00" * (len(data) // 2 - 4)
        path.write_bytes(bytes(data))
    result = report(folder)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: not a readable Parquet file")
    assert not (folder / "report.html").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(records_read=None), "records_read is null, expected a count"),
        (lambda s: s.update(docs_out="12"), "docs_out is a str, expected a count"),
        (lambda s: s["stages"][2].update(docs_in=None), "stages[2].docs_in is null, expected a count"),
        (lambda s: s["stages"][0].update(dropped=None), "stages[0].dropped is null, expected an object of counts"),
        (lambda s: s.update(records_skipped={"request": -1}), "records_skipped['request'] is -1"),
        (lambda s: s.update(stages={}), "stages is a dict, expected a list"),
    ],
)
def test_summary_with_bad_counts_is_named(curated: Path, tmp_path: Path, change, message: str) -> None:
    folder = copy_of(curated, tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    change(summary)
    (folder / "summary.json").write_text(json.dumps(summary))
    result = report(folder)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {folder / 'summary.json'}: ") and message in result.output


def test_markup_from_the_data_is_escaped(curated: Path, tmp_path: Path) -> None:
    """Already held: text and URLs from the pages never become markup in the report."""
    folder = copy_of(curated, tmp_path)
    result = report(folder)
    assert result.exit_code == 0, result.output
    html = (folder / "report.html").read_text()
    assert "<script>alert" not in html and '<img src="http://evil' not in html
    assert "evil.example" in html  # shown, escaped


def test_missing_folder_and_empty_summary(tmp_path: Path) -> None:
    result = report(tmp_path / "nowhere")
    assert result.exit_code == 2 and "summary.json: missing" in result.output
    (tmp_path / "summary.json").write_text("")
    result = report(tmp_path)
    assert result.exit_code == 2 and f"{tmp_path / 'summary.json'}: not valid JSON" in result.output


def test_html_never_replaces_a_file_fineforge_did_not_write(curated: Path, tmp_path: Path) -> None:
    """Issue 20, hostile 1: `--html` over someone's data file (or folder) is refused and the file stays as it was;
    a report FineForge wrote (the default CURATE_DIR/report.html, or any --html) is rewritten on a rerun."""
    folder = copy_of(curated, tmp_path)
    theirs = tmp_path / "notes.jsonl"
    theirs.write_text("".join(json.dumps({"text": f"my own line {i}"}) + "\n" for i in range(5000)))
    before = theirs.read_bytes()
    result = CliRunner().invoke(app, ["report", str(folder), "--html", str(theirs)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"error: {theirs}: exists and is not a FineForge report; FineForge replaces only files it wrote: "
        "choose another --html"
    )
    assert theirs.read_bytes() == before
    result = CliRunner().invoke(app, ["report", str(folder), "--html", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith(f"error: {tmp_path}: is a folder"), result.output

    default = folder / "report.html"
    default.write_text("<html>my own page</html>\n")
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 2 and f"error: {default}: exists and is not a FineForge report" in result.output
    assert default.read_text() == "<html>my own page</html>\n"
    default.unlink()
    for _ in range(2):  # the second run replaces the report the first one wrote
        result = CliRunner().invoke(app, ["report", str(folder)])
        assert result.exit_code == 0, result.output
    assert "<title>FineForge report" in default.read_text()
