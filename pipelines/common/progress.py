"""Live progress of a running stage, as plain data: what curate, tokenize and train report while they run.

A stage calls its `on_progress` callback with a `Progress` snapshot whenever it knows more (curate's watcher
about once a second, tokenize per batch of documents, train per metrics line). The snapshot says which step
runs, how many units of it are done out of how many (when the input size tells), and the per-stage counts so
far. Rates and the ETA are computed here once, so the terminal (`orchestration.progress.TerminalProgress`) and
the Prefect artifacts (`orchestration.progress.ArtifactProgress`) show the same numbers for all three stages.

`overall` folds the steps of a stage into one fraction with per-step weights, so that a progress bar does not
sit at 50% through a stage's long first step and jump to 100% over its short second one; each stage gives its
weights with the measurement they come from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One snapshot of a running stage.

    Attributes:
        stage: `curate`, `tokenize` or `train`.
        step: the step running now (`filter`, `dedup`, `tokenize`, `shards`, `train`, ...).
        done: units of this step done so far.
        total: units of this step in all, when the input size tells (None: unknown, no ETA).
        unit: what a unit is (`docs`, `shards`, `steps`).
        elapsed_s: seconds since the step started.
        overall: fraction of the whole stage done, in [0, 1].
        detail: a short note on the step (the dedup sub-stage, the loss).
        rows: counts so far, one dict per stage or step (all with the same keys), for a table.
        baseline: units that were done before this process started the step (a resumed run), left out of the rate.
    """

    stage: str
    step: str
    done: float
    total: float | None
    unit: str
    elapsed_s: float
    overall: float
    detail: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    baseline: float = 0.0

    @property
    def rate(self) -> float:
        """Units per second done by this process in the step so far (0 before the first second)."""
        return (self.done - self.baseline) / self.elapsed_s if self.elapsed_s >= 1.0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left in this step at the rate so far, or None when the total or the rate is unknown."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    def describe(self) -> str:
        """One line such as `filter: 12,345/40,000 docs, 310 docs/s, ETA 1m29s (gopher_quality)`."""
        amount = f"{self.done:,.0f}/{self.total:,.0f}" if self.total is not None else f"{self.done:,.0f}"
        text = f"{self.step}: {amount} {self.unit}"
        if self.rate > 0:
            text += f", {self.rate:,.1f} {self.unit}/s" if self.rate < 10 else f", {self.rate:,.0f} {self.unit}/s"
        if (eta := self.eta_s) is not None:
            text += f", ETA {format_duration(eta)}"
        return text + (f" ({self.detail})" if self.detail else "")


ProgressCallback = Callable[[Progress], None]


def ignore_progress(progress: Progress) -> None:
    """The default callback: drop the snapshot."""


def format_duration(seconds: float) -> str:
    """`42s`, `3m07s` or `2h05m`.

    Args:
        seconds: a duration.

    Returns:
        The short form.
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def overall_fraction(weights: dict[str, float], step: str, fraction: float) -> float:
    """The stage's fraction done when `step` is `fraction` done and the steps before it are finished.

    Args:
        weights: share of the stage's time per step, in step order (need not sum to 1).
        step: the running step (an unknown step counts as weightless).
        fraction: how much of it is done, in [0, 1].

    Returns:
        A fraction in [0, 1].
    """
    total = sum(weights.values())
    before = 0.0
    for name, weight in weights.items():
        if name == step:
            return min(1.0, (before + weight * min(max(fraction, 0.0), 1.0)) / total)
        before += weight
    return min(1.0, before / total) if step == "done" else 0.0


class StepClock:
    """When each step started, so that snapshots carry the elapsed time of their step."""

    def __init__(self) -> None:
        self._step: str | None = None
        self._start = time.monotonic()

    def elapsed(self, step: str) -> float:
        """Seconds since `step` first showed up (the clock restarts when the step changes)."""
        if step != self._step:
            self._step, self._start = step, time.monotonic()
        return time.monotonic() - self._start


class Throttle:
    """Lets a call through at most once every `interval_s` seconds (the first call always passes)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._last: float | None = None

    def ready(self, force: bool = False) -> bool:
        """True (and the clock restarts) when `interval_s` has passed since the last True, or when forced."""
        now = time.monotonic()
        if force or self._last is None or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False
