"""The comparison report of an ablation: one self-contained HTML page, `DIR/report.html`.

Sections, top to bottom: the verdict per evaluation set (a best variant is marked only where its lead exceeds
the spread across seeds, `pipelines.ablate.results`); every evaluation set and metric with mean, min, max and
each seed's score; training loss and evaluation scores of all runs overlaid against tokens seen; per variant
the tokens and epochs trained, the funnel and the drop reasons side by side, and the curate compare view of
each variant against the first (`pipelines.report.data.compare_tables`); overlap of the evaluation sets with
each variant's curated data; samples of every variant's final model for the same prompts; the settings.

Built with the data report's page parts (`pipelines.report.render`: CSS, tables with `data-col` cells, inline
PNG figures), so it makes no network request either; its only links are relative ones to each variant's data
report. The whole ablation.json is embedded as `<script type="application/json" id="ablation-data">`.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.files import atomic_write
from pipelines.common.metrics import read_metrics
from pipelines.curate.summary import recorded
from pipelines.report.data import compare_tables
from pipelines.report.plots import curves_png
from pipelines.report.render import CSS, PAGE_HEAD, compare_section, image, table

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563")
SEED_STYLES = ("-", "--", ":", "-.")
SMOOTHING = 50  # the training-loss curves average over len(steps) / 50 steps
EXTRA_CSS = """
a { color:var(--kept); }
ul.verdicts { padding-left:18px; } ul.verdicts li { margin:4px 0; }
td.mono { overflow-wrap:anywhere; max-width:320px; }
.sample-text { white-space:pre-wrap; font-size:13px; background:var(--bg); padding:6px 10px; border-radius:4px;
  border-left:3px solid var(--kept); margin:4px 0 10px; overflow-wrap:anywhere; }
"""


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _smooth(values: list[float]) -> list[float]:
    """Trailing mean over a fiftieth of the points: one step's loss on a small batch is mostly noise."""
    window = max(1, len(values) // SMOOTHING)
    sums = np.cumsum([0.0, *values])
    return [(sums[i + 1] - sums[max(0, i + 1 - window)]) / min(window, i + 1) for i in range(len(values))]


def _curves(record: dict[str, Any]) -> bytes:
    """Train loss and each evaluation set's score against tokens seen, every run overlaid."""
    batch_tokens = record["settings"]["batch_tokens"]
    names = [v["name"] for v in record["variants"]]
    seeds = record["seeds"]

    def series(run: dict[str, Any], x: list[float], y: list[float]) -> dict[str, Any]:
        return {
            "label": f"{run['variant']} s{run['seed']}",
            "x": x,
            "y": y,
            "color": _color(names.index(run["variant"])),
            "style": SEED_STYLES[seeds.index(run["seed"]) % len(SEED_STYLES)],
        }

    loss = []
    for run in record["runs"]:
        steps = [r for r in read_metrics(Path(run["dir"]) / "metrics.jsonl") if r.get("type") == "step"]
        loss.append(series(run, [r["step"] * batch_tokens for r in steps], _smooth([r["loss"] for r in steps])))
    panels = [
        {
            "title": "training loss (moving mean)",
            "xlabel": "tokens seen",
            "ylabel": "loss (nats/token)",
            "series": loss,
        }
    ]
    for eval_set in record["eval_sets"]:
        metric = "bits per byte" if eval_set["kind"] == "text" else "acc_norm"
        evals = [
            series(
                run,
                [p["tokens"] for p in run["points"] if eval_set["name"] in p["values"]],
                [p["values"][eval_set["name"]] for p in run["points"] if eval_set["name"] in p["values"]],
            )
            for run in record["runs"]
        ]
        panels.append(
            {"title": f"eval: {eval_set['name']}", "xlabel": "tokens seen", "ylabel": metric, "series": evals}
        )
    return curves_png(panels, width=min(16.0, 4.2 * len(panels)))


def _verdicts(record: dict[str, Any]) -> str:
    if not record["verdicts"]:
        return '<p class="muted">One variant: nothing to compare.</p>'
    items = "".join(
        f'<li class="{"ok" if v["decisive"] else "muted"}" data-eval-set="{escape(v["eval_set"])}" '
        f'data-decisive="{str(v["decisive"]).lower()}">{escape(v["text"])}</li>'
        for v in record["verdicts"]
    )
    return (
        '<p class="muted">A variant is marked best only where its lead over the runner-up exceeds the spread of '
        "scores across seeds (max − min of either); otherwise the difference is within noise.</p>"
        f'<ul class="verdicts">{items}</ul>'
    )


def _plan(record: dict[str, Any]) -> str:
    plan = record.get("plan") or {}
    if not plan.get("tasks"):
        return '<p class="muted">One variant: nothing to plan.</p>'
    columns = [
        ("eval_set", "eval set", "text"),
        ("gap", "gap", "float3"),
        ("seed_sd", "seed sd", "float3"),
        ("snr", "signal / noise", "float3"),
        ("monotonicity", "monotonicity", "float3"),
        ("seeds_needed", "seeds needed", "int"),
        ("tokens_needed", "tokens needed", "int"),
        ("signal", "carries signal", "text"),
    ]
    rows = [{**t, "signal": "yes" if t["carries_signal"] else "no"} for t in plan["tasks"]]
    return (
        f'<p class="plan-recommendation">{escape(plan["recommendation"])}</p>'
        '<p class="muted">Gap: best minus runner-up mean; seed sd: pooled standard deviation across seeds; '
        "monotonicity: Spearman correlation of the score with tokens seen over each run's checkpoints; seeds "
        "needed: n with gap &gt; 2·sd·√(2/n); tokens needed: where the gap's trend over checkpoints reaches the "
        "gap resolvable with the seeds run (empty when the gap does not grow).</p>" + table("plan", columns, rows)
    )


def _results(record: dict[str, Any]) -> str:
    decisive = {(v["eval_set"], v["best"]) for v in record["verdicts"] if v["decisive"]}
    noise = {v["eval_set"] for v in record["verdicts"] if not v["decisive"]}
    per_seed: dict[tuple[str, str], dict[int, float]] = {}
    for row in record["results"]:
        per_seed.setdefault((row["variant"], row["eval_set"]), {})[row["seed"]] = row["value"]
    rows = []
    for row in record["summary"]:
        mark = "best" if (row["eval_set"], row["variant"]) in decisive else ""
        mark = mark or ("within noise" if row["eval_set"] in noise else "")
        seeds = per_seed.get((row["variant"], row["eval_set"]), {})
        rows.append({**row, "verdict": mark, **{f"seed_{s}": v for s, v in seeds.items()}})
    columns = [
        ("eval_set", "eval set", "text"),
        ("metric", "metric", "mono"),
        ("variant", "variant", "text"),
        ("mean", "mean", "float3"),
        ("min", "min", "float3"),
        ("max", "max", "float3"),
        ("spread", "spread (max − min)", "float3"),
        *[(f"seed_{s}", f"seed {s}", "float3") for s in record["seeds"]],
        ("verdict", "verdict", "text"),
    ]
    return (
        '<p class="muted">Final model of each run; bits per byte (lower is better) for text sets, acc_norm '
        "(higher is better) for multiple-choice sets and suite tasks, centered (higher is better; 0 is chance) for "
        "the suite's aggregate.</p>" + table("results", columns, rows)
    )


def _data(record: dict[str, Any], summaries: dict[str, dict[str, Any]], out: Path) -> str:
    variants = []
    for v in record["variants"]:
        report = Path(v["name"]) / "curated" / "report.html"
        link = f'<a href="{escape(report.as_posix())}">data report</a>' if (out / report).is_file() else "—"
        variants.append({**v, "docs_in": summaries[v["name"]].get("docs_in"), "report": link})
    columns = [
        ("name", "variant", "text"),
        ("config", "config", "mono"),
        ("config_hash", "config hash", "mono"),
        ("docs_in", "docs in", "int"),
        ("docs_out", "docs kept", "int"),
        ("train_tokens", "train tokens", "int"),
        ("epochs", "epochs", "float"),
    ]
    html = table("variants", columns, variants)
    html += (
        '<p class="muted">Data reports: '
        + ", ".join(f"{escape(v['name'])}: {v['report']}" for v in variants)
        + f". Every run trained {record['settings']['tokens_trained']:,} tokens; a variant with fewer repeats its "
        "data.</p>"
    )
    names = [v["name"] for v in record["variants"]]
    stages = [s["name"] for s in summaries[names[0]].get("stages", [])]
    funnel = []
    for stage in stages:
        row: dict[str, Any] = {"stage": stage}
        for name in names:
            found = next((s for s in summaries[name].get("stages", []) if s["name"] == stage), None)
            row[name] = found["docs_out"] if found else None
        funnel.append(row)
    html += "<h3>Funnel: documents after each stage</h3>"
    html += table("funnel-variants", [("stage", "stage", "text"), *[(n, n, "int") for n in names]], funnel)
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    for name in names:
        for stage in summaries[name].get("stages", []):
            for reason, count in stage["dropped"].items():
                reasons.setdefault((stage["name"], reason), {})[name] = count
    drops = [{"stage": stage, "reason": reason, **counts} for (stage, reason), counts in reasons.items()]
    html += "<h3>Drop reasons</h3>"
    html += table(
        "drops-variants", [("stage", "stage", "text"), ("reason", "reason", "mono"), *[(n, n, "int") for n in names]],
        drops,
    )  # fmt: skip
    for v in record["variants"]:  # a mixture variant (`pipelines.ablate.mixture`) has no curate summary of its own
        if v.get("sources"):
            parts = [f"{s['name']} {s['weight']:.3g} ({s['train_tokens']:,} tokens, {s['epochs']:g} epochs)"
                     for s in v["sources"]]  # fmt: skip
            html += f'<p class="muted">{escape(v["name"])} mixes {escape(", ".join(parts))}.</p>'
    for name in names[1:]:
        if summaries[name] and summaries[names[0]]:
            html += f"<h3>Compare: {escape(name)} against {escape(names[0])}</h3>"
            html += compare_section(compare_tables(summaries[name], summaries[names[0]]))
    return html


def _overlap(record: dict[str, Any]) -> str:
    columns = [
        ("variant", "variant", "text"),
        ("eval_set", "eval set", "text"),
        ("documents", "eval documents in the curated data", "int"),
        ("share", "share of the set", "pct"),
    ]
    return (
        '<p class="muted">Exact matches of normalised text (lower case, no punctuation or accents, collapsed '
        "whitespace) between each evaluation set and each variant's curated documents. A set that a variant "
        "trained on flatters that variant.</p>" + table("overlap", columns, record["overlap"])
    )


def _samples(record: dict[str, Any]) -> str:
    first = {}
    for run in record["runs"]:
        first.setdefault(run["variant"], run)
    prompts = [s["prompt"] for s in next(iter(first.values()), {}).get("samples", [])]
    html = '<p class="muted">The final model of each variant\'s first seed, same prompts and sampling seed.</p>'
    for i, prompt in enumerate(prompts):
        html += f"<h3>{escape(prompt)}…</h3>"
        for name, run in first.items():
            text = run["samples"][i]["text"] if i < len(run["samples"]) else ""
            html += f'<div class="muted">{escape(name)}</div><div class="sample-text">{escape(text)}</div>'
    return html


def _settings(record: dict[str, Any]) -> str:
    rows = [
        {"setting": k, "value": json.dumps(v) if isinstance(v, list) else str(v)}
        for k, v in record["settings"].items()
    ]
    rows += [{"setting": "seeds", "value": ", ".join(map(str, record["seeds"]))}]
    rows += [{"setting": "inputs", "value": ", ".join(record["inputs"])}]
    return table("settings", [("setting", "setting", "text"), ("value", "value", "mono")], rows)


def render_ablation(record: dict[str, Any], summaries: dict[str, dict[str, Any]], curves: bytes, out: Path) -> str:
    """The report page of an ablation.

    Args:
        record: the ablation record (ablation.json).
        summaries: each variant's curate summary.json, by variant name.
        curves: the overlaid curves (PNG).
        out: the ablation folder (links to variant reports are relative to it).

    Returns:
        The HTML text.
    """
    sections = [
        ("verdict", "Verdict", _verdicts(record)),
        ("results", "Results", _results(record)),
        ("plan-section", "Plan: how much evidence is enough", _plan(record)),
        ("curves", "Curves", image(curves, "training loss and evaluation scores against tokens seen")),
        ("data", "Data per variant", _data(record, summaries, out)),
        ("overlap-section", "Overlap with the evaluation sets", _overlap(record)),
        ("samples", "Samples", _samples(record)),
        ("settings-section", "Settings", _settings(record)),
    ]
    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>' for sid, title, html in sections)
    blob = json.dumps(record, sort_keys=True, ensure_ascii=False)
    blob = blob.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    names = ", ".join(v["name"] for v in record["variants"])
    lead = (
        f"Which recipe makes the better model? {escape(names)}: each curated from the same inputs and trained "
        f"{record['settings']['tokens_trained']:,} tokens ({escape(record['settings']['model'])} model) once per "
        f"seed ({escape(', '.join(map(str, record['seeds'])))}), scored on the same evaluation sets."
    )
    return (
        f"{PAGE_HEAD}ablation · {escape(names)}</title><style>{CSS}{EXTRA_CSS}</style></head><body>"
        f'<nav><div class="brand">FineForge ablation</div>{nav}</nav>'
        f'<main><h1>Ablation report</h1><p class="lead">{lead}</p>{body}'
        f'<footer class="muted">Written by <code>fineforge ablate</code> from <code>{escape(str(out))}</code> '
        f"at {escape(record['created'])}.</footer></main>"
        f'<script type="application/json" id="ablation-data">{blob}</script>'
        "</body></html>\n"
    )


def write_ablation_report(out: Path, record: dict[str, Any]) -> Path:
    """Write DIR/report.html for an ablation record, reading the runs' metrics and the variants' summaries.

    Args:
        out: the ablation folder.
        record: the ablation record.

    Returns:
        The path written.
    """
    summaries = {v["name"]: recorded(out / v["name"] / "curated") or {} for v in record["variants"]}
    html = render_ablation(record, summaries, _curves(record), out)
    path = out / "report.html"
    with atomic_write(path, "w") as f:
        f.write(html)
    return path
