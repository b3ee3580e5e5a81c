"""Report numbers of deduplication across runs (issue 24): drops per earlier run, and a few clusters side by side.

The counts per earlier run come from the `prior_dedup` entry of `summary.json` (`runs`); the clusters from the
export `clusters/duplicates.parquet` (`pipelines.curate.clusters`): a few dropped duplicates per reason whose text
the sampled `rejects/` still holds, chosen by the report's stable sample key, each beside the document it
duplicates, read from `data/` of the run that kept it (this run, or the earlier run's folder recorded in
`dedup_against`; an earlier folder that is gone shows no text). Texts are shown through the run's PII policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.curate.clusters import EXPORT_DIR, EXPORT_FILE
from pipelines.curate.pii import recorded_privacy
from pipelines.report.data import pick_ids, snippet

PAIRS_PER_REASON = 2


def _texts(folder: Path, ids: list[str]) -> dict[str, str]:
    """The texts of `ids` in a curate output's `data/` (nothing when the folder is gone)."""
    files = sorted((folder / "data").glob("*.parquet"))
    if not ids or not files:
        return {}
    frame = pl.scan_parquet(files).select("id", "text").filter(pl.col("id").is_in(ids)).collect()
    return dict(frame.iter_rows())


def duplicates_table(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """Cross-run duplicate counts per earlier run and a few clusters side by side.

    Args:
        run_dir: the curate output.
        summary: its summary.json.

    Returns:
        None when the run has no cluster export and no earlier runs; else {"runs": [{"run_id", "path", "exact",
        "minhash"}], "reasons": [{"reason", "docs"}], "pairs": [{"reason", "id", "text", "kept_run", "kept_id",
        "kept_text", "similarity"}]}.
    """
    export = Path(run_dir) / EXPORT_DIR / EXPORT_FILE
    prior = next((s for s in summary["stages"] if s["name"] == "prior_dedup" and "runs" in s), None)
    if not export.is_file() and prior is None:
        return None
    clusters = pl.read_parquet(export) if export.is_file() else pl.DataFrame(schema={"id": pl.String})
    _, scrub = recorded_privacy(summary)
    reasons = [] if clusters.is_empty() else clusters.group_by("reason").len("docs").sort("reason").to_dicts()
    rejects = sorted((Path(run_dir) / "rejects").glob("*dedup/*.parquet"))
    dropped_texts = dict(pl.read_parquet(rejects, columns=["id", "text"]).iter_rows()) if rejects else {}
    shown = clusters.filter(pl.col("id").is_in(list(dropped_texts))) if dropped_texts else clusters.clear()
    chosen = [
        row
        for _, group in shown.group_by("reason", maintain_order=True)
        for row in group.filter(pl.col("id").is_in(pick_ids(group["id"].to_list(), PAIRS_PER_REASON))).to_dicts()
    ]
    folders = {summary["run_id"]: Path(run_dir)} | {
        r["run_id"]: Path(r["path"]) for r in summary.get("dedup_against", [])
    }
    kept: dict[tuple[str, str], str] = {}
    for run_id, folder in folders.items():
        ids = [row["kept_id"] for row in chosen if row["kept_run"] == run_id]
        kept |= {(run_id, i): text for i, text in _texts(folder, ids).items()}
    pairs = [
        {
            "reason": row["reason"],
            "id": row["id"],
            "text": snippet(scrub(dropped_texts[row["id"]])),
            "kept_run": row["kept_run"],
            "kept_id": row["kept_id"],
            "kept_text": snippet(scrub(kept.get((row["kept_run"], row["kept_id"]), ""))),
            "similarity": row["similarity"],
        }
        for row in sorted(chosen, key=lambda r: (r["reason"], r["id"]))
    ]
    return {"runs": prior["runs"] if prior else [], "reasons": reasons, "pairs": pairs}
