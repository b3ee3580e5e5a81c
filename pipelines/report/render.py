"""Render report tables, samples and figures into one self-contained HTML page.

The page makes no network request: CSS is inline, fonts are the system's, figures are `data:image/png`
URIs, and no element carries a `src` or `href` other than a `data:` URI, an in-page `#anchor`, or (for a variant
of an ablation) the relative link to the ablation's report. Document
URLs appear as text, not links, so even a click stays offline. Every string that comes from the data
(snippets, URLs, reasons, file names) is HTML-escaped. The numbers are embedded once more as JSON in
`<script type="application/json" id="report-data">` (inert: no script runs), so tests and tools can check
the page against `summary.json` without scraping it; each visible number cell also names its field in a
`data-col` attribute.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pipelines.curate.summary import FILENAME as SUMMARY_FILE

CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --kept:#2563eb; --drop:#ea580c; --ok:#15803d;
  --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color:var(--fg); background:#fff; }
nav { position:fixed; top:0; left:0; bottom:0; width:210px; padding:22px 16px; background:var(--bg);
  border-right:1px solid var(--line); overflow-y:auto; }
nav .brand { font-weight:700; font-size:16px; margin-bottom:14px; }
nav a { display:block; color:var(--fg); text-decoration:none; padding:4px 8px; border-radius:6px; font-size:14px; }
nav a:hover { background:#e5e7eb; }
main { margin-left:210px; padding:28px 40px 60px; max-width:1180px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:20px; margin:40px 0 10px; padding-top:12px; border-top:1px solid var(--line); }
h3 { font-size:16px; margin:22px 0 8px; }
footer { margin-top:48px; padding-top:12px; border-top:1px solid var(--line); font-size:13px; }
p.lead, .muted { color:var(--muted); }
p.lead { margin:0 0 18px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(120px, 1fr)); gap:12px; margin:18px 0; }
.card { border:1px solid var(--line); border-radius:10px; padding:12px 14px; background:#fff; }
.card .v { font-size:22px; font-weight:650; font-variant-numeric:tabular-nums; }
.card .k { font-size:12.5px; color:var(--muted); }
table { border-collapse:collapse; margin:8px 0 14px; font-size:13.5px; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { font-weight:600; background:var(--bg); position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fcfcfd; }
tr.total td { font-weight:600; border-top:2px solid #d1d5db; }
.ok { color:var(--ok); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
.pos { color:var(--ok); } .neg { color:var(--bad); }
.two { display:grid; grid-template-columns:repeat(auto-fit, minmax(330px, 1fr)); gap:24px; }
img.fig { max-width:100%; height:auto; border:1px solid var(--line); border-radius:8px; }
details { border:1px solid var(--line); border-radius:8px; margin:8px 0; background:#fff; }
details > summary { cursor:pointer; padding:8px 12px; font-weight:600; }
details > summary .muted { font-weight:400; }
.samples { display:grid; grid-template-columns:repeat(auto-fill, minmax(320px, 1fr)); gap:10px;
  padding:4px 12px 12px; }
.sample { border-left:3px solid var(--drop); background:var(--bg); padding:8px 10px; border-radius:4px;
  font-size:13px; overflow-wrap:anywhere; }
.sample.kept { border-left-color:var(--kept); }
.sample .url { color:var(--muted); font-size:12px; margin-bottom:4px; }
.sample .about { font-size:12px; margin-top:6px; }
.tag { display:inline-block; padding:0 6px; border-radius:4px; background:#eef2ff; font-size:12px; }
"""


# The first bytes of every HTML page FineForge writes (data and ablation reports): how FineForge recognises its
# own reports, the only existing files it replaces when it writes one (`pipelines.common.files.check_replaceable`).
PAGE_HEAD = (
    "<!DOCTYPE html>\n"
    '<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>FineForge "
)


def is_report(path: Path) -> bool:
    """Whether `path` is an HTML report FineForge wrote (it begins with `PAGE_HEAD`); False if unreadable."""
    head = PAGE_HEAD.encode()
    try:
        with open(path, "rb") as f:
            return f.read(len(head)) == head
    except OSError:
        return False


def fmt_int(value: int | None) -> str:
    """Thousands-separated integer, or an em dash for a missing value."""
    return "—" if value is None else f"{int(value):,}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a percentage: one decimal, two up to 0.15%, an em dash when undefined."""
    if value is None:
        return "—"
    pct = value * 100
    return f"{pct:.2f}%" if pct and f"{pct:.1f}" in ("0.0", "-0.0", "0.1", "-0.1") else f"{pct:.1f}%"


def fmt_float(value: float | None, digits: int = 2) -> str:
    """A float with `digits` decimals, or an em dash."""
    return "—" if value is None else f"{value:,.{digits}f}"


def fmt_delta(value: int | None) -> str:
    """A signed integer difference."""
    if value is None:
        return "—"
    return f"{int(value):+,}" if value else "0"


FORMATS: dict[str, Callable[[Any], str]] = {
    "int": fmt_int,
    "pct": fmt_pct,
    "float": fmt_float,
    "float1": lambda v: fmt_float(v, 1),
    "float3": lambda v: fmt_float(v, 3),
    "delta": fmt_delta,
    "text": lambda v: "—" if v is None else str(v),
    "mono": lambda v: "—" if v is None else str(v),
    "check": lambda v: "✓ pass" if v else "✗ FAIL",
}
NUMERIC = {"int", "pct", "float", "float1", "float3", "delta"}


def table(
    table_id: str,
    columns: Sequence[tuple[str, str, str]],
    rows: Sequence[dict[str, Any]],
    total: dict[str, Any] | None = None,
) -> str:
    """An HTML table; each column is (field, header, kind) with kind a key of FORMATS.

    Cells carry `data-col="<field>"` so tests can read the visible value of each field.
    """
    head = "".join(
        f'<th class="{"num" if kind in NUMERIC else ""}">{escape(label)}</th>' for _, label, kind in columns
    )

    def row_html(row: dict[str, Any], css: str = "") -> str:
        cells = []
        for key, _, kind in columns:
            value = row.get(key)
            classes = ["num"] if kind in NUMERIC else []
            if kind == "mono":
                classes.append("mono")
            if kind == "check":
                classes.append("ok" if value else "bad")
            if kind == "delta" and value:
                classes.append("pos" if value > 0 else "neg")
            cells.append(f'<td class="{" ".join(classes)}" data-col="{key}">{escape(FORMATS[kind](value))}</td>')
        return f'<tr class="{css}">' + "".join(cells) + "</tr>"

    body = "".join(row_html(r) for r in rows)
    if total is not None:
        body += row_html(total, "total")
    return f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def image(png: bytes | None, alt: str) -> str:
    """An inline PNG (`data:` URI), or nothing when there is no figure."""
    if not png:
        return ""
    return f'<img class="fig" alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def _documents(n: int) -> str:
    return f"{fmt_int(n)} document{'' if n == 1 else 's'}"


def _sample_cards(docs: Sequence[dict[str, Any]], kept: bool) -> str:
    cards = []
    for doc in docs:
        url = escape(doc.get("url") or "(no url)")
        text = escape(doc.get("snippet") or "(empty text)")
        doc_id = str(doc.get("id"))
        short_id = doc_id if len(doc_id) <= 48 else "…" + doc_id[-47:]
        about = escape(f"{doc.get('about', '')} · id {short_id}")
        cards.append(
            f'<div class="sample{" kept" if kept else ""}"><div class="url mono">{url}</div><div>{text}</div>'
            f'<div class="muted about">{about}</div></div>'
        )
    return '<div class="samples">' + "".join(cards) + "</div>"


FUNNEL_COLUMNS = [
    ("stage", "stage", "text"),
    ("docs_in", "docs in", "int"),
    ("docs_out", "docs out", "int"),
    ("dropped", "dropped", "int"),
    ("drop_share", "dropped % of stage", "pct"),
    ("kept_share", "remaining % of input", "pct"),
    ("chars_in", "chars in", "int"),
    ("chars_out", "chars out", "int"),
    ("tokens_out", "tokens out", "int"),
]
DROP_COLUMNS = [
    ("stage", "stage", "text"),
    ("reason", "reason", "mono"),
    ("docs", "docs", "int"),
    ("share_of_stage_in", "% of stage input", "pct"),
    ("share_of_dropped", "% of all drops", "pct"),
    ("share_of_docs_in", "% of all docs", "pct"),
    ("rejects_rows", "rows in rejects/", "int"),
]


def _overview(t: dict[str, Any]) -> str:
    totals, run = t["totals"], t["run"]
    cards = [
        ("records read", fmt_int(totals["records_read"])),
        ("documents kept", fmt_int(totals["docs_out"])),
        ("kept share", fmt_pct(totals["kept_share"])),
        ("documents dropped", fmt_int(totals["dropped"])),
        ("quarantined", fmt_int(totals["quarantined"])),
        ("records skipped (not documents)", fmt_int(sum(totals["records_skipped"].values()))),
        ("characters kept", fmt_int(totals["kept_chars"])),
    ]
    if t.get("tokens"):
        cards.append(("tokens", fmt_int(t["tokens"]["tokens"])))
    if run.get("duration_s") is not None:
        cards.append(("curate time", f"{run['duration_s']:,.1f} s"))
    inputs = run.get("inputs") or []
    shown = ", ".join(escape(str(i)) for i in inputs[:4]) + (f" and {len(inputs) - 4} more" if len(inputs) > 4 else "")
    meta = (
        f'<p class="muted">run <code>{escape(str(run.get("run_id")))}</code> · config '
        f"<code>{escape(str(run.get('config_hash')))}</code> · inputs: {shown or '—'}</p>"
    )
    if skipped := totals["records_skipped"]:
        kinds = ", ".join(f"{escape(str(kind))} {fmt_int(n)}" for kind, n in skipped.items())
        meta += (
            f'<p class="muted">Records that are not documents, outside the funnel and the drops: {kinds} '
            "(WARC record types).</p>"
        )
    checks = table(
        "checks",
        [("check", "invariant", "text"), ("ok", "result", "check"), ("detail", "detail", "mono")],
        t["checks"],
    )
    return meta + _privacy(t.get("privacy")) + _cards(cards) + "<h3>Consistency checks</h3>" + checks


def _privacy(p: dict[str, Any] | None) -> str:
    """One line on where this run replaced email and IP addresses (`summary.json`'s `privacy`), loud when raw."""
    if p is None:
        return ""
    if not p["pii"]:
        return (
            '<p class="bad" id="privacy">PII replacement is off for this run (pii.enabled: false): emails and IP '
            "addresses are raw in every file it wrote and in this page.</p>"
        )
    shown = (
        "Emails and public IP addresses are replaced in the text, url and metadata of every document this page shows"
    )
    if p["raw_rejects"]:
        raw = ", ".join(f"<code>{escape(folder)}</code>" for folder in p["raw"])
        return (
            f'<p class="bad" id="privacy">pii.raw_rejects is on: {raw} of this run keep RAW email and IP addresses; '
            f"do not share them. {shown}; the kept documents in <code>data/</code> are anonymised.</p>"
        )
    return (
        f'<p class="muted" id="privacy">{shown} and in every file of the run (data, rejects, quarantine, work '
        "files); documentation and private address ranges stay.</p>"
    )


def _funnel(t: dict[str, Any], png: bytes | None) -> str:
    note = (
        f'<p class="muted">Documents from <code>{SUMMARY_FILE}</code>; characters from the Parquet text where the '
        "rejects of a stage and all later stages are complete (raw HTML before extraction is not counted); "
        "tokens from the shard manifest.</p>"
    )
    columns = FUNNEL_COLUMNS if t.get("tokens") else [c for c in FUNNEL_COLUMNS if c[0] != "tokens_out"]
    return image(png, "document funnel") + table("funnel", columns, t["funnel"]) + note


def _drops(t: dict[str, Any]) -> str:
    total = {"stage": "total", "reason": "all reasons", "docs": t["totals"]["dropped"], "share_of_docs_in": None}
    if t["totals"]["docs_in"]:
        total["share_of_docs_in"] = t["totals"]["dropped"] / t["totals"]["docs_in"]
        total["share_of_dropped"] = 1.0 if t["totals"]["dropped"] else None
    total["rejects_rows"] = t["totals"]["rejects_rows"]
    return table("drops", DROP_COLUMNS, t["drops"], total)


def _samples(t: dict[str, Any], samples: dict[str, list[dict[str, Any]]]) -> str:
    parts = [
        '<p class="muted">A fixed pseudo-random choice (by a hash of the document id), the same on every run.</p>'
    ]
    kept = samples.get("kept", [])
    parts.append(
        f'<details open><summary>kept <span class="muted">· {_documents(t["totals"]["docs_out"])}</span>'
        f"</summary>{_sample_cards(kept, True)}</details>"
    )
    for i, row in enumerate(t["drops"]):
        docs = samples.get(f"{row['stage']}/{row['reason']}", [])
        body = (
            _sample_cards(docs, False)
            if docs
            else '<p class="muted" style="padding:0 12px">no rows kept in rejects/</p>'
        )
        count = f"{_documents(row['docs'])} ({fmt_pct(row['share_of_docs_in'])} of all)"
        parts.append(
            f"<details{' open' if i < 2 else ''}><summary>{escape(row['stage'])} · "
            f'<code>{escape(row["reason"])}</code> <span class="muted">· {count}</span></summary>{body}</details>'
        )
    return "".join(parts)


def _no_clusters(t: dict[str, Any], stage: str) -> str:
    dropped = next((r["dropped"] for r in t["funnel"] if r["stage"] == stage), 0)
    why = "no cluster sizes in the rejects metadata" if dropped else f"{stage} dropped no documents"
    return f'<p class="muted">{why}</p>'


def _distributions(t: dict[str, Any], png: bytes | None) -> str:
    medians = table(
        "medians",
        [
            ("group", "kept / dropped at", "text"),
            ("docs", "docs", "int"),
            ("chars", "median chars", "float1"),
            ("words", "median words", "float1"),
            ("mean_word_len", "median mean word length", "float"),
            ("language_score", "median language score", "float3"),
            ("dup_line_frac", "mean dup-line fraction", "float3"),
        ],
        t["medians"],
    )
    clusters = table(
        "minhash-clusters",
        [("size", "cluster size", "int"), ("docs", "dropped docs", "int")],
        t["minhash_cluster_sizes"],
    )
    exact = table(
        "exact-duplicates",
        [("size", "cluster size", "int"), ("docs", "dropped docs", "int")],
        t["exact_cluster_sizes"],
    )
    return (
        '<p class="muted">Kept documents against documents dropped after extraction (density, so the two shapes are '
        "comparable however different their counts; linear axes span the 0.5th to 99.5th percentile).</p>"
        + image(png, "feature distributions, kept against dropped")
        + medians
        + '<div class="two"><div><h3>Near-duplicate clusters (MinHash)</h3>'
        + (clusters if t["minhash_cluster_sizes"] else _no_clusters(t, "minhash_dedup"))
        + "</div><div><h3>Exact duplicates</h3>"
        + (exact if t["exact_cluster_sizes"] else _no_clusters(t, "exact_dedup"))
        + "</div></div>"
    )


def _domains(t: dict[str, Any]) -> str:
    cols = [("domain", "domain", "mono"), ("docs", "docs", "int"), ("share", "share", "pct")]
    return (
        f'<div class="two"><div><h3>Kept</h3>{table("domains-kept", cols, t["domains_kept"])}</div>'
        f"<div><h3>Dropped</h3>{table('domains-dropped', cols, t['domains_dropped'])}</div></div>"
    )


def _languages(t: dict[str, Any]) -> str:
    cols = [
        ("language", "language", "mono"),
        ("kept", "kept docs", "int"),
        ("dropped", "dropped by language filter", "int"),
    ]
    return table("languages", cols, t["languages"])


def _decontamination(d: dict[str, Any]) -> str:
    what = "dropped" if d["action"] == "drop" else "flagged in metadata and kept"
    head = (
        f'<p class="muted">Documents sharing a word n-gram with an evaluation set are {what}; index '
        f"<code>{escape(str(d['index']))}</code>; {fmt_int(d['docs_in'])} documents checked.</p>"
    )
    sets = table(
        "decontamination-sets",
        [("eval_set", "eval set", "mono"), ("docs", "contaminated docs", "int"), ("dropped", "dropped", "int")],
        d["sets"],
    )
    ngrams = table(
        "decontamination-ngrams",
        [("eval_set", "eval set", "mono"), ("ngram", "shared n-gram (normalised)", "mono"), ("docs", "docs", "int")],
        d["ngrams"],
    )
    if not d["sets"]:
        return head + '<p class="muted">no document shares an n-gram with the index</p>'
    return head + sets + "<h3>Most frequent shared n-grams</h3>" + ngrams


def _pii(p: dict[str, Any]) -> str:
    counts = _cards(
        [
            ("documents changed", fmt_int(p["modified"])),
            ("of documents", fmt_pct(p["modified"] / p["docs_in"] if p["docs_in"] else None)),
            ("emails replaced", fmt_int(p["replacements"]["emails"])),
            ("IP addresses replaced", fmt_int(p["replacements"]["ip_addresses"])),
        ]
    )
    note = (
        '<p class="muted">Before: the replaced address as a placeholder (originals are not kept anywhere); '
        "after: the published text with its replacement.</p>"
    )
    samples = table(
        "pii-samples",
        [("before", "before", "text"), ("after", "after", "text"), ("url", "url", "mono")],
        p["samples"],
    )
    return counts + (note + samples if p["samples"] else "")


def _duplicates(d: dict[str, Any]) -> str:
    runs = table(
        "duplicates-runs",
        [
            ("run_id", "earlier run", "mono"),
            ("path", "folder", "mono"),
            ("exact", "exact copies dropped", "int"),
            ("minhash", "near copies dropped", "int"),
        ],
        d["runs"],
    )
    reasons = table(
        "duplicates-reasons", [("reason", "reason", "mono"), ("docs", "dropped docs", "int")], d["reasons"]
    )
    pairs = table(
        "duplicates-pairs",
        [
            ("reason", "reason", "mono"),
            ("text", "dropped", "text"),
            ("kept_text", "kept (the document it duplicates)", "text"),
            ("kept_run", "kept by run", "mono"),
            ("similarity", "similarity", "float"),
        ],
        d["pairs"],
    )
    head = (
        '<p class="muted">Every dropped duplicate and the document it duplicates are in '
        "<code>clusters/duplicates.parquet</code>; a few are shown side by side (near copies have no similarity: "
        "MinHash says only that they share a bucket).</p>"
    )
    earlier = "<h3>Dropped as copies of earlier runs</h3>" + runs if d["runs"] else ""
    return head + earlier + "<h3>Duplicates by reason</h3>" + reasons + "<h3>Clusters side by side</h3>" + pairs


def _quarantine(t: dict[str, Any]) -> str:
    cols = [("error", "error", "text"), ("file", "file", "mono"), ("records", "records", "int")]
    return table("quarantine", cols, t["quarantine"])


def _quality(q: dict[str, Any], samples: dict[str, list[dict[str, Any]]], png: bytes | None) -> str:
    model = q["model"]
    if model.get("score_only"):
        cut = "none (score only)"
    elif model.get("keep_fraction") is not None:
        cut = f"top {fmt_pct(model['keep_fraction'])} (score ≥ {fmt_float(model.get('cutoff'), 3)})"
    else:
        cut = f"score ≥ {fmt_float(model.get('cutoff'), 3)}"
    cards = _cards(
        [
            ("documents scored", fmt_int(model["scored"])),
            ("passed the cut", fmt_int(model["selected"])),
            ("passed share", fmt_pct(model["selected"] / model["scored"] if model["scored"] else None)),
            ("cut", cut),
        ]
    )
    meaning = (
        f"the probability of label {escape(str(model.get('positive_label')))}"
        if model.get("score") == "probability"
        else "the expected label value"
    )
    head = (
        f'<p class="muted">Model <code>{escape(str(model.get("model")))}</code> (sha256 '
        f"<code>{escape(str(model.get('model_sha256'))[:16])}…</code>); the score is {meaning}. "
        "Counts cover every document the quality stage scored; later stages (dedup) drop some of them.</p>"
    )
    curve_rows = [{**r, "cut": "◀ this run" if r["this_run"] else ""} for r in q["curve"]]
    curve = table(
        "quality-curve",
        [
            ("threshold", "score ≥", "float3"),
            ("docs", "documents kept", "int"),
            ("docs_share", "% of documents", "pct"),
            ("tokens", "GPT-2 tokens kept", "int"),
            ("tokens_share", "% of tokens", "pct"),
            ("cut", "", "text"),
        ],
        curve_rows,
    )
    bands = table(
        "quality-bands",
        [("band", "score band", "text"), ("docs", "documents", "int"), ("passed", "passed the cut", "int")],
        q["bands"],
    )
    parts = []
    for band in q["bands"]:
        docs = samples.get(f"quality/{band['band']}", [])
        body = _sample_cards(docs, True) if docs else '<p class="muted" style="padding:0 12px">no text kept</p>'
        parts.append(
            f"<details><summary>score {escape(band['band'])} "
            f'<span class="muted">· {_documents(band["docs"])}</span></summary>{body}</details>'
        )
    return (
        head
        + cards
        + image(png, "quality scores and the share kept at each threshold")
        + "<h3>What a threshold keeps</h3>"
        + curve
        + "<h3>Score bands</h3>"
        + bands
        + "".join(parts)
    )


def _tokens(tok: dict[str, Any], png: bytes | None) -> str:
    cols = [
        ("split", "split", "text"),
        ("shards", "shards", "int"),
        ("documents", "documents", "int"),
        ("tokens", "tokens (with EOT)", "int"),
        ("manifest_documents", "manifest documents", "int"),
        ("manifest_tokens", "manifest tokens", "int"),
    ]
    stats = _cards(
        [
            ("mean tokens / doc", fmt_float(tok["mean"], 1)),
            ("median tokens / doc", fmt_float(tok["median"], 0)),
            ("90th percentile", fmt_float(tok["p90"], 0)),
            ("longest document", fmt_int(tok["max"])),
        ]
    )
    return (
        f'<p class="muted">Shards in <code>{escape(tok["dir"])}</code>.</p>'
        + table("token-splits", cols, tok["splits"])
        + stats
        + image(png, "tokens per document")
    )


def _training(tr: dict[str, Any], png: bytes | None) -> str:
    cards = _cards(
        [
            ("steps logged", fmt_int(tr["steps"])),
            ("first loss", fmt_float(tr["first_loss"], 3)),
            ("last loss", fmt_float(tr["last_loss"], 3)),
            ("best val loss", fmt_float(tr["best_val_loss"], 3)),
        ]
    )
    status = f" · status {escape(str(tr['status']))}" if tr.get("status") else ""
    return (
        f'<p class="muted">Run <code>{escape(tr["dir"])}</code>{status}.</p>' + cards + image(png, "training curves")
    )


def compare_section(c: dict[str, Any]) -> str:
    """The compare view of two curate runs (`compare_tables` output): totals, funnel deltas, moved reasons."""
    runs = c["runs"]
    this, other = runs["this"], runs["other"]
    head = (
        f'<p class="muted">This run <code>{escape(str(this["run_id"]))}</code> against '
        f"<code>{escape(str(other['run_id']))}</code> (config <code>{escape(str(other['config_hash']))}</code>); "
        "delta = this − other.</p>"
    )
    totals = table(
        "compare-totals",
        [
            ("field", "", "text"),
            ("value", "this", "int"),
            ("other_value", "other", "int"),
            ("delta", "delta", "delta"),
        ],
        c["totals"],
    )
    funnel = table(
        "compare-funnel",
        [
            ("stage", "stage", "text"),
            ("docs_out", "this docs out", "int"),
            ("other_docs_out", "other docs out", "int"),
            ("delta", "delta", "delta"),
            ("dropped", "this dropped", "int"),
            ("other_dropped", "other dropped", "int"),
            ("dropped_delta", "delta", "delta"),
        ],
        c["funnel"],
    )
    moved = [r for r in c["reasons"] if r["delta"]]
    reasons = table(
        "compare-reasons",
        [
            ("stage", "stage", "text"),
            ("reason", "reason", "mono"),
            ("docs", "this", "int"),
            ("other_docs", "other", "int"),
            ("delta", "delta", "delta"),
        ],
        moved,
    )
    return (
        head
        + totals
        + "<h3>Funnel</h3>"
        + funnel
        + "<h3>Reasons that moved</h3>"
        + (reasons if moved else '<p class="muted">no reason count changed</p>')
    )


def _ablation(a: dict[str, str]) -> str:
    return (
        f"<p>This curate run is the variant <code>{escape(a['variant'])}</code> of an ablation: "
        f'<a href="{escape(a["report"])}">the comparison report</a> shows how its model scored against the other '
        "recipes.</p>"
    )


def render_html(tables: dict[str, Any], samples: dict[str, list[dict[str, Any]]], images: dict[str, bytes]) -> str:
    """The whole report page.

    Args:
        tables: the JSON-able numbers (`report_tables`), also embedded verbatim as JSON.
        samples: "stage/reason" or "kept" -> [{id, url, snippet}].
        images: figure name -> PNG bytes ("funnel", "distributions", "quality", "tokens", "training").

    Returns:
        The HTML text.
    """
    sections = [
        ("overview", "Overview", _overview(tables)),
        ("funnel-section", "Funnel", _funnel(tables, images.get("funnel"))),
        ("drops-section", "Drops by reason", _drops(tables)),
        ("samples", "Samples", _samples(tables, samples)),
        ("distributions", "Distributions", _distributions(tables, images.get("distributions"))),
        ("domains", "Top domains", _domains(tables)),
        ("languages-section", "Language mix", _languages(tables)),
    ]
    if tables.get("quality"):
        sections.append(("quality", "Quality", _quality(tables["quality"], samples, images.get("quality"))))
    if tables.get("decontamination"):
        sections.append(("decontamination", "Decontamination", _decontamination(tables["decontamination"])))
    if tables.get("pii"):
        sections.append(("pii", "PII", _pii(tables["pii"])))
    if tables.get("duplicates"):
        sections.append(("duplicates", "Duplicates", _duplicates(tables["duplicates"])))
    if tables["quarantine"]:
        sections.append(("quarantine-section", "Quarantine", _quarantine(tables)))
    if tables.get("tokens"):
        sections.append(("tokens", "Tokens", _tokens(tables["tokens"], images.get("tokens"))))
    if tables.get("training"):
        sections.append(("training", "Training", _training(tables["training"], images.get("training"))))
    if tables.get("compare"):
        sections.append(("compare", "Compare", compare_section(tables["compare"])))
    if tables.get("ablation"):
        sections.append(("ablation", "Ablation", _ablation(tables["ablation"])))
    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in sections)
    body = "".join(
        (
            f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>'
            if i
            else f'<section id="{sid}">{html}</section>'
        )
        for i, (sid, title, html) in enumerate(sections)
    )
    blob = json.dumps(tables, sort_keys=True, ensure_ascii=False)
    blob = blob.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    run_id = escape(str(tables["run"].get("run_id")))
    run_dir = escape(str(tables["run"].get("dir")))
    return (
        f"{PAGE_HEAD}report · {run_id}</title><style>{CSS}</style></head><body>"
        f'<nav><div class="brand">FineForge report</div>{nav}</nav>'
        f'<main><h1>Data report</h1><p class="lead">What curate kept and dropped, and why.</p>{body}'
        f'<footer class="muted">Written by <code>fineforge report</code> from <code>{run_dir}</code>.</footer></main>'
        f'<script type="application/json" id="report-data">{blob}</script>'
        "</body></html>\n"
    )
