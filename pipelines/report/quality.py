"""The report's quality section: what the classifier scored, and what a threshold would cost before choosing it.

Read from a curate run whose quality stage was on: `quality/scores.parquet` holds every scored document (id,
score, GPT-2 tokens, whether it passed the cut), `summary.json["quality"]` the model and the cut, and `data/` plus
`rejects/` the texts of the documents that can be shown. The numbers:

- `curve`: for each threshold of a fixed grid (ten equal steps over the score range: 0-1 for a probability, the
  lowest to the highest label for an expected label value) and for the run's own cut, the documents and GPT-2
  tokens scoring at least that much, with their shares of all scored. Exact, from every score (not a sample).
- `bands`: five equal score bands with their documents and how many passed the cut.
- `histogram`: 20 bins over the same range, passed against below the cut (for the figure).
- samples: up to three documents per band, chosen by a hash of the id among those whose text is in `data/` or
  `rejects/` (rejects keep a sample per reason, so a band's samples may come only from kept documents).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.curate.pii import recorded_privacy
from pipelines.report.data import pick_ids, snippet

CURVE_STEPS = 10
BANDS = 5
HISTOGRAM_BINS = 20
SAMPLES_PER_BAND = 3
SCORES_FILE = Path("quality") / "scores.parquet"


def score_range(quality: dict[str, Any]) -> tuple[float, float]:
    """The span scores can take: [0, 1] for a probability, [lowest, highest] label for an expected label value."""
    if quality.get("score") == "expected_value" and quality.get("labels"):
        return float(min(quality["labels"])), float(max(quality["labels"]))
    return 0.0, 1.0


def threshold_curve(scores: np.ndarray, tokens: np.ndarray, thresholds: list[float]) -> list[dict[str, Any]]:
    """Documents and tokens scoring >= each threshold, with their shares of all scored.

    Args:
        scores: every scored document's score.
        tokens: its GPT-2 tokens.
        thresholds: where to evaluate, in any order.

    Returns:
        One row per threshold: {threshold, docs, docs_share, tokens, tokens_share}.
    """
    order = np.argsort(scores, kind="stable")
    ordered, kept_tokens = scores[order], np.concatenate([np.cumsum(tokens[order][::-1])[::-1], [0]])
    total_docs, total_tokens = scores.size, int(tokens.sum())
    rows = []
    for threshold in thresholds:
        first = int(np.searchsorted(ordered, threshold, side="left"))  # first score >= threshold
        docs, toks = total_docs - first, int(kept_tokens[first])
        rows.append(
            {
                "threshold": float(threshold),
                "docs": docs,
                "docs_share": docs / total_docs if total_docs else None,
                "tokens": toks,
                "tokens_share": toks / total_tokens if total_tokens else None,
            }
        )
    return rows


def _band_of(scores: pl.Expr, low: float, high: float) -> pl.Expr:
    """Band index 0..BANDS-1 of each score (the top edge belongs to the last band)."""
    width = (high - low) / BANDS
    return ((scores - low) / width).floor().clip(0, BANDS - 1).cast(pl.Int64)


def _texts(run_dir: Path) -> pl.DataFrame:
    """id, text and url of every scored document whose text was kept (data/, or a scored stage's rejects/)."""
    files = sorted((run_dir / "data").glob("*.parquet")) + sorted((run_dir / "rejects").glob("*/*.parquet"))
    frames = [
        pl.scan_parquet(f).select("id", "text", "url") for f in files if "quality_score" in pl.read_parquet_schema(f)
    ]
    if not frames:
        return pl.DataFrame(schema={"id": pl.String, "text": pl.String, "url": pl.String})
    return pl.concat(frames).unique("id", keep="first", maintain_order=True).collect()


def load_quality(run_dir: Path, summary: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, list[dict]]]:
    """The quality section's numbers and samples, or (None, {}) when the run has no scores.

    Args:
        run_dir: a curate output folder.
        summary: its summary.json.

    Returns:
        (tables {"model", "curve", "bands", "histogram"}, samples {"quality/<band>": [{id, url, snippet, about}]}).
    """
    path = Path(run_dir) / SCORES_FILE
    quality = summary.get("quality")
    if not quality or not path.is_file():
        return None, {}
    scores = pl.read_parquet(path)
    low, high = score_range(quality)
    values, tokens = scores["quality_score"].to_numpy(), scores["tokens"].to_numpy()
    grid = [low + (high - low) * i / CURVE_STEPS for i in range(CURVE_STEPS + 1)]
    cut = quality.get("cutoff")
    curve = threshold_curve(values, tokens, sorted({*grid, *([cut] if cut is not None else [])}))
    for row in curve:
        row["this_run"] = cut is not None and row["threshold"] == cut
    banded = scores.with_columns(band=_band_of(pl.col("quality_score"), low, high))
    width = (high - low) / BANDS
    counts = {b: (n, k) for b, n, k in banded.group_by("band").agg(pl.len(), pl.col("selected").sum()).iter_rows()}
    bands = [
        {
            "band": f"{low + i * width:.2f}–{low + (i + 1) * width:.2f}",
            "low": low + i * width,
            "high": low + (i + 1) * width,
            "docs": counts.get(i, (0, 0))[0],
            "passed": int(counts.get(i, (0, 0))[1]),
        }
        for i in range(BANDS)
    ]
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    selected = scores["selected"].to_numpy()
    histogram = {
        "edges": edges.tolist(),
        "passed": np.histogram(np.clip(values[selected], low, high), edges)[0].tolist(),
        "below": np.histogram(np.clip(values[~selected], low, high), edges)[0].tolist(),
    }
    model = {key: quality.get(key) for key in ("model", "model_sha256", "score", "positive_label", "threshold")}
    model |= {key: quality.get(key) for key in ("keep_fraction", "score_only", "cutoff", "scored", "selected")}
    tables = {"model": model, "curve": curve, "bands": bands, "histogram": histogram}
    return tables, _samples(run_dir, banded, bands, recorded_privacy(summary)[1])


def _samples(
    run_dir: Path, banded: pl.DataFrame, bands: list[dict[str, Any]], scrub: Callable[[str], str]
) -> dict[str, list[dict[str, Any]]]:
    """Up to SAMPLES_PER_BAND documents per band with text (url and text through `scrub`, the run's PII policy),
    picked by a hash of the id (the same on every run)."""
    texts = _texts(run_dir)
    shown = banded.join(texts, on="id", how="inner")
    samples = {}
    for i, band in enumerate(bands):
        part = shown.filter(pl.col("band") == i)
        chosen = set(pick_ids(part["id"].to_list(), SAMPLES_PER_BAND))
        rows = part.filter(pl.col("id").is_in(chosen)).sort("id").iter_rows(named=True)
        samples[f"quality/{band['band']}"] = [
            {
                "id": row["id"],
                "url": scrub(row["url"] or "") or None,
                "snippet": snippet(scrub(row["text"] or "")),
                "about": f"score {row['quality_score']:.3f} · {'passed' if row['selected'] else 'below the cut'}"
                f" · {row['tokens']:,} tokens",
            }
            for row in rows
        ]
    return samples
