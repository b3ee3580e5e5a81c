"""The numbers behind a curate report, computed with polars from a run directory.

A curate run directory (see `pipelines/curate/`) holds `summary.json` (exact counts per stage and reason),
`data/*.parquet` (kept documents), `rejects/<stage>/*.parquet` (dropped documents, possibly a sample per
reason) and `quarantine/*.jsonl` (unreadable records). Counts in the report come from `summary.json` and from
row counts; the Parquet text gives characters and per-document features. Characters per stage are exact only
where the rejects of that stage and of every later stage are complete (rows = dropped count); otherwise the
report shows none rather than an estimate. `read` and `extract` see raw records (HTML), so characters start
at extract's output.

Per-document features are plain polars string expressions (no Python per row): characters, whitespace words,
mean word length, the fraction of non-empty lines that repeat an earlier line (Gopher's `dup_line_frac`,
Rae et al. 2021, table A1), the URL's host, and the language score. On 100k documents of about 3 KB the
whole report takes 4-15 s here, depending on load (see `benchmarks/report.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.common.inputs import InputError, iter_json_lines
from pipelines.curate import summary as curate_summary
from pipelines.curate.pii import recorded_privacy
from pipelines.curate.stages import READ_STAGES, STAGES

RAW_STAGES = frozenset(READ_STAGES)
FEATURES = ("chars", "words", "mean_word_len", "language_score", "dup_line_frac")
TOP_N = 15
SNIPPET_CHARS = 360


class ReportError(ValueError):
    """A run directory that cannot be reported on; the message names the file and the record."""


@dataclass
class CurateData:
    """Everything the report shows about one curate run; `tables` is plain JSON, `kept`/`dropped` feed plots."""

    run_dir: Path
    summary: dict[str, Any]
    tables: dict[str, Any]
    kept: pl.DataFrame
    dropped: pl.DataFrame
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def load_summary(run_dir: Path) -> dict[str, Any]:
    """Read and check the shape of `run_dir/summary.json` (`pipelines.curate.summary.read`).

    Args:
        run_dir: a curate output directory.

    Returns:
        The summary dict.

    Raises:
        ReportError: the file is missing, is not JSON, or lacks a contract field.
    """
    return curate_summary.read(run_dir, ReportError, f"{run_dir} is not a finished curate run")


def _check_parquet(path: Path, whole: bool = False) -> None:
    """Raise a ReportError naming `path` unless its footer (or, with `whole`, every byte) reads as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_table(path) if whole else pq.ParquetFile(path).close()
    except (pa.ArrowException, OSError) as e:
        raise ReportError(f"{path}: not a readable Parquet file ({e})") from None


def _collect(frame: pl.LazyFrame, run_dir: Path) -> pl.DataFrame:
    """Collect a frame over the run's Parquet files; a corrupt file becomes a ReportError naming it."""
    try:
        return frame.collect()
    except pl.exceptions.PolarsError as e:
        for path in sorted(Path(run_dir).glob("data/*.parquet")) + sorted(Path(run_dir).glob("rejects/*/*.parquet")):
            _check_parquet(path, whole=True)
        raise ReportError(f"{run_dir}: cannot read its Parquet files ({e})") from None


def _scan(files: list[Path], columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Scan Parquet files keeping `columns` (absent ones become nulls), or an empty frame when there are none.

    Raises:
        ReportError: a file whose footer is not Parquet (a truncated or foreign file), naming it.
    """
    if not files:
        return pl.LazyFrame(schema=columns)
    for path in files:
        _check_parquet(path)
    frame = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore", schema=None)
    present = frame.collect_schema()
    return frame.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in columns.items()
        ]
    )


def _features(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add per-document features computed from `text` and `url`, then drop the text."""
    text = pl.col("text").fill_null("")
    lines = (
        text.str.split("\n")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    n_lines = lines.list.len()
    chars = text.str.len_chars().cast(pl.Int64)
    words = text.str.count_matches(r"\S+").cast(pl.Int64)
    spaces = text.str.count_matches(r"\s").cast(pl.Int64)
    return frame.with_columns(
        chars=chars,
        words=words,
        mean_word_len=pl.when(words > 0).then((chars - spaces) / words),
        dup_line_frac=pl.when(n_lines > 0).then(1 - lines.list.n_unique() / n_lines),
        domain=pl.col("url").str.to_lowercase().str.extract(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#\s]+)", 1),
    ).drop("text")


KEPT_COLUMNS = {
    "id": pl.String,
    "text": pl.String,
    "url": pl.String,
    "language": pl.String,
    "language_score": pl.Float64,
}
REJECT_COLUMNS = {
    "id": pl.String,
    "text": pl.String,
    "url": pl.String,
    "stage": pl.String,
    "reason": pl.String,
    "metadata": pl.String,
}


def _meta(key: str, dtype: pl.DataType) -> pl.Expr:
    """A field of the JSON `metadata` column (null where absent)."""
    return pl.col("metadata").str.json_path_match(f"$.{key}").cast(dtype, strict=False)


def scan_kept(run_dir: Path) -> pl.LazyFrame:
    """Lazy frame of the kept documents (`data/*.parquet`) with id, text, url, language, language_score."""
    return _scan(sorted((Path(run_dir) / "data").glob("*.parquet")), KEPT_COLUMNS)


def scan_rejects(run_dir: Path) -> pl.LazyFrame:
    """Lazy frame of the dropped documents (`rejects/<stage>/*.parquet`) with the contract columns."""
    return _scan(sorted((Path(run_dir) / "rejects").glob("*/*.parquet")), REJECT_COLUMNS)


def count_quarantine(run_dir: Path, scrub: Callable[[str], str] = str) -> tuple[int | None, list[dict[str, Any]]]:
    """Count quarantined records and group them by error (each error shown through `scrub`, the run's PII policy).

    Returns:
        (records in `quarantine/*.jsonl` or None when the folder is absent, rows {error, file, records}).

    Raises:
        ReportError: a line that is not JSON, naming the file and line.
    """
    folder = Path(run_dir) / "quarantine"
    if not folder.is_dir():
        return None, []
    total, groups = 0, {}
    for path in sorted(folder.glob("*.jsonl")):
        try:
            for _, record in iter_json_lines(str(path)):
                total += 1
                key = (scrub(str(record.get("error", "?")))[:120], Path(str(record.get("file", "?"))).name)
                groups[key] = groups.get(key, 0) + 1
        except InputError as e:
            raise ReportError(f"quarantine record: {e}") from None
    rows = [{"error": e, "file": f, "records": n} for (e, f), n in groups.items()]
    rows.sort(key=lambda r: (-r["records"], r["error"], r["file"]))
    return total, rows


def _share(part: int | float, whole: int | float) -> float | None:
    return part / whole if whole else None


def sample_key(doc_id: str) -> bytes:
    """Stable pseudo-random sort key of a document id (same samples on every machine and polars version)."""
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()


def pick_ids(ids: list[str], k: int) -> list[str]:
    """Choose `k` ids deterministically, spread uniformly at random over the input."""
    return sorted(ids, key=sample_key)[:k]


_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.S | re.I)


def visible_text(html: str | None) -> str:
    """The text of an HTML page with scripts, styles, comments and tags removed (for showing a raw page)."""
    return unescape(_MARKUP.sub(" ", html or ""))


def snippet(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    """Collapse whitespace and cut `text` to `limit` characters (an ellipsis marks a cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def funnel_rows(
    summary: dict[str, Any], kept_chars: int, reject_chars: dict[str, int], reject_rows: dict[str, int]
) -> list[dict[str, Any]]:
    """One row per stage: documents in/out/dropped with shares, and characters in/out where exact.

    Args:
        summary: the run's summary.json.
        kept_chars: characters of all kept documents.
        reject_chars: characters of the rejects Parquet per stage.
        reject_rows: rows of the rejects Parquet per stage.

    Returns:
        Rows {stage, docs_in, docs_out, dropped, drop_share, kept_share, chars_in, chars_out, rejects_rows}.
    """
    rows = []
    total_in = summary["docs_in"]
    chars_out: int | None = kept_chars
    for stage in reversed(curate_summary.stage_rows(summary)):
        name, dropped = stage["stage"], stage["dropped"]
        complete = reject_rows.get(name, 0) == dropped
        chars_in = chars_out + reject_chars.get(name, 0) if chars_out is not None and complete else None
        if name in RAW_STAGES:
            chars_in = None
        rows.append(
            stage
            | {
                "drop_share": _share(dropped, stage["docs_in"]),
                "kept_share": _share(stage["docs_out"], total_in),
                "chars_in": chars_in,
                "chars_out": chars_out,
                "rejects_rows": reject_rows.get(name, 0),
            }
        )
        chars_out = chars_in
    return rows[::-1]


def drop_rows(summary: dict[str, Any], rows_by_reason: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """One row per (stage, reason) with its count and shares, in stage order and by count within a stage."""
    reasons = curate_summary.reason_rows(summary)
    total_dropped = sum(row["docs"] for row in reasons)
    return [
        {
            "stage": row["stage"],
            "reason": row["reason"],
            "docs": row["docs"],
            "share_of_stage_in": _share(row["docs"], row["stage_in"]),
            "share_of_dropped": _share(row["docs"], total_dropped),
            "share_of_docs_in": _share(row["docs"], summary["docs_in"]),
            "rejects_rows": rows_by_reason.get((row["stage"], row["reason"]), 0),
        }
        for row in reasons
    ]


NO_HOST = "(no host)"  # a URL without scheme and host, e.g. a file path where the page named no URL
UNKNOWN_LANGUAGE = "(unknown)"


def _top(frame: pl.DataFrame, column: str, scrub: Callable[[str], str] = str, n: int = TOP_N) -> list[dict[str, Any]]:
    """The `n` most frequent values of `column` with counts and shares (nulls shown as NO_HOST; values shown
    through `scrub`, the run's PII policy: a host can be an IP address)."""
    total = frame.height
    counts = (
        frame.select(pl.col(column).fill_null(NO_HOST))
        .group_by(column)
        .len("docs")
        .sort(["docs", column], descending=[True, False])
        .head(n)
    )
    return [{column: scrub(v), "docs": d, "share": _share(d, total)} for v, d in counts.iter_rows()]


def _medians(kept: pl.DataFrame, dropped: pl.DataFrame) -> list[dict[str, Any]]:
    """Medians (dup-line fraction: mean) of each feature for kept documents and each stage's drops."""
    groups = [("kept", kept)] + [(name, part) for (name,), part in dropped.group_by(["stage"], maintain_order=True)]
    rows = []
    for name, part in groups:
        # The duplicate-line fraction is 0 for most documents, so its median says nothing: show the mean.
        stats = part.select(
            [(pl.col(f).mean() if f == "dup_line_frac" else pl.col(f).median()).alias(f) for f in FEATURES]
        ).row(0, named=True)
        rows.append({"group": name, "docs": part.height, **stats})
    order = {s: i for i, s in enumerate(("kept", *STAGES))}
    return sorted(rows, key=lambda r: order.get(r["group"], len(order)))


def _cluster_sizes(dropped: pl.DataFrame, stage: str, column: str) -> list[dict[str, Any]]:
    """Value counts of a dedup stage's cluster size (dropped documents per size; empty when not recorded)."""
    values = dropped.filter((pl.col("stage") == stage) & pl.col(column).is_not_null())
    counts = values.group_by(column).len("docs").sort(column)
    return [{"size": int(s), "docs": d} for s, d in counts.iter_rows()]


def _describe(row: dict[str, Any]) -> str:
    """A short line of a sampled document's features: words, characters, language and its score."""
    parts = [f"{row['words']:,} words", f"{row['chars']:,} chars"]
    if row.get("language"):
        score = row.get("language_score")
        parts.append(row["language"] + (f" {score:.2f}" if score is not None else ""))
    return " · ".join(parts)


def _samples(
    kept: pl.DataFrame,
    rejects: pl.DataFrame,
    run_dir: Path,
    per_reason: int,
    kept_n: int,
    scrub: Callable[[str], str],
) -> dict[str, list[dict[str, Any]]]:
    """Deterministic samples: `per_reason` dropped documents per (stage, reason), `kept_n` kept ones.

    Url and text are shown through `scrub`, the run's PII policy.

    Returns:
        "stage/reason" or "kept" -> [{id, url, snippet, about}], `about` a line of the document's features.
    """
    chosen: dict[str, list[str]] = {}
    for (stage, reason), part in rejects.group_by(["stage", "reason"], maintain_order=True):
        chosen[f"{stage}/{reason}"] = pick_ids(part["id"].to_list(), per_reason)
    chosen["kept"] = pick_ids(kept["id"].to_list(), kept_n)
    columns = ["id", "url", "chars", "words", "language", "language_score"]
    info = {}
    for features, key in ((rejects, None), (kept, "kept")):
        ids = [i for k, group in chosen.items() if (k == "kept") == (key == "kept") for i in group]
        rows = features.filter(pl.col("id").is_in(ids)).select(columns).iter_rows(named=True)
        info.update({(key, r["id"]): r for r in rows})
    texts = {}
    for frame, key in ((scan_rejects(run_dir), None), (scan_kept(run_dir), "kept")):
        ids = [i for k, i in info if k == key]
        if ids:
            rows = _collect(frame.filter(pl.col("id").is_in(ids)).select("id", "text"), run_dir)
            texts.update({(key, i): t for i, t in rows.iter_rows()})
    samples = {}
    for name, ids in chosen.items():
        key = "kept" if name == "kept" else None
        raw = name.split("/")[0] in RAW_STAGES  # the text is the page as fetched: show what a reader would see
        samples[name] = [_sample(i, info[key, i], texts.get((key, i)), raw, scrub) for i in ids]
    return samples


def _sample(
    doc_id: str, info: dict[str, Any], text: str | None, raw: bool, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """One shown document: url and text through `scrub` before the text is cut, so no cut address shows."""
    return {
        "id": doc_id,
        "url": scrub(info["url"] or "") or None,
        "snippet": snippet(scrub(visible_text(text) if raw else text or "")),
        "about": f"raw page, {info['chars']:,} chars, tags removed here" if raw else _describe(info),
    }


def load_curate(run_dir: Path, per_reason: int = 3, kept_n: int = 6) -> CurateData:
    """Compute every curate table of the report.

    Args:
        run_dir: a curate output directory.
        per_reason: sampled dropped documents per (stage, reason).
        kept_n: sampled kept documents.

    Returns:
        A `CurateData` whose `tables` holds the funnel, drops, checks, domains, languages, medians, cluster sizes.
    """
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    kept = _collect(_features(scan_kept(run_dir)), run_dir)
    rejects = _collect(
        _features(scan_rejects(run_dir))
        .with_columns(
            language_score=_meta("language_score", pl.Float64),
            language=_meta("language", pl.String),
            # pipelines.curate.dedup: documents in the cluster, the kept one included (datatrove's own key as fallback)
            cluster_size=pl.coalesce(_meta("dedup_cluster_size", pl.Int64), _meta("minhash_cluster_size", pl.Int64)),
        )
        .drop("metadata"),
        run_dir,
    )
    by_stage = rejects.group_by("stage").agg(pl.len().alias("rows"), pl.col("chars").sum().alias("chars"))
    reject_rows = {s: r for s, r, _ in by_stage.iter_rows()}
    reject_chars = {s: c for s, _, c in by_stage.iter_rows()}
    by_reason = {(s, r): n for s, r, n in rejects.group_by("stage", "reason").len().iter_rows()}
    privacy, scrub = recorded_privacy(summary)
    quarantine_rows, quarantine_groups = count_quarantine(run_dir, scrub)
    dropped = rejects.filter(~pl.col("stage").is_in(list(RAW_STAGES)))
    languages = (
        kept.select(pl.col("language").fill_null(UNKNOWN_LANGUAGE))
        .group_by("language")
        .len("kept")
        .join(
            rejects.filter(pl.col("stage") == "language_filter")
            .select(pl.col("language").fill_null(UNKNOWN_LANGUAGE))
            .group_by("language")
            .len("dropped"),
            on="language",
            how="full",
            coalesce=True,
        )
        .fill_null(0)
        .with_columns(total=pl.col("kept") + pl.col("dropped"))
        .sort(["total", "language"], descending=[True, False])
        .head(TOP_N)
    )
    tables = {
        "run": {
            "dir": str(run_dir),
            **{k: summary.get(k) for k in ("run_id", "config_hash", "inputs", "duration_s", "docs_per_s")},
        },
        "totals": {
            "records_read": summary["records_read"],
            "quarantined": summary["quarantined"],
            "records_skipped": dict(summary["records_skipped"]),
            "docs_in": summary["docs_in"],
            "docs_out": summary["docs_out"],
            "dropped": summary["docs_in"] - summary["docs_out"],
            "kept_share": _share(summary["docs_out"], summary["docs_in"]),
            "data_rows": kept.height,
            "kept_chars": int(kept["chars"].sum()),
            "rejects_rows": rejects.height,
        },
        "funnel": funnel_rows(summary, int(kept["chars"].sum()), reject_chars, reject_rows),
        "drops": drop_rows(summary, by_reason),
        "checks": curate_summary.checks(summary, kept.height, reject_rows, quarantine_rows),
        "quarantine": quarantine_groups[:TOP_N],
        "medians": _medians(kept, dropped),
        "domains_kept": _top(kept, "domain", scrub),
        "domains_dropped": _top(rejects, "domain", scrub),
        "languages": languages.select("language", "kept", "dropped").to_dicts(),
        "minhash_cluster_sizes": _cluster_sizes(rejects, "minhash_dedup", "cluster_size"),
        "exact_cluster_sizes": _cluster_sizes(rejects, "exact_dedup", "cluster_size"),
    }
    tables["privacy"] = {key: privacy[key] for key in ("pii", "raw_rejects", "raw")}
    samples = _samples(kept, rejects, run_dir, per_reason, kept_n, scrub)
    return CurateData(run_dir, summary, tables, kept, dropped, samples)


def compare_tables(summary: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Side-by-side numbers of two runs: funnel deltas per stage and reasons whose counts moved.

    Args:
        summary: this run's summary.json.
        other: the other run's summary.json.

    Returns:
        {"runs", "totals", "funnel": [...], "reasons": [...]} with `delta` = this - other.
    """
    this_stages = {s["name"]: s for s in summary["stages"]}
    other_stages = {s["name"]: s for s in other["stages"]}
    names = [s["name"] for s in summary["stages"]] + [n for n in other_stages if n not in this_stages]
    funnel = []
    reasons = []
    for name in names:
        a, b = this_stages.get(name, {}), other_stages.get(name, {})
        a_out, b_out = a.get("docs_out"), b.get("docs_out")
        a_drop, b_drop = a.get("dropped", {}), b.get("dropped", {})
        both = a_out is not None and b_out is not None
        funnel.append(
            {
                "stage": name,
                "docs_out": a_out,
                "other_docs_out": b_out,
                "delta": a_out - b_out if both else None,
                "dropped": sum(a_drop.values()) if a else None,
                "other_dropped": sum(b_drop.values()) if b else None,
                "dropped_delta": sum(a_drop.values()) - sum(b_drop.values()) if both else None,
            }
        )
        for reason in sorted(set(a_drop) | set(b_drop)):
            x, y = a_drop.get(reason, 0), b_drop.get(reason, 0)
            reasons.append({"stage": name, "reason": reason, "docs": x, "other_docs": y, "delta": x - y})
    reasons.sort(key=lambda r: (-abs(r["delta"]), names.index(r["stage"]), r["reason"]))
    totals = [
        {"field": key, "value": summary[key], "other_value": other[key], "delta": summary[key] - other[key]}
        for key in ("records_read", "quarantined", "docs_in", "docs_out")
    ]
    runs = {
        "this": {"run_id": summary["run_id"], "config_hash": summary.get("config_hash")},
        "other": {"run_id": other["run_id"], "config_hash": other.get("config_hash")},
    }
    return {"runs": runs, "totals": totals, "funnel": funnel, "reasons": reasons}
