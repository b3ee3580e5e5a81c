"""A short terminal summary of a report (rich): headline numbers, the funnel, the top reasons, failed checks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.report.render import fmt_int, fmt_pct


def print_summary(tables: dict[str, Any], console: Console | None = None, top_reasons: int = 8) -> None:
    """Print the funnel and the largest drop reasons of a report.

    Args:
        tables: the dict returned by `report_data` (or `write_report`).
        console: where to print (default: a new stdout console).
        top_reasons: how many (stage, reason) rows to list.
    """
    console = console or Console()
    totals = tables["totals"]
    console.print(
        f"[bold]run {tables['run']['run_id']}[/]: {fmt_int(totals['docs_in'])} documents in, "
        f"[green]{fmt_int(totals['docs_out'])} kept[/] ({fmt_pct(totals['kept_share'])}), "
        f"{fmt_int(totals['dropped'])} dropped, {fmt_int(totals['quarantined'])} quarantined"
    )
    if skipped := totals.get("records_skipped"):
        kinds = ", ".join(f"{kind} {fmt_int(n)}" for kind, n in skipped.items())
        console.print(f"{fmt_int(sum(skipped.values()))} records are not documents ({kinds})")
    funnel = Table(title="funnel", title_justify="left")
    for name, justify in (("stage", "left"), ("in", "right"), ("out", "right"), ("dropped", "right"), ("%", "right")):
        funnel.add_column(name, justify=justify)
    for row in tables["funnel"]:
        funnel.add_row(
            row["stage"],
            fmt_int(row["docs_in"]),
            fmt_int(row["docs_out"]),
            fmt_int(row["dropped"]),
            fmt_pct(row["drop_share"]),
        )
    console.print(funnel)
    reasons = Table(title="top drop reasons", title_justify="left")
    for name, justify in (("stage", "left"), ("reason", "left"), ("docs", "right"), ("% of all", "right")):
        reasons.add_column(name, justify=justify)
    for row in sorted(tables["drops"], key=lambda r: -r["docs"])[:top_reasons]:
        reasons.add_row(row["stage"], row["reason"], fmt_int(row["docs"]), fmt_pct(row["share_of_docs_in"]))
    console.print(reasons)
    if tables.get("quality"):
        model = tables["quality"]["model"]
        console.print(
            f"quality: {fmt_int(model['scored'])} documents scored, {fmt_int(model['selected'])} passed the cut "
            f"(score >= {model['cutoff'] if model['cutoff'] is not None else 'any'})"
        )
    for row in (tables.get("decontamination") or {}).get("sets", []):
        console.print(f"decontaminate: {fmt_int(row['docs'])} documents share n-grams with {row['eval_set']}")
    privacy = tables.get("privacy") or {"pii": True, "raw_rejects": False}
    if not privacy["pii"]:
        console.print("[red]pii: off (pii.enabled: false): emails and IP addresses are raw in every file[/]")
    elif privacy["raw_rejects"]:
        console.print(f"[bold red]WARNING: pii.raw_rejects: {', '.join(privacy['raw'])} keep RAW addresses[/]")
    if pii := tables.get("pii"):
        replaced = pii["replacements"]
        console.print(
            f"pii: {fmt_int(pii['modified'])} documents changed ({fmt_int(replaced['emails'])} emails, "
            f"{fmt_int(replaced['ip_addresses'])} IP addresses replaced)"
        )
    if tables.get("tokens"):
        console.print(
            f"tokens: {fmt_int(tables['tokens']['tokens'])} in {fmt_int(tables['tokens']['documents'])} documents"
        )
    for check in tables["checks"]:
        if not check["ok"]:
            console.print(f"[red]check failed[/]: {check['check']} ({check['detail']})")
