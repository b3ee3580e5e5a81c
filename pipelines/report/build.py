"""Assemble a report: curate tables, optional shards and training run, comparison, figures, HTML.

`report_data` returns every number as JSON (what the page embeds), `report_tables` only its flat tables (for
Prefect table artifacts); `build_report` adds samples and figures and writes the page atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.files import atomic_write, check_replaceable
from pipelines.report import plots
from pipelines.report.data import FEATURES, CurateData, ReportError, compare_tables, load_curate, load_summary
from pipelines.report.downstream import find_ablation, find_shards, find_training, load_tokens, load_training
from pipelines.report.duplicates import duplicates_table
from pipelines.report.quality import load_quality
from pipelines.report.recipe import decontam_table, pii_table
from pipelines.report.render import is_report, render_html


def _token_table(tokens: dict[str, Any]) -> dict[str, Any]:
    lengths = tokens["doc_tokens"]
    return {
        "dir": tokens["dir"],
        "splits": tokens["splits"],
        "documents": int(lengths.size),
        "tokens": int(sum(s["tokens"] for s in tokens["splits"])),
        "mean": float(lengths.mean()) if lengths.size else None,
        "median": float(np.median(lengths)) if lengths.size else None,
        "p90": float(np.percentile(lengths, 90)) if lengths.size else None,
        "max": int(lengths.max()) if lengths.size else None,
    }


def _training_table(training: dict[str, Any]) -> dict[str, Any]:
    steps, evals = training["steps"], training["evals"]
    return {
        "dir": training["dir"],
        "status": training["status"],
        "steps": len(steps),
        "first_loss": steps[0][1] if steps else None,
        "last_loss": steps[-1][1] if steps else None,
        "best_val_loss": min(v for _, v in evals) if evals else None,
        "evals": len(evals),
    }


def _collect(
    run_dir: Path, compare: Path | None, shards: Path | None, train: Path | None
) -> tuple[dict[str, Any], CurateData, dict[str, Any] | None, dict[str, Any] | None]:
    curate = load_curate(run_dir)
    tables = dict(curate.tables)
    tables["quality"], quality_samples = load_quality(run_dir, curate.summary)
    curate.samples.update(quality_samples)
    tables["decontamination"] = decontam_table(curate.summary)
    tables["pii"] = pii_table(run_dir, curate.summary)
    tables["duplicates"] = duplicates_table(run_dir, curate.summary)
    shard_dir = Path(shards) if shards else find_shards(run_dir)
    tokens = load_tokens(shard_dir) if shard_dir else None
    tables["tokens"] = _token_table(tokens) if tokens else None
    if tokens:
        tables["funnel"][-1]["tokens_out"] = tables["tokens"]["tokens"]
        documents = tables["tokens"]["documents"]
        tables["checks"].append(
            {
                "check": "tokenized documents = docs_out",
                "ok": documents == curate.summary["docs_out"],
                "detail": f"{documents} = {curate.summary['docs_out']}",
            }
        )
        mismatched = [
            s["split"]
            for s in tables["tokens"]["splits"]
            if (s["manifest_documents"], s["manifest_tokens"]) != (s["documents"], s["tokens"])
        ]
        tables["checks"].append(
            {
                "check": "shard contents = manifest documents and tokens",
                "ok": not mismatched,
                "detail": ", ".join(mismatched) or "every split",
            }
        )
    train_dir = Path(train) if train else (find_training(shard_dir) if shard_dir else None)
    training = load_training(train_dir) if train_dir else None
    tables["training"] = _training_table(training) if training else None
    tables["compare"] = compare_tables(curate.summary, load_summary(Path(compare))) if compare else None
    tables["ablation"] = find_ablation(run_dir)
    return tables, curate, tokens, training


def report_data(
    run_dir: Path, compare: Path | None = None, shards: Path | None = None, train: Path | None = None
) -> dict[str, Any]:
    """Every number of the report as one JSON-able dict (what the page embeds as `report-data`).

    Args:
        run_dir: a curate output directory.
        compare: another curate output directory to compare with.
        shards: tokenize output folder; discovered next to `run_dir` when None.
        train: training run folder; discovered next to the shards when None.

    Returns:
        {"run", "totals", "funnel", "drops", "checks", "quarantine", "medians", "domains_kept", "domains_dropped",
        "languages", "minhash_cluster_sizes", "exact_cluster_sizes", "quality", "decontamination", "pii",
        "duplicates", "tokens", "training", "compare", "ablation"}; `quality` is None unless the run's quality stage
        scored documents.
    """
    return _collect(Path(run_dir), compare, shards, train)[0]


TABLES = (
    "funnel",
    "drops",
    "checks",
    "medians",
    "domains_kept",
    "domains_dropped",
    "languages",
    "quarantine",
    "minhash_cluster_sizes",
    "exact_cluster_sizes",
)


def tables_of(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The non-empty flat tables (lists of rows) of `report_data` output, e.g. for Prefect table artifacts."""
    tables = {key: data[key] for key in TABLES if data[key]}
    if data.get("quality"):
        tables["quality_curve"] = data["quality"]["curve"]
        tables["quality_bands"] = data["quality"]["bands"]
    sections = (("decontamination", "sets"), ("decontamination", "ngrams"), ("pii", "samples"), ("duplicates", "runs"))
    for section, key in sections:
        if data.get(section) and data[section][key]:
            tables[f"{section}_{key}"] = data[section][key]
    if data.get("tokens"):
        tables["token_splits"] = data["tokens"]["splits"]
    if data.get("compare"):
        tables["compare_funnel"] = data["compare"]["funnel"]
        moved = [r for r in data["compare"]["reasons"] if r["delta"]]
        if moved:
            tables["compare_reasons"] = moved
    return tables


def report_tables(
    run_dir: Path, compare: Path | None = None, shards: Path | None = None, train: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The report's key tables, each a list of flat rows (ready for `create_table_artifact`).

    Args:
        run_dir: a curate output directory.
        compare: another curate output directory to compare with.
        shards: tokenize output folder; discovered next to `run_dir` when None.
        train: training run folder; discovered next to the shards when None.

    Returns:
        {"funnel": [...], "drops": [...], "checks": [...], ...}: only non-empty tables; `quality_curve`,
        `quality_bands`, `decontamination_sets`, `decontamination_ngrams`, `pii_samples`, `token_splits`,
        `compare_funnel` and `compare_reasons` where those stages ran or shards or a comparison exist.
    """
    return tables_of(report_data(run_dir, compare, shards, train))


def build_report(
    run_dir: Path,
    html_path: Path | None = None,
    compare: Path | None = None,
    shards: Path | None = None,
    train: Path | None = None,
) -> Path:
    """Write the self-contained HTML report of a curate run.

    Args:
        run_dir: a curate output directory (summary.json, data/, rejects/, quarantine/).
        html_path: where to write; default `run_dir/report.html`.
        compare: another curate output directory, shown side by side.
        shards: tokenize output folder; discovered next to `run_dir` when None.
        train: training run folder; discovered next to the shards when None.

    Returns:
        The path of the written HTML file.
    """
    return write_report(run_dir, html_path, compare, shards, train)[0]


def write_report(
    run_dir: Path,
    html_path: Path | None = None,
    compare: Path | None = None,
    shards: Path | None = None,
    train: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """`build_report` that also returns the numbers it computed (so callers need not compute them twice).

    Returns:
        (path of the HTML file, the `report_data` dict; `tables_of` turns it into artifact tables).
    """
    run_dir = Path(run_dir)
    html_path = Path(html_path) if html_path else run_dir / "report.html"
    check_replaceable(html_path, is_report(html_path), "a FineForge report", "--html", ReportError)
    tables, curate, tokens, training = _collect(run_dir, compare, shards, train)
    kept = {f: curate.kept[f].cast(float).fill_null(np.nan).to_numpy() for f in FEATURES}
    dropped = {f: curate.dropped[f].cast(float).fill_null(np.nan).to_numpy() for f in FEATURES}
    images = {
        "funnel": plots.funnel_png(tables["funnel"]),
        "distributions": plots.distributions_png(kept, dropped, tables["minhash_cluster_sizes"]),
    }
    if tables["quality"]:
        images["quality"] = plots.quality_png(tables["quality"])
    if tokens:
        images["tokens"] = plots.tokens_png(tokens["doc_tokens"])
    if training and (training["steps"] or training["evals"]):
        images["training"] = plots.training_png(training["steps"], training["evals"], training["by_source"])
    html = render_html(tables, curate.samples, images)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(html_path, "w") as f:
        f.write(html)
    return html_path, tables
