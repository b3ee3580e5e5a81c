"""Benchmark: time to build the HTML report of a curate run of 100k documents (target: under 30 s here).

The run directory is synthesized in the exact curate layout from real texts (../shared/corpora
web-text.jsonl.gz and the C4 samples), replicated with edits (sentences dropped and reordered, a numbered
line appended) so that no two documents are identical; each document is assigned a fate (kept, or dropped
at a stage with a reason, language drops for the non-English texts) so summary.json satisfies the curate
invariants. Side by side, the same run measures a bare `polars.read_parquet` of the same files, the floor any
report must pay, and prints the ratio.

    .venv/bin/python -m benchmarks.report [--docs 100000] [--dir /tmp/ff-report-bench]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.common.files import write_json_atomic
from pipelines.report import build_report
from pipelines.report.data import load_curate

# (stage, probability of a drop among documents reaching it, reasons)
FATES = [
    ("extract", 0.01, ["empty_extraction"]),
    ("url_filter", 0.01, ["soft_blacklisted", "hard_blacklisted"]),
    ("language_filter", 0.02, ["language"]),
    ("gopher_repetition", 0.05, ["dup_line_frac", "top_2_gram", "duplicated_5_n_grams"]),
    ("gopher_quality", 0.10, ["gopher_short_doc", "gopher_below_alpha_threshold", "gopher_enough_stop_words"]),
    ("c4_quality", 0.04, ["line_punct_ratio", "too_few_sentences"]),
    ("fineweb_quality", 0.04, ["line_punct_ratio", "short_line_ratio", "char_dup_ratio"]),
    ("exact_dedup", 0.03, ["exact_duplicate"]),
    ("minhash_dedup", 0.05, ["minhash_duplicate"]),
]
STAGES = ["read", *[f[0] for f in FATES]]


def load_texts(corpora: Path) -> list[dict]:
    """Real extracted texts: web-text.jsonl.gz plus the C4 samples, with url and language hint."""
    docs = []
    with gzip.open(corpora / "web-text.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs.append({"text": d["text"], "url": d.get("url"), "lang": d.get("lang_hint") or "en"})
    for path in sorted((corpora / "c4-samples").glob("c4-sample.*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                docs.append({"text": d["text"], "url": d.get("url"), "lang": "en"})
    return docs


def _edit(text: str, rng: np.random.Generator, i: int) -> str:
    """Drop and shuffle a few lines and append a numbered line, so every copy differs."""
    lines = text.split("\n")
    if len(lines) > 3:
        keep = rng.random(len(lines)) > 0.15
        lines = [ln for ln, k in zip(lines, keep, strict=True) if k] or lines
        j = int(rng.integers(len(lines)))
        lines.insert(0, lines.pop(j))
    return "\n".join(lines) + f"\nEdition {i} of this page."


def synthesize_run(out_dir: Path, n_docs: int, corpora: Path, seed: int = 0) -> dict:
    """Write a curate-layout run directory of `n_docs` documents and return its summary."""
    rng = np.random.default_rng(seed)
    base = load_texts(corpora)
    rows = {"id": [], "text": [], "url": [], "lang": []}
    for i in range(n_docs):
        d = base[i % len(base)]
        rows["id"].append(f"synth/{i:07d}")
        rows["text"].append(_edit(d["text"], rng, i))
        host = (
            (d["url"] or f"https://site{i % 997}.example/page").split("/")[2] if d["url"] else f"site{i % 997}.example"
        )
        rows["url"].append(f"https://{host}/p/{i}")
        rows["lang"].append(d["lang"])
    fate = np.full(n_docs, -1)
    reason = np.empty(n_docs, dtype=object)
    alive = np.ones(n_docs, dtype=bool)
    lang = np.array(rows["lang"])
    for k, (stage, p, reasons) in enumerate(FATES):
        hit = alive & (rng.random(n_docs) < p)
        if stage == "language_filter":
            hit |= alive & (lang != "en")
        fate[hit] = k
        reason[hit] = np.array(reasons, dtype=object)[rng.integers(len(reasons), size=int(hit.sum()))]
        alive &= ~hit
    frame = pl.DataFrame({**rows, "fate": fate, "reason": reason.tolist()}).with_columns(
        source_file=pl.lit("synthetic.jsonl.gz"),
        score=pl.Series(rng.uniform(0.3, 1.0, n_docs)),
        cluster=pl.Series(rng.integers(2, 7, n_docs)),
    )
    for sub in ("data", "rejects", "quarantine"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    kept = frame.filter(pl.col("fate") == -1)
    meta = pl.struct(pl.col("score").alias("language_score"), pl.col("lang").alias("language")).struct.json_encode()
    chunk = 25_000
    for j in range(0, max(kept.height, 1), chunk):
        kept.slice(j, chunk).select(
            "id", "text", "url", "source_file", language="lang", language_score="score", metadata=meta
        ).write_parquet(out_dir / "data" / f"{j // chunk:05d}.parquet")
    stages = [{"name": "read", "docs_in": n_docs, "docs_out": n_docs, "dropped": {}}]
    remaining = n_docs
    for k, (stage, _, _) in enumerate(FATES):
        part = frame.filter(pl.col("fate") == k)
        extra = {
            "exact_dedup": {"dedup_cluster_size": pl.col("cluster")},
            "minhash_dedup": {"dedup_cluster_size": pl.col("cluster"), "minhash_cluster_size": pl.col("cluster")},
        }.get(stage, {})
        metadata = pl.struct(
            pl.col("reason").alias("filter_reason"),
            pl.col("score").alias("language_score"),
            pl.col("lang").alias("language"),
            **extra,
        ).struct.json_encode()
        (out_dir / "rejects" / stage).mkdir(exist_ok=True)
        part.select(
            "id",
            pl.when(pl.lit(stage == "extract")).then(pl.lit("")).otherwise("text").alias("text"),
            "url",
            "source_file",
            stage=pl.lit(stage),
            reason="reason",
            metadata=metadata,
        ).write_parquet(out_dir / "rejects" / stage / "00000.parquet")
        dropped = dict(part.group_by("reason").len().sort("reason").iter_rows())
        stages.append({"name": stage, "docs_in": remaining, "docs_out": remaining - part.height, "dropped": dropped})
        remaining -= part.height
    quarantined = max(1, n_docs // 1000)
    with open(out_dir / "quarantine" / "synthetic.jsonl", "w") as f:
        for q in range(quarantined):
            f.write(
                json.dumps({"file": "synthetic.jsonl.gz", "line": q, "error": "invalid JSON", "snippet": "{"}) + "\n"
            )
    summary = {
        "run_id": f"synthetic-{n_docs}",
        "config_hash": "synthetic",
        "inputs": ["synthetic.jsonl.gz"],
        "records_read": n_docs + quarantined,
        "quarantined": quarantined,
        "docs_in": n_docs,
        "docs_out": remaining,
        "stages": stages,
        "duration_s": 0.0,
        "docs_per_s": 0.0,
    }
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def main() -> None:
    """Synthesize the run (unless present), then time a bare Parquet read and the full report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ff-report-bench"))
    parser.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpora")
    args = parser.parse_args()
    run_dir = args.dir / f"run-{args.docs}"
    if not (run_dir / "summary.json").is_file():
        t = time.perf_counter()
        synthesize_run(run_dir, args.docs, args.corpora)
        print(f"synthesized {args.docs:,} documents in {time.perf_counter() - t:.1f} s -> {run_dir}")
    files = sorted(run_dir.glob("data/*.parquet")) + sorted(run_dir.glob("rejects/*/*.parquet"))
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    t = time.perf_counter()
    texts = sum(pl.read_parquet(f, columns=["id", "text", "url"]).height for f in files)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    load_curate(run_dir)
    tables_s = time.perf_counter() - t
    t = time.perf_counter()
    html = build_report(run_dir, args.dir / "report.html")
    report_s = time.perf_counter() - t
    print(f"documents: {texts:,} rows in {len(files)} Parquet files ({megabytes:.0f} MB)")
    print(f"bare read_parquet(id, text, url): {read_s:.2f} s")
    print(f"report tables (polars):          {tables_s:.2f} s  ({tables_s / read_s:.1f}x the bare read)")
    print(f"full report (tables+plots+HTML):  {report_s:.2f} s  ({report_s / read_s:.1f}x the bare read)")
    print(f"target < 30 s: {'met' if report_s < 30 else 'MISSED'}; HTML {html.stat().st_size / 1e6:.1f} MB at {html}")


if __name__ == "__main__":
    main()
