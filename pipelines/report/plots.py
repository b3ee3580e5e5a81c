"""Report figures as PNG bytes, drawn with matplotlib's object API on the Agg canvas.

No pyplot and no global backend switch: each figure is a `matplotlib.figure.Figure` rendered by
`FigureCanvasAgg`, so importing this module changes nothing for other code and works headless. PNGs are
written without the `Software` metadata field, so the same numbers give byte-identical images (and a
byte-identical HTML report). A report's five figures take about 1 s together.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

KEPT = "#2563eb"
DROPPED = "#ea580c"
VAL = "#16a34a"
GRID = "#e5e7eb"
DPI = 110

DISTRIBUTIONS = (
    ("chars", "document length (characters)", True),
    ("words", "words per document", True),
    ("mean_word_len", "mean word length (characters)", False),
    ("language_score", "language score (fastText, detected language)", False),
    ("dup_line_frac", "duplicate-line fraction (log density)", False),
)
LOG_DENSITY = {"dup_line_frac"}  # mostly 0: a linear axis shows one spike and hides the tail


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def funnel_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """Horizontal bars per stage: documents kept (blue) and dropped at that stage (orange)."""
    names = [r["stage"] for r in rows]
    kept = np.array([r["docs_out"] for r in rows], dtype=float)
    dropped = np.array([r["dropped"] for r in rows], dtype=float)
    fig = _figure(7.5, 0.24 * len(rows) + 0.8)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    ax.barh(y, kept, color=KEPT, label="passed on")
    ax.barh(y, dropped, left=kept, color=DROPPED, label="dropped here")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("documents", fontsize=8)
    _style(ax)
    ax.grid(axis="y", visible=False)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _png(fig)


def _hist(ax: Any, kept: np.ndarray, dropped: np.ndarray, title: str, log: bool, log_y: bool = False) -> None:
    values = np.concatenate([kept, dropped])
    values = values[np.isfinite(values)]
    ax.set_title(title, fontsize=9)
    _style(ax)
    if values.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        return
    if log:
        low, high = max(values.min(), 1.0), max(values.max(), 2.0)
        bins = np.logspace(np.log10(low), np.log10(high) + 1e-9, 40)
        ax.set_xscale("log")
    else:  # one far outlier (a 200-character "word") would squash the rest into a single bin
        low, high = np.percentile(values, [0.5, 99.5])
        bins = np.linspace(low, high if high > low else low + 1, 40)
    for data, color, label in ((kept, KEPT, "kept"), (dropped, DROPPED, "dropped")):
        data = data[np.isfinite(data)]
        if data.size:
            ax.hist(data, bins=bins, density=True, color=color, alpha=0.45, label=f"{label} ({data.size:,})")
            ax.hist(data, bins=bins, density=True, color=color, histtype="step", linewidth=1.2)
    if log_y:
        ax.set_yscale("log")
    ax.set_yticks([])
    ax.set_yticks([], minor=True)
    ax.legend(fontsize=7, frameon=False)


def distributions_png(
    kept: dict[str, np.ndarray], dropped: dict[str, np.ndarray], cluster_sizes: Sequence[dict[str, int]]
) -> bytes:
    """Five kept-vs-dropped histograms (density) plus the near-duplicate cluster sizes of MinHash drops.

    Args:
        kept: feature name -> values for kept documents.
        dropped: feature name -> values for documents dropped after extraction.
        cluster_sizes: rows {size, docs} from the MinHash rejects' metadata.
    """
    fig = _figure(10.5, 5.6)
    axes = fig.subplots(2, 3).ravel()
    for ax, (name, title, log) in zip(axes, DISTRIBUTIONS, strict=False):
        _hist(ax, kept[name], dropped[name], title, log, log_y=name in LOG_DENSITY)
    ax = axes[-1]
    ax.set_title("near-duplicate cluster size (MinHash drops)", fontsize=9)
    _style(ax)
    if cluster_sizes:
        ax.bar([str(r["size"]) for r in cluster_sizes], [r["docs"] for r in cluster_sizes], color=DROPPED)
        ax.set_ylabel("dropped documents", fontsize=8)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no MinHash drops", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    return _png(fig)


def tokens_png(doc_tokens: np.ndarray) -> bytes:
    """Histogram of GPT-2 tokens per document (log x)."""
    fig = _figure(7.5, 2.8)
    ax = fig.add_subplot()
    _style(ax)
    values = doc_tokens[doc_tokens > 0]
    if values.size:
        bins = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, 40)
        ax.hist(values, bins=bins, color=KEPT, alpha=0.8)
        ax.set_xscale("log")
        ax.axvline(float(np.median(values)), color="#111827", linewidth=1, linestyle="--", label="median")
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("tokens per document", fontsize=8)
    ax.set_ylabel("documents", fontsize=8)
    return _png(fig)


def training_png(
    steps: Sequence[tuple[int, float]],
    evals: Sequence[tuple[int, float]],
    by_source: dict[str, Sequence[tuple[int, float]]] | None = None,
) -> bytes:
    """Training loss per step and validation loss at each evaluation; on a mixture, one val curve per source."""
    fig = _figure(7.5, 3.0)
    ax = fig.add_subplot()
    _style(ax)
    if steps:
        x, y = zip(*steps, strict=True)
        ax.plot(x, y, color=KEPT, linewidth=1.2, label="train loss")
    if evals:
        x, y = zip(*evals, strict=True)
        ax.plot(x, y, color=VAL, marker="o", markersize=3, linewidth=1.2, label="val loss")
    for name, points in (by_source or {}).items():
        x, y = zip(*points, strict=True)
        ax.plot(x, y, marker=".", markersize=3, linewidth=1.0, linestyle="--", label=f"val loss {name}")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def curves_png(panels: Sequence[dict[str, Any]], width: float = 10.5) -> bytes:
    """Line charts side by side, several series each (e.g. every run of an ablation against tokens seen).

    Args:
        panels: {"title", "xlabel", "ylabel", "series": [{"label", "x", "y", "color", "style"}]} per chart;
            `style` is a matplotlib line style ("-", "--", ...). A panel without points says so.
        width: figure width in inches.
    """
    fig = _figure(width, 3.2)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels))))
    for ax, panel in zip(axes, panels, strict=False):
        _style(ax)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(panel["xlabel"], fontsize=8)
        ax.set_ylabel(panel["ylabel"], fontsize=8)
        drawn = [s for s in panel["series"] if len(s["x"])]
        for series in drawn:
            marker = "o" if len(series["x"]) <= 12 else None
            ax.plot(series["x"], series["y"], series.get("style", "-"), color=series.get("color"), linewidth=1.2,
                    marker=marker, markersize=3, label=series["label"])  # fmt: skip
        if drawn:
            ax.legend(fontsize=7, frameon=False)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    return _png(fig)


def quality_png(quality: dict[str, Any]) -> bytes:
    """Quality scores: a histogram of documents that passed the cut against those below it, and the share of
    documents and tokens kept as a function of the threshold (the run's cut dashed)."""
    fig = _figure(10.5, 3.2)
    hist, curve = fig.subplots(1, 2)
    edges = np.asarray(quality["histogram"]["edges"])
    widths = np.diff(edges)
    passed = np.asarray(quality["histogram"]["passed"])
    below = np.asarray(quality["histogram"]["below"])
    hist.bar(edges[:-1], below, widths, align="edge", color=DROPPED, label=f"below the cut ({below.sum():,})")
    hist.bar(edges[:-1], passed, widths, bottom=below, align="edge", color=KEPT, label=f"passed ({passed.sum():,})")
    hist.set_title("quality score", fontsize=9)
    hist.set_ylabel("documents", fontsize=8)
    rows = [r for r in quality["curve"] if r["docs_share"] is not None]
    thresholds = [r["threshold"] for r in rows]
    curve.plot(thresholds, [r["docs_share"] for r in rows], color=KEPT, marker="o", markersize=3, label="documents")
    curve.plot(thresholds, [r["tokens_share"] for r in rows], color=VAL, marker="o", markersize=3, label="tokens")
    curve.set_title("share kept at a threshold (score >= threshold)", fontsize=9)
    curve.set_ylim(0, 1.02)
    cut = quality["model"].get("cutoff")
    for ax in (hist, curve):
        _style(ax)
        if cut is not None:
            ax.axvline(cut, color="#111827", linewidth=1, linestyle="--", label="this run's cut")
        ax.legend(fontsize=7, frameon=False)
    return _png(fig)
