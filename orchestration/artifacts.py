"""Plain data for Prefect artifacts, built from the stages' contract files (no Prefect import here).

Each function turns one contract (curate's summary.json, tokenize's manifest.json, the trainer's
metrics.jsonl and run.json) into the rows or markdown that flows.py publishes, so the numbers shown in the
UI are exactly the numbers on disk and can be checked without a server. Artifact keys follow Prefect's rule
(lowercase letters, digits, dashes): `artifact_key` makes one from a stage and a dataset name.

The loss curve is a PNG (matplotlib, Agg backend) inlined as `data:image/png;base64` in markdown, which the
Prefect UI renders; at 6x3 in and 100 dpi it weighs about 30 KB, well under the API's request limits.
"""

from __future__ import annotations

import base64
import io
import math
import re
from typing import Any


def artifact_key(kind: str, dataset: str) -> str:
    """Return a valid artifact key such as `curate-funnel-demo`.

    Args:
        kind: what the artifact shows (`curate-funnel`, `train-metrics`, ...).
        dataset: the dataset or run name; anything outside [a-z0-9-] becomes a dash.

    Returns:
        The key.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{dataset}".lower()).strip("-")
    return re.sub(r"-{2,}", "-", slug)


def funnel_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per curate stage: documents in, out, dropped and the share kept (`stage_rows` of the summary).

    Args:
        summary: curate's summary.json.

    Returns:
        Rows in stage order.
    """
    from pipelines.curate.summary import stage_rows  # loads the curate stage; the terminal progress does not need it

    rows = []
    for row in stage_rows(summary):
        kept = 100.0 * row["docs_out"] / row["docs_in"] if row["docs_in"] else 100.0
        rows.append(row | {"kept_pct": rounded(kept)})
    return rows


def quality_model_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out metrics of a quality classifier next to its heuristic baseline, from its card (MODEL.json).

    Args:
        card: the card `pipelines.quality.train.train_classifier` wrote.

    Returns:
        Two rows, {scorer, accuracy, auc, n_train, n_test}: the classifier, then the line-punctuation baseline.
    """
    baseline = card.get("baseline") or {}
    sizes = {"n_train": card["n_train"], "n_test": card["n_test"]}
    rows = [
        {"scorer": f"fastText ({card['model']})", "accuracy": card["accuracy"], "auc": card["auc"], **sizes},
        {"scorer": baseline.get("name"), "accuracy": baseline.get("accuracy"), "auc": baseline.get("auc"), **sizes},
    ]
    return rounded_rows(rows)


def drop_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (stage, reason) with its count (`reason_rows` of the summary), largest first, plus quarantined
    records.

    Args:
        summary: curate's summary.json.

    Returns:
        Rows sorted by count, descending.
    """
    from pipelines.curate.summary import reason_rows

    rows = [
        {"stage": row["stage"], "reason": row["reason"], "documents": row["docs"]}
        for row in reason_rows(summary)
        if row["docs"]
    ]
    if summary.get("quarantined"):
        rows.append({"stage": "read", "reason": "quarantined", "documents": summary["quarantined"]})
    return sorted(rows, key=lambda row: (-row["documents"], row["stage"], row["reason"]))


def shard_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per shard of a tokenize manifest.

    Args:
        manifest: tokenize's manifest.json.

    Returns:
        Rows with path, split, tokens, documents and a short checksum.
    """
    return [
        {
            "path": shard["path"],
            "split": shard["split"],
            "tokens": shard["tokens"],
            "documents": shard["documents"],
            "sha256": shard["sha256"][:12],
        }
        for shard in manifest["shards"]
    ]


def rounded(value: Any) -> Any:
    """A float as a table shows it: 4 significant digits, whole from 1,000 on; None when not finite.

    Args:
        value: any cell value (only floats change).

    Returns:
        The value to publish.
    """
    if not isinstance(value, float):
        return value
    if not math.isfinite(value):
        return None
    return float(round(value)) if abs(value) >= 1000 else float(f"{value:.4g}")


def rounded_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows with every float `rounded`."""
    return [{key: rounded(value) for key, value in row.items()} for row in rows]


def progress_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Counts so far as table rows: a stage's `name` becomes `stage`, a dict of drops by reason its sum.

    Args:
        rows: `Progress.rows` (curate: StageStats dicts; tokenize and train: flat dicts).

    Returns:
        Flat rows with the same keys, in the same order, numbers `rounded` ("-" where a value is unknown).
    """
    table = []
    for row in rows:
        flat: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dict):
                value = sum(value.values())
            value = rounded(value)
            flat["stage" if key == "name" else key] = "-" if value is None else value
        table.append(flat)
    return table


def final_metrics_rows(records: list[dict[str, Any]], run: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A two-column table (metric, value) summarising a finished run.

    Args:
        records: metrics.jsonl records.
        run: run.json, when present (its status and final metrics are included).

    Returns:
        Rows.
    """
    steps = [r for r in records if r.get("type") == "step"]
    evals = [r for r in records if r.get("type") == "eval"]
    rows: list[dict[str, Any]] = []
    if run:
        rows.append({"metric": "status", "value": run.get("status")})
    if steps:
        last = steps[-1]
        rows += [
            {"metric": "steps", "value": last["step"]},
            {"metric": "train_loss", "value": rounded(last["loss"])},
            {"metric": "tok_per_s", "value": rounded(float(last.get("tok_per_s", 0.0)))},
        ]
    if evals:
        rows.append({"metric": "val_loss", "value": rounded(evals[-1]["val_loss"])})
    return rows


def loss_curve_markdown(records: list[dict[str, Any]], title: str = "Training loss") -> str:
    """Markdown with the loss curve as an inline PNG (train loss per step, validation loss per eval).

    Args:
        records: metrics.jsonl records.
        title: the heading.

    Returns:
        Markdown text (a note instead of an image when there are no steps).
    """
    steps = [r for r in records if r.get("type") == "step"]
    if not steps:
        return f"## {title}\n\nNo training steps recorded.\n"
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.add_subplot()
    ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train", linewidth=1)
    evals = [r for r in records if r.get("type") == "eval"]
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="val", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"## {title}\n\n![loss curve](data:image/png;base64,{data})\n"


def ablation_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluation set and variant of an ablation: mean and range across seeds, and the verdict.

    Args:
        record: the ablation record (ablation.json).

    Returns:
        Rows in the record's summary order; `verdict` is "best" where the lead exceeds the spread across seeds,
        "within noise" where it does not, empty for the other variants of a decided set.
    """
    decided = {v["eval_set"]: v for v in record["verdicts"]}
    rows = []
    for row in record["summary"]:
        verdict = decided.get(row["eval_set"])
        mark = ""
        if verdict and not verdict["decisive"]:
            mark = "within noise"
        elif verdict and verdict["best"] == row["variant"]:
            mark = "best"
        rows.append(
            {
                "eval_set": row["eval_set"],
                "metric": row["metric"],
                "variant": row["variant"],
                "mean": rounded(row["mean"]),
                "min": rounded(row["min"]),
                "max": rounded(row["max"]),
                "seeds": row["seeds"],
                "verdict": mark,
            }
        )
    return rows
