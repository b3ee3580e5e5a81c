"""Data-quality report of a curate run: what was kept and dropped, and why, before GPU hours are spent.

`build_report(run_dir)` reads a curate output directory (summary.json, data/, rejects/, quarantine/) with
polars, and where present the token shards made from it and a training run on those shards, and writes one
self-contained HTML page (inline CSS, embedded PNG figures, no network request): the funnel in documents,
characters and tokens; drops by stage and reason with shares and deterministic samples; kept-vs-dropped
distributions; domains; languages; quality scores and what each threshold would keep (when curate's quality
stage ran); tokens per document; training curves; and, with `compare`, a second run side by side.
`report_data` gives every number as JSON, `report_tables` its flat tables (Prefect table artifacts;
`write_report` also returns the data, so a flow computes it once), `print_summary` a short rich summary.
CLI: `fineforge report RUN_DIR [--html OUT.html] [--compare OTHER] [--shards DIR] [--train RUN_DIR]`.
Modules: `data` (curate numbers), `quality` (the quality section), `downstream` (shards, training), `plots`,
`render`, `terminal`, `build`.
100k documents: 4.4 s idle, 14.5 s under load on this 2-core machine (`benchmarks/report.py`).
"""

from pipelines.report.build import build_report, report_data, report_tables, tables_of, write_report
from pipelines.report.data import ReportError
from pipelines.report.terminal import print_summary

__all__ = [
    "ReportError",
    "build_report",
    "print_summary",
    "report_data",
    "report_tables",
    "tables_of",
    "write_report",
]
