"""Report numbers of the recipe's screening and privacy stages: `decontaminate` and `pii`.

Decontamination comes from `summary.json` alone: documents per eval set (dropped or flagged) and the n-grams
they shared (`pipelines.curate.decontam`). PII adds a few before/after snippets from `data/`: documents whose
metadata holds `pii` spans (where replacements sit in the published text), chosen by the report's stable
sample key. The "before" side shows each replaced address as a placeholder (⟨email⟩, ⟨IP address⟩): the
original addresses are gone from the data and never appear in the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.curate.pii import recorded_privacy
from pipelines.report.data import pick_ids, sample_key

PII_SAMPLES = 5
CONTEXT_CHARS = 90
PLACEHOLDERS = {"email": "⟨email⟩", "ip_address": "⟨IP address⟩"}


def _stage(summary: dict[str, Any], name: str, marker: str) -> dict[str, Any] | None:
    """The summary entry of stage `name` if it ran (it carries the `marker` field), else None."""
    return next((s for s in summary["stages"] if s["name"] == name and marker in s), None)


def decontam_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Decontamination per eval set, and the shared n-grams.

    Args:
        summary: the run's summary.json.

    Returns:
        None when the stage did not run; else {"action", "index", "docs_in", "sets": [{"eval_set", "docs",
        "dropped"}], "ngrams": [{"eval_set", "ngram", "docs"}]}.
    """
    stage = _stage(summary, "decontaminate", "contaminated")
    if stage is None:
        return None
    sets = [
        {"eval_set": name, "docs": docs, "dropped": stage["dropped"].get(f"contaminated:{name}", 0)}
        for name, docs in stage["contaminated"].items()
    ]
    ngrams = [
        {"eval_set": name, "ngram": row["ngram"], "docs": row["docs"]}
        for name, rows in stage["matched_ngrams"].items()
        for row in rows
    ]
    return {
        "action": stage["action"],
        "index": stage.get("index"),
        "docs_in": stage["docs_in"],
        "sets": sorted(sets, key=lambda r: (-r["docs"], r["eval_set"])),
        "ngrams": ngrams,
    }


def _flat(text: str) -> str:
    return " ".join(text.split())


def pii_snippet(text: str, spans: list[list[Any]]) -> dict[str, str]:
    """Before/after context around the first replacement of a document.

    Args:
        text: the published (anonymised) text.
        spans: `[start, end, kind]` of replacements in `text`, in order.

    Returns:
        {"after": the context as published, "before": the same context with every replacement in it shown as
        its placeholder}.
    """
    start = max(0, spans[0][0] - CONTEXT_CHARS)
    end = min(len(text), spans[0][1] + CONTEXT_CHARS)
    before, cursor = [], start
    for span_start, span_end, kind in spans:
        if span_start < start or span_end > end:
            continue
        before += [text[cursor:span_start], PLACEHOLDERS.get(kind, "⟨address⟩")]
        cursor = span_end
    before.append(text[cursor:end])
    ellipsis = ("…" if start else "", "…" if end < len(text) else "")
    return {
        "before": ellipsis[0] + _flat("".join(before)) + ellipsis[1],
        "after": ellipsis[0] + _flat(text[start:end]) + ellipsis[1],
    }


def pii_table(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """PII counts and a few before/after snippets.

    Args:
        run_dir: the curate output directory.
        summary: its summary.json.

    Returns:
        None when the stage did not run; else {"docs_in", "modified", "replacements": {emails, ip_addresses},
        "samples": [{"id", "url", "before", "after"}]}.
    """
    stage = _stage(summary, "pii", "modified")
    if stage is None:
        return None
    samples, scrub = [], recorded_privacy(summary)[1]
    files = sorted((Path(run_dir) / "data").glob("*.parquet"))
    if files and stage["modified"]:
        changed = (
            pl.scan_parquet(files)
            .select("id", "url", "text", pii=pl.col("metadata").str.json_path_match("$.pii"))
            .filter(pl.col("pii").is_not_null())
            .collect()
        )
        chosen = set(pick_ids(changed["id"].to_list(), PII_SAMPLES))
        for row in changed.filter(pl.col("id").is_in(chosen)).iter_rows(named=True):
            spans = json.loads(row["pii"]).get("spans") or []
            if spans:
                url = scrub(row["url"] or "") or None
                samples.append({"id": row["id"], "url": url, **pii_snippet(row["text"], spans)})
        samples.sort(key=lambda r: sample_key(r["id"]))
    return {
        "docs_in": stage["docs_in"],
        "modified": stage["modified"],
        "replacements": stage["replacements"],
        "samples": samples,
    }
