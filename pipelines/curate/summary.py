"""`summary.json`, curate's contract: its fields, the one reader and writer, and the accounting invariants.

A curate output folder is finished when `summary.json` is there: `CurateStage.finish` builds a `CurateSummary`,
raises `InvariantError` unless `check` passes, and `write`s it last, atomically. Every other module reads it through
`read` (the report: the shape of every count checked, one line naming the field) or `recorded` (a folder that may be
unfinished), and shows the accounting through `checks`, the same rows the stage checks:

- records_read = docs_in + quarantined + records_skipped;
- every stage: docs_in = docs_out + the sum of its dropped counts by reason;
- each stage's docs_in = the previous stage's docs_out (the first: the summary's docs_in);
- the last stage's docs_out = the summary's docs_out = the rows in `data/`;
- with the outputs counted (the report): rejects rows <= dropped per stage, quarantine records = quarantined;
- the stage alone also checks the quality cut: rows selected in `quality/scores.parquet` = the quality stage's out.

`stage_rows` and `reason_rows` are the funnel and the drops as the summary records them, the one base of the
report's tables and the Prefect artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipelines.common.files import load_contract, read_json, write_json_atomic

FILENAME = "summary.json"
FIELDS = ("run_id", "records_read", "quarantined", "docs_in", "docs_out", "stages")  # what every reader relies on
COUNTS = ("records_read", "quarantined", "docs_in", "docs_out")
STAGE_FIELDS = ("name", "docs_in", "docs_out", "dropped")


class InvariantError(RuntimeError):
    """The document accounting of a run does not add up."""


class CurateSummary(BaseModel):
    """The fields of `summary.json`, in the order they are written (docs/architecture.md, Contracts).

    `stages` entries hold `name`, `docs_in`, `docs_out`, `dropped` {reason: n} and `status`, plus what a stage adds
    (decontaminate: `action`, `index`, `contaminated`, `matched_ngrams`; pii: `modified`, `replacements`). Unknown
    fields are kept, so a newer summary reads in an older FineForge.
    """

    model_config = ConfigDict(extra="allow")

    run_id: str
    config_hash: str
    inputs: list[str]
    input_files: int
    records_read: int
    quarantined: int
    records_skipped: dict[str, int]
    docs_in: int
    docs_out: int
    stages: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    quality: dict[str, Any] | None
    privacy: dict[str, Any]
    duration_s: float
    docs_per_s: float
    tasks: int
    workers: int
    executor: str
    limit: int | None
    dedup_against: list[dict[str, Any]] = []  # earlier runs deduplicated against: path, run_id, documents, index


def summary_path(folder: str | Path) -> Path:
    """The `summary.json` of a curate output folder."""
    return Path(folder) / FILENAME


def write(folder: str | Path, summary: CurateSummary) -> Path:
    """Write `folder/summary.json` atomically (indented UTF-8 JSON, fields in model order) and return its path."""
    return write_json_atomic(summary_path(folder), summary.model_dump())


def recorded(folder: str | Path) -> dict[str, Any] | None:
    """The summary of a folder that may be unfinished: None when it is missing, not JSON or not an object."""
    summary = read_json(summary_path(folder))
    return summary if isinstance(summary, dict) else None


def read(folder: str | Path, error: type[Exception], missing: str) -> dict[str, Any]:
    """Read `folder/summary.json` and check the shape of every count the accounting uses.

    Args:
        folder: a curate output folder.
        error: the exception type to raise (the caller's own, e.g. the report's ReportError).
        missing: what the file's absence means, e.g. "DIR is not a finished curate run".

    Returns:
        The summary dict (`records_skipped` set to {} in summaries written before records were skipped by type).

    Raises:
        error: the file is missing, is not JSON, or a field is absent or not a count; the message names the file.
    """
    path = summary_path(folder)
    summary = load_contract(path, FIELDS, error, missing)
    for key in COUNTS:
        _check_count(path, key, summary[key], error)
    summary.setdefault("records_skipped", {})
    _check_counts(path, "records_skipped", summary["records_skipped"], error)
    if not isinstance(summary["stages"], list):
        raise error(f"{path}: stages is {_kind(summary['stages'])}, expected a list")
    for i, stage in enumerate(summary["stages"]):
        if not isinstance(stage, dict):
            raise error(f"{path}: stages[{i}] is {_kind(stage)}, expected an object")
        for key in STAGE_FIELDS:
            if key not in stage:
                raise error(f"{path}: stages[{i}] lacks the field {key!r}")
        if not isinstance(stage["name"], str):
            raise error(f"{path}: stages[{i}].name is {_kind(stage['name'])}, expected a string")
        for key in ("docs_in", "docs_out"):
            _check_count(path, f"stages[{i}].{key}", stage[key], error)
        _check_counts(path, f"stages[{i}].dropped", stage["dropped"], error)
    return summary


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _check_count(path: Path, field: str, value: Any, error: type[Exception]) -> None:
    """Raise unless `value` is a non-negative integer (a JSON bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = _kind(value) if not isinstance(value, int) or isinstance(value, bool) else str(value)
        raise error(f"{path}: {field} is {shown}, expected a count (an integer >= 0)")


def _check_counts(path: Path, field: str, value: Any, error: type[Exception]) -> None:
    """Raise unless `value` maps names to counts."""
    if not isinstance(value, dict):
        raise error(f"{path}: {field} is {_kind(value)}, expected an object of counts")
    for key, count in value.items():
        _check_count(path, f"{field}[{key!r}]", count, error)


def checks(
    summary: dict[str, Any],
    data_rows: int,
    reject_rows: dict[str, int] | None = None,
    quarantine_rows: int | None = None,
) -> list[dict[str, Any]]:
    """The accounting invariants of a summary; each is {check, ok, detail}.

    Args:
        summary: the summary dict.
        data_rows: rows in `data/*.parquet`.
        reject_rows: rows of `rejects/<stage>/*.parquet` per stage; None leaves that check out.
        quarantine_rows: records in `quarantine/*.jsonl`; None leaves that check out (or: not counted).

    Returns:
        The checks in a fixed order.
    """
    stages = summary["stages"]
    skipped = sum(summary["records_skipped"].values())
    result = [
        {
            "check": "records_read = docs_in + quarantined + records_skipped",
            "ok": summary["records_read"] == summary["docs_in"] + summary["quarantined"] + skipped,
            "detail": f"{summary['records_read']} = {summary['docs_in']} + {summary['quarantined']} + {skipped}",
        }
    ]
    bad = [s["name"] for s in stages if s["docs_in"] != s["docs_out"] + sum(s["dropped"].values())]
    result.append(
        {"check": "every stage: docs_in = docs_out + dropped", "ok": not bad, "detail": ", ".join(bad) or "all"}
    )
    breaks = [b["name"] for a, b in zip(stages, stages[1:], strict=False) if b["docs_in"] != a["docs_out"]]
    if stages and stages[0]["docs_in"] != summary["docs_in"]:
        breaks.insert(0, stages[0]["name"])
    result.append(
        {
            "check": "each stage's docs_in = the previous docs_out",
            "ok": not breaks,
            "detail": ", ".join(breaks) or "all",
        }
    )
    last_out = stages[-1]["docs_out"] if stages else summary["docs_in"]
    result.append(
        {
            "check": "last stage docs_out = summary docs_out = rows in data/",
            "ok": last_out == summary["docs_out"] == data_rows,
            "detail": f"{last_out} / {summary['docs_out']} / {data_rows}",
        }
    )
    if reject_rows is not None:
        over = [s["name"] for s in stages if reject_rows.get(s["name"], 0) > sum(s["dropped"].values())]
        sampled = [s["name"] for s in stages if reject_rows.get(s["name"], 0) < sum(s["dropped"].values())]
        result.append(
            {
                "check": "rejects rows <= dropped count per stage",
                "ok": not over,
                "detail": (f"more rows than drops: {', '.join(over)}; " if over else "")
                + (f"sampled or not written: {', '.join(sampled)}" if sampled else "complete for every stage"),
            }
        )
    if quarantine_rows is not None:
        result.append(
            {
                "check": "quarantine records = summary quarantined",
                "ok": quarantine_rows == summary["quarantined"],
                "detail": f"{quarantine_rows} = {summary['quarantined']}",
            }
        )
    return result


def check(summary: dict[str, Any], data_rows: int) -> None:
    """Raise unless the accounting of a finished run adds up (`checks`, and the quality cut's selected rows).

    Args:
        summary: the summary dict.
        data_rows: rows counted in the published `data/*.parquet`.

    Raises:
        InvariantError: listing every violated invariant.
    """
    problems = [f"{row['check']}: {row['detail']}" for row in checks(summary, data_rows) if not row["ok"]]
    quality = summary.get("quality")
    if quality and quality["selected"] != next(s["docs_out"] for s in summary["stages"] if s["name"] == "quality"):
        problems.append(f"quality: {quality['selected']} rows selected in quality/scores.parquet != stage docs_out")
    if problems:
        raise InvariantError("curate accounting does not add up:\n  " + "\n  ".join(problems))


def stage_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The funnel as recorded: one row {stage, docs_in, docs_out, dropped} per stage, in stage order."""
    return [
        {
            "stage": stage["name"],
            "docs_in": stage["docs_in"],
            "docs_out": stage["docs_out"],
            "dropped": sum(stage["dropped"].values()),
        }
        for stage in summary["stages"]
    ]


def reason_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The drops as recorded: one row {stage, reason, docs, stage_in} per (stage, reason), in stage order and by
    count (then reason) within a stage; `stage_in` is that stage's docs_in."""
    return [
        {"stage": stage["name"], "reason": reason, "docs": docs, "stage_in": stage["docs_in"]}
        for stage in summary["stages"]
        for reason, docs in sorted(stage["dropped"].items(), key=lambda kv: (-kv[1], kv[0]))
    ]
