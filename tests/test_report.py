"""The data-quality report on real curate runs: the built-in demo crawl and, where it exists, the shared corpora.

A session fixture runs the real curate pipeline on the demo crawl (`write_demo_crawl`: HTML pages in a WARC
with boilerplate, non-English pages, exact and near duplicates, spam; JSONL texts with a broken line) and, as a
second case of each test, on a slice of the shared corpora (trafilatura-eval HTML pages plus
web-text.jsonl.gz, which holds non-English texts and exact/near duplicates). Then the real tokenizer and a few
steps of the real trainer next to it, laid out as `fineforge demo` does (curated/, shards/, train/).
Every number the report shows is checked against summary.json, polars counts of the Parquet files and the
shard manifest, both in the embedded JSON and in the visible table cells. The page is rendered in headless
Chromium (skipped where /usr/bin/chromium is absent) with Chrome's network log on, and the log must hold no
request; a control page with one external image proves that the log would show it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from orchestration.demo_data import write_demo_crawl
from pipelines.report import ReportError, build_report, report_data, report_tables
from pipelines.report.data import NO_HOST, STAGES
from tests.conftest import SOURCES

CHROMIUM = Path("/usr/bin/chromium")
PAGES = 24  # trafilatura-eval pages in the corpora run, plus all 580 texts of web-text.jsonl.gz
TRAIN_STEPS = 4
STRICT_MIN_WORDS = 300  # the compared run's Gopher minimum: the demo articles have 224-620 words


@pytest.fixture(scope="session", params=SOURCES)
def crawl(request, tmp_path_factory) -> list[str]:
    """Curate inputs: the built-in demo crawl, or a slice of the shared corpora."""
    if request.param == "builtin":
        folder = tmp_path_factory.mktemp("demo_crawl")
        write_demo_crawl(folder)
        return [str(folder)]
    corpora = request.getfixturevalue("corpora")
    pages = sorted((corpora / "trafilatura-eval" / "html").glob("*.html.gz"))[:PAGES]
    return [str(p) for p in pages] + [str(corpora / "web-text.jsonl.gz")]


def _curate(out: Path, inputs: list[str], **overrides) -> dict:
    from pipelines.curate import run_curate
    from pipelines.curate.config import CurateConfig

    config = CurateConfig.model_validate({"run": {"max_tasks": 2}, **overrides})
    return run_curate(config, inputs, out)


@pytest.fixture(scope="session")
def lineage(tmp_path_factory, crawl) -> Path:
    """A real curate run, its shards and a short training run: base/{curated,shards,train}."""
    from pipelines.tokenize import run_tokenize
    from trainer.config import TrainConfig
    from trainer.train import train

    base = tmp_path_factory.mktemp("lineage")
    _curate(base / "curated", crawl)
    run_tokenize([str(base / "curated")], base / "shards", shard_tokens=40_000, val_tokens=8_000)
    train(
        TrainConfig(
            data=str(base / "shards"),
            out=str(base / "train"),
            model="tiny",
            steps=TRAIN_STEPS,
            batch_tokens=256,
            micro_batch=4,
            seq_len=64,
            warmup=1,
            eval_every=2,
            eval_tokens=512,
            ckpt_every=0,
            hf_export=False,
            tensorboard=False,
            sample_tokens=2,
            device="cpu",
        )
    )
    return base


@pytest.fixture(scope="session")
def strict_run(tmp_path_factory, crawl) -> Path:
    """A second real curate run with a stricter Gopher word minimum and rejects sampled to 1 per reason."""
    out = tmp_path_factory.mktemp("strict") / "curated"
    strict = {"filters": {"gopher_quality": {"min_doc_words": STRICT_MIN_WORDS}}, "rejects": {"sample_per_reason": 1}}
    _curate(out, crawl, **strict)
    return out


@pytest.fixture(scope="session")
def report(lineage, strict_run) -> Path:
    return build_report(lineage / "curated", lineage / "report.html", compare=strict_run)


class Page(HTMLParser):
    """Collects tags with their attributes, the embedded JSON and the visible cells of every table by id."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.blob = ""
        self._table, self._row, self._col, self._in_blob = None, None, None, False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = {}
            self.tables[self._table].append(self._row)
        elif tag == "td" and self._row is not None:
            self._col = attrs.get("data-col")
            self._row[self._col] = ""
        elif tag == "script" and attrs.get("id") == "report-data":
            self._in_blob = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._table, self._row = None, None
        elif tag == "td":
            self._col = None
        elif tag == "script":
            self._in_blob = False

    def handle_data(self, data):
        if self._in_blob:
            self.blob += data
        elif self._col is not None and self._row is not None:
            self._row[self._col] += data

    def rows(self, table_id: str) -> list[dict[str, str]]:
        """Body rows (header rows have no cells with data-col)."""
        return [r for r in self.tables[table_id] if r]


def _int(cell: str) -> int | None:
    return None if cell == "—" else int(cell.replace(",", ""))


def _pct(cell: str) -> float | None:
    return None if cell == "—" else float(cell.rstrip("%")) / 100


def _parquet(folder: Path) -> pl.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def test_every_number_equals_summary_and_parquet(lineage, report):
    """Acceptance 1: funnel, drops, totals and tokens match summary.json, Parquet row counts and the manifest."""
    run = lineage / "curated"
    summary = json.loads((run / "summary.json").read_text())
    page = Page(report.read_text())
    blob = json.loads(page.blob)
    kept = _parquet(run / "data")
    rejects = pl.concat([_parquet(d) for d in sorted((run / "rejects").iterdir())])
    assert [s["name"] for s in summary["stages"]] == list(STAGES)

    totals = blob["totals"]
    assert totals["data_rows"] == kept.height == summary["docs_out"] > 0
    assert totals["records_read"] == summary["records_read"]
    assert totals["docs_in"] == summary["docs_in"]
    assert totals["dropped"] == summary["docs_in"] - summary["docs_out"] > 0
    assert totals["rejects_rows"] == rejects.height
    assert totals["kept_chars"] == kept["text"].str.len_chars().sum()
    assert all(c["ok"] for c in blob["checks"]), blob["checks"]

    visible_funnel = page.rows("funnel")
    assert len(blob["funnel"]) == len(summary["stages"]) == len(visible_funnel)
    for row, cells, stage in zip(blob["funnel"], visible_funnel, summary["stages"], strict=True):
        dropped = sum(stage["dropped"].values())
        assert (row["stage"], row["docs_in"], row["docs_out"], row["dropped"]) == (
            stage["name"],
            stage["docs_in"],
            stage["docs_out"],
            dropped,
        )
        assert cells["stage"] == stage["name"]
        assert (_int(cells["docs_in"]), _int(cells["docs_out"]), _int(cells["dropped"])) == (
            stage["docs_in"],
            stage["docs_out"],
            dropped,
        )
        assert _pct(cells["drop_share"]) == pytest.approx(dropped / stage["docs_in"], abs=5e-4)
        assert _pct(cells["kept_share"]) == pytest.approx(stage["docs_out"] / summary["docs_in"], abs=5e-4)
        assert row["rejects_rows"] == rejects.filter(pl.col("stage") == stage["name"]).height
        assert _int(cells["chars_out"]) == row["chars_out"]
    # Characters: rejects are complete here (fewer than 1,000 drops per reason), so each stage's characters in
    # are its characters out plus the characters of its rejects, back to the extraction's output.
    assert blob["funnel"][-1]["chars_out"] == totals["kept_chars"]
    for row in blob["funnel"][2:]:
        stage_chars = rejects.filter(pl.col("stage") == row["stage"])["text"].str.len_chars().sum()
        assert row["chars_in"] == row["chars_out"] + stage_chars
    assert blob["funnel"][1]["chars_out"] == blob["funnel"][2]["chars_in"]

    expected_drops = [(s["name"], r, n) for s in summary["stages"] for r, n in s["dropped"].items()]
    assert sorted((r["stage"], r["reason"], r["docs"]) for r in blob["drops"]) == sorted(expected_drops)
    visible_drops = page.rows("drops")
    assert len(visible_drops) == len(blob["drops"]) + 1  # plus the total row
    for row, cells in zip(blob["drops"], visible_drops, strict=False):
        assert (cells["stage"], cells["reason"], _int(cells["docs"])) == (row["stage"], row["reason"], row["docs"])
        assert _pct(cells["share_of_docs_in"]) == pytest.approx(row["docs"] / summary["docs_in"], abs=5e-4)
        n_rows = rejects.filter((pl.col("stage") == row["stage"]) & (pl.col("reason") == row["reason"])).height
        assert _int(cells["rejects_rows"]) == row["rejects_rows"] == n_rows
    assert _int(visible_drops[-1]["docs"]) == totals["dropped"]

    languages = {r["language"]: r["kept"] for r in blob["languages"]}
    for language, n in kept.group_by("language").len().iter_rows():
        if language in languages:
            assert languages[language] == n
    hosts = [urlsplit(u).hostname or "" for u in kept["url"].fill_null("").to_list()]
    hosts = [h.removeprefix("www.") for h in hosts]
    for row, cells in zip(blob["domains_kept"], page.rows("domains-kept"), strict=True):
        assert (cells["domain"], _int(cells["docs"])) == (row["domain"], row["docs"])
        if row["domain"] != NO_HOST:
            assert row["docs"] == hosts.count(row["domain"])
    medians = {r["group"]: r for r in blob["medians"]}
    assert medians["kept"]["docs"] == kept.height
    assert medians["kept"]["chars"] == kept["text"].str.len_chars().median()

    for stage, key in (("minhash_dedup", "minhash_cluster_sizes"), ("exact_dedup", "exact_cluster_sizes")):
        sizes = [json.loads(m)["dedup_cluster_size"] for m in rejects.filter(pl.col("stage") == stage)["metadata"]]
        assert {r["size"]: r["docs"] for r in blob[key]} == {n: sizes.count(n) for n in set(sizes)}
    assert blob["exact_cluster_sizes"], "both crawls hold exact copies (demo mirrors, dolma fixtures)"

    manifest = json.loads((lineage / "shards" / "manifest.json").read_text())
    tokens = blob["tokens"]
    assert tokens["tokens"] == sum(manifest["total_tokens"].values())
    assert tokens["documents"] == sum(manifest["documents"].values()) == summary["docs_out"]
    assert _int(visible_funnel[-1]["tokens_out"]) == tokens["tokens"]
    for split, cells in zip(tokens["splits"], page.rows("token-splits"), strict=True):
        assert _int(cells["tokens"]) == split["tokens"] == manifest["total_tokens"][split["split"]]
        assert _int(cells["documents"]) == split["documents"] == manifest["documents"][split["split"]]

    metrics = [json.loads(line) for line in (lineage / "train" / "metrics.jsonl").read_text().splitlines()]
    assert blob["training"]["steps"] == sum(m["type"] == "step" for m in metrics) == TRAIN_STEPS
    assert blob["training"]["best_val_loss"] == min(m["val_loss"] for m in metrics if m["type"] == "eval")


def test_compare_shows_funnel_deltas_and_moved_reasons(lineage, strict_run, report):
    """--compare: per-stage docs_out deltas and per-reason deltas equal the two summaries' differences."""
    this = json.loads((lineage / "curated" / "summary.json").read_text())
    other = json.loads((strict_run / "summary.json").read_text())
    page = Page(report.read_text())
    compare = json.loads(page.blob)["compare"]
    for row, cells, a, b in zip(
        compare["funnel"], page.rows("compare-funnel"), this["stages"], other["stages"], strict=True
    ):
        assert row["delta"] == a["docs_out"] - b["docs_out"] == _int(cells["delta"].replace("+", ""))
    moved = {(r["stage"], r["reason"]): r["delta"] for r in compare["reasons"] if r["delta"]}
    a_drop = {(s["name"], k): v for s in this["stages"] for k, v in s["dropped"].items()}
    b_drop = {(s["name"], k): v for s in other["stages"] for k, v in s["dropped"].items()}
    expected = {k: a_drop.get(k, 0) - b_drop.get(k, 0) for k in set(a_drop) | set(b_drop)}
    assert moved == {k: v for k, v in expected.items() if v}
    assert moved.get(("gopher_quality", "gopher_short_doc"), 0) < 0  # the stricter run drops more short docs
    assert {(c["stage"], c["reason"]) for c in page.rows("compare-reasons")} == set(moved)


def test_sampled_rejects_give_no_character_estimates(strict_run):
    """Where rejects hold a sample, the funnel shows no characters for that stage and before (never a guess)."""
    tables = report_tables(strict_run)
    summary = json.loads((strict_run / "summary.json").read_text())
    sampled = [r for r in tables["funnel"] if r["rejects_rows"] < r["dropped"]]
    assert sampled, "the strict run keeps one reject per reason and task, so some stage must be sampled"
    last_sampled = max(i for i, r in enumerate(tables["funnel"]) if r["rejects_rows"] < r["dropped"])
    assert all(r["chars_in"] is None for r in tables["funnel"][: last_sampled + 1])
    check = next(c for c in tables["checks"] if c["check"].startswith("rejects rows"))
    assert check["ok"] and "sampled" in check["detail"]
    assert [r["docs"] for r in tables["drops"]] == [
        n for s in summary["stages"] for _, n in sorted(s["dropped"].items(), key=lambda kv: (-kv[1], kv[0]))
    ]


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "nav",
    "div",
    "a",
    "main",
    "h1",
    "h2",
    "h3",
    "p",
    "code",
    "section",
    "footer",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
    "details",
    "summary",
    "span",
    "script",
}


def test_html_is_self_contained_and_escaped(lineage, report):
    """Static check: no external src/href, no stylesheet links or CSS urls, only the inert JSON script, and
    document text with markup in it (extracted pages hold '<' and '&') never turns into tags."""
    html = report.read_text()
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:image/png;base64,")), (tag, name, value[:80])
        if tag == "script":
            assert attrs.get("type") == "application/json"
    style = html[html.index("<style>") : html.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert sum(1 for tag, _ in page.tags if tag == "script") == 1
    assert len(page.tags) > 300


def test_hostile_text_is_escaped(lineage, tmp_path):
    """Snippets, URLs and reasons from the data are escaped (a page's own markup cannot inject tags)."""
    from pipelines.report.render import render_html

    tables = report_data(lineage / "curated")
    evil = '<img src="http://evil.example/x.png"><script>alert(1)</script> & </script>'
    tables["drops"][0]["reason"] = evil
    samples = {"kept": [{"id": evil, "url": "http://evil.example/?a=<b>", "snippet": evil}]}
    html = render_html(tables, samples, {})
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert not any("evil" in str(attrs) for _, attrs in page.tags)
    assert json.loads(page.blob)["drops"][0]["reason"] == evil  # the JSON survives the escaping intact


def test_report_is_deterministic(lineage, strict_run, report, tmp_path):
    """Same inputs, byte-identical page (samples chosen by a hash of the id, PNGs without timestamps)."""
    again = build_report(lineage / "curated", tmp_path / "again.html", compare=strict_run)
    assert again.read_bytes() == report.read_bytes()


def _chromium(url: str, out: Path, netlog: Path) -> None:
    """Headless Chromium: screenshot of `url`, every network event logged to `netlog`, DNS answered locally."""
    profile = out.parent / f"profile-{out.stem}"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            "--net-log-capture-mode=Everything",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1366,3000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shutil.rmtree(profile, ignore_errors=True)


def _page_requests(netlog: Path) -> tuple[list[str], list[str]]:
    """URLs requested for the page (network partition of its file:// origin), and the browser's own requests.

    Chromium itself calls home (time service, account lookups) with initiator "not an origin" in another
    partition; those are returned apart so that only the page's own requests decide the test.
    """
    text = netlog.read_text(errors="replace")
    try:
        events = json.loads(text)["events"]
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        events = json.loads(text.rstrip().rstrip(",") + "]}")["events"]
    page, browser = set(), set()
    for event in events:
        params = event.get("params") or {}
        url, partition = params.get("url", ""), params.get("network_isolation_key")
        if partition is None or url.startswith(("file:", "data:")):
            continue
        (page if partition.startswith("file://") else browser).add(url)
    return sorted(page), sorted(browser)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed (apt-get install -y chromium)")
def test_chromium_renders_the_page_without_network(report, tmp_path):
    """Acceptance 2: a screenshot in headless Chromium, and the net log shows no request; the control page with
    one external image shows its request, so an empty log means something."""
    from PIL import Image

    shot, netlog = tmp_path / "report.png", tmp_path / "report-netlog.json"
    _chromium(report.resolve().as_uri(), shot, netlog)
    image = Image.open(shot).convert("L")
    assert image.size == (1366, 3000)
    assert len(np.unique(np.asarray(image.resize((64, 128))))) > 20  # text and figures, not a blank page
    assert netlog.stat().st_size > 0
    page_requests, _ = _page_requests(netlog)
    assert page_requests == []

    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://fineforge-control.invalid/pixel.png"></body></html>')
    _chromium(control.resolve().as_uri(), tmp_path / "control.png", tmp_path / "control-netlog.json")
    page_requests, _ = _page_requests(tmp_path / "control-netlog.json")
    assert page_requests == ["http://fineforge-control.invalid/pixel.png"]


def test_cli_writes_report_and_prints_summary(lineage, tmp_path):
    from cli import app

    out = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", str(lineage / "curated"), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"report: {out}" in result.output
    summary = json.loads((lineage / "curated" / "summary.json").read_text())
    assert f"{summary['docs_out']:,} kept" in result.output
    assert "funnel" in result.output and "minhash_dedup" in result.output


def test_bad_inputs_give_clear_errors(lineage, tmp_path):
    """A folder without summary.json, a summary missing a field and a broken metrics line name the file."""
    with pytest.raises(ReportError, match=r"summary\.json: missing"):
        report_tables(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    summary = json.loads((lineage / "curated" / "summary.json").read_text())
    del summary["stages"][3]["dropped"]
    (broken / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match=r"summary\.json: stages\[3\] lacks the field 'dropped'"):
        report_tables(broken)
    train = tmp_path / "train"
    shutil.copytree(lineage / "train", train, ignore=shutil.ignore_patterns("checkpoints"))
    with open(train / "metrics.jsonl", "a") as f:
        f.write("{not json\n")
    lines = len((train / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(ReportError, match=rf"metrics\.jsonl:{lines}: not JSON"):
        report_tables(lineage / "curated", train=train)
