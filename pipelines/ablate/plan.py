"""The evidence planner: from a finished ablation, which evaluations carry signal at this scale, and what would
resolve the gaps that do not (ablation.json `plan`).

Per evaluation set (each suite task, its aggregate, each `--eval-data` set), from the final scores of every run
and the scores at every checkpoint:

- `gap`: the lead of the best variant's mean over the runner-up's (as in the verdict);
- `seed_sd`: the noise of one run, the pooled standard deviation across seeds of the two (sample variance, so it
  needs two seeds); `snr` = gap / seed_sd;
- `monotonicity`: Spearman's rank correlation of the score (sign-flipped where lower is better) with the tokens
  seen across a run's checkpoints, averaged over runs: near 1 when the task improves steadily with training,
  near 0 when it wanders at noise level (which is what a task below its emergence scale does);
- `seeds_needed`: the seeds per variant for the gap to clear two standard errors of a difference of means,
  gap > 2 * seed_sd * sqrt(2 / n), so n = ceil(8 * seed_sd^2 / gap^2) (a two-sided test at about 95%);
- `tokens_needed`: where the gap between the two variants grows with training, the tokens at which the linear
  trend of that gap over the checkpoints reaches the resolvable gap with the seeds run now
  (2 * seed_sd * sqrt(2 / seeds)); None when it does not grow (more tokens will not separate them).

A task `carries_signal` when it improves with training (monotonicity >= 0.5). The recommendation names those
tasks, and for each unresolved one the cheaper of more seeds or more tokens; tasks without signal should not
decide anything at this scale (a larger proxy, README "Proxy scales", is the way to use them).
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean, variance
from typing import Any

MONOTONE = 0.5  # Spearman rho above which a score counts as improving with training


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than 3 points or a constant side."""
    if len(xs) < 3:
        return None

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = mean(rx), mean(ry)
    sx = math.sqrt(sum((r - mx) ** 2 for r in rx))
    sy = math.sqrt(sum((r - my) ** 2 for r in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True)) / (sx * sy)


def _slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    mx, my = mean(xs), mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _curves(runs: list[dict[str, Any]], name: str, sign: float) -> dict[str, list[list[tuple[int, float]]]]:
    """Per variant, each run's [(tokens, signed value)] over its checkpoints."""
    curves: dict[str, list[list[tuple[int, float]]]] = defaultdict(list)
    for run in runs:
        points = [(p["tokens"], sign * p["values"][name]) for p in run["points"] if name in p.get("values", {})]
        if points:
            curves[run["variant"]].append(points)
    return curves


def task_plan(name: str, metric: str, lower_is_better: bool, runs: list[dict[str, Any]], seeds: int) -> dict | None:
    """The plan of one evaluation set (fields in the module docstring), or None with fewer than two variants."""
    sign = -1.0 if lower_is_better else 1.0
    curves = _curves(runs, name, sign)
    finals = {v: [c[-1][1] for c in cs] for v, cs in curves.items()}
    if len(finals) < 2:
        return None
    best, runner_up = sorted(finals, key=lambda v: -mean(finals[v]))[:2]
    gap = mean(finals[best]) - mean(finals[runner_up])
    pair = [finals[best], finals[runner_up]]
    sd = math.sqrt(mean(variance(f) for f in pair)) if all(len(f) >= 2 for f in pair) else None
    rhos = [
        r for cs in curves.values() for c in cs if (r := spearman([t for t, _ in c], [v for _, v in c])) is not None
    ]
    monotonicity = mean(rhos) if rhos else None
    snr = gap / sd if sd else None
    seeds_needed = max(2, math.ceil(8 * sd**2 / gap**2)) if sd and gap > 0 else None
    tokens_needed = None
    if sd:
        steps = min(len(c) for v in (best, runner_up) for c in curves[v])
        tokens = [curves[best][0][i][0] for i in range(steps)]
        gaps = [mean(c[i][1] for c in curves[best]) - mean(c[i][1] for c in curves[runner_up]) for i in range(steps)]
        target = 2 * sd * math.sqrt(2 / seeds)
        slope = _slope([float(t) for t in tokens], gaps)
        if gaps[-1] > target:
            tokens_needed = tokens[-1]
        elif slope and slope > 0:
            tokens_needed = int(tokens[-1] + (target - gaps[-1]) / slope)
    signal = monotonicity is not None and monotonicity >= MONOTONE
    return {
        "eval_set": name,
        "metric": metric,
        "best": best,
        "runner_up": runner_up,
        "gap": gap,
        "seed_sd": sd,
        "snr": snr,
        "monotonicity": monotonicity,
        "seeds_needed": seeds_needed,
        "tokens_needed": tokens_needed,
        "carries_signal": signal,
        "text": _text(name, signal, monotonicity, snr, seeds_needed, tokens_needed, seeds),
    }


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _text(name, signal, monotonicity, snr, seeds_needed, tokens_needed, seeds) -> str:
    head = f"{name}: monotonicity {_num(monotonicity)}, signal-to-noise {_num(snr)}"
    if monotonicity is None:
        return f"{head}; fewer than 3 scored checkpoints per run (or a constant score): no trend to judge"
    if not signal:
        return f"{head}; does not improve steadily with training at this scale: do not decide on it here"
    if snr is None:
        return f"{head}; improves with training; run at least 2 seeds to measure the noise"
    if seeds_needed is not None and seeds_needed <= seeds:
        return f"{head}; the gap is resolved with {seeds} seeds"
    more = f"about {seeds_needed} seeds per variant" if seeds_needed else "more seeds"
    if tokens_needed is not None:
        more += f", or about {tokens_needed:,} tokens per run at {seeds} seeds (the gap's trend)"
    return f"{head}; to resolve the gap: {more}"


def build_plan(record: dict[str, Any], lower_is_better: dict[str, bool]) -> dict[str, Any]:
    """The `plan` of ablation.json: per evaluation set the planner's numbers, and a recommendation.

    Args:
        record: the ablation record so far (`eval_sets` names via `summary`, `runs` with their points, `seeds`).
        lower_is_better: per metric name, whether lower scores are better.

    Returns:
        {"tasks": [per-set plan (see `task_plan`)], "recommendation": text}.
    """
    sets = {(row["eval_set"], row["metric"]) for row in record["summary"]}
    order = [row["eval_set"] for row in record["summary"]]
    seeds = len(record["seeds"])
    tasks = [
        plan
        for name, metric in sorted(sets, key=lambda s: order.index(s[0]))
        if (plan := task_plan(name, metric, lower_is_better[metric], record["runs"], seeds)) is not None
    ]
    return {"tasks": tasks, "recommendation": recommend(tasks, seeds)}


def recommend(tasks: list[dict[str, Any]], seeds: int) -> str:
    """The report's advice: which evaluations carry signal at this scale and what to run next."""
    if not tasks:
        return "One variant: nothing to plan."
    signal = [t for t in tasks if t["carries_signal"]]
    quiet = [t["eval_set"] for t in tasks if not t["carries_signal"]]
    parts = []
    if signal:
        parts.append(f"Carry signal at this scale: {', '.join(t['eval_set'] for t in signal)}.")
    else:
        parts.append(
            "No evaluation improves steadily with training at this scale: train longer or use a larger proxy."
        )
    if quiet:
        parts.append(f"At noise level here (decide nothing on them): {', '.join(quiet)}.")
    unresolved = [t for t in signal if t["seeds_needed"] is None or t["seeds_needed"] > seeds]
    if unresolved:
        need = max((t["seeds_needed"] or 0) for t in unresolved)
        tokens = [t["tokens_needed"] for t in unresolved if t["tokens_needed"] is not None]
        step = f"Next: about {need} seeds per variant" if need else "Next: at least 2 seeds per variant"
        if tokens:
            step += f", or about {max(tokens):,} tokens per run"
        parts.append(step + f" to resolve {', '.join(t['eval_set'] for t in unresolved)}.")
    elif signal:
        parts.append("Every gap on them is resolved with the seeds run.")
    return " ".join(parts)
