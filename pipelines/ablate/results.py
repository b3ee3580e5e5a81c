"""From scored runs to the ablation's answer: results per run, mean and spread per variant, and a verdict.

A verdict names a best variant only when its lead is larger than the noise: with the variants ranked by mean
(lowest bits per byte, highest acc_norm), the lead is the gap between the two best means and the spread is the
larger of their ranges across seeds (max - min). A lead that does not exceed the spread is "within noise": a
second seed of the same recipe moved the score as much as the change of recipe did. One seed has no spread and
gives no verdict. (On the tiny model two seeds of one recipe differed by up to 0.23 nats of eval loss, which is
why this is a rule and not a footnote; README "Ablations" gives the measured numbers.)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipelines.ablate.evalsets import LOWER_IS_BETTER, EvalSet


def results_rows(runs: list[dict[str, Any]], eval_sets: list[EvalSet]) -> list[dict[str, Any]]:
    """One row per run and evaluation set: the score of the run's final model.

    Args:
        runs: `{variant, seed, tokens_trained, points}` per run; `points` as in evals.json, ordered by step.
        eval_sets: the sets, in the order rows are listed.

    Returns:
        [{"variant", "seed", "eval_set", "metric", "value", "tokens_trained"}], runs in the given order.
    """
    rows = []
    for run in runs:
        final = run["points"][-1]["values"] if run["points"] else {}
        for eval_set in eval_sets:
            if eval_set.name in final:
                rows.append(
                    {
                        "variant": run["variant"],
                        "seed": run["seed"],
                        "eval_set": eval_set.name,
                        "metric": eval_set.metric,
                        "value": final[eval_set.name],
                        "tokens_trained": run["tokens_trained"],
                    }
                )
    return rows


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min, max and spread across seeds per variant and evaluation set.

    Args:
        results: rows of `results_rows`.

    Returns:
        [{"variant", "eval_set", "metric", "mean", "min", "max", "spread", "seeds"}] in first-seen order.
    """
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in results:
        groups[(row["variant"], row["eval_set"], row["metric"])].append(row["value"])
    return [
        {
            "variant": variant,
            "eval_set": eval_set,
            "metric": metric,
            "mean": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "spread": max(values) - min(values),
            "seeds": len(values),
        }
        for (variant, eval_set, metric), values in groups.items()
    ]


def verdicts(summary: list[dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """Per evaluation set: the best variant, its lead over the runner-up, the spread, and whether the lead counts.

    Args:
        summary: rows of `summary_rows`.
        seeds: seeds per variant.

    Returns:
        [{"eval_set", "metric", "best", "runner_up", "lead", "spread", "decisive", "text"}]; `decisive` is True
        only when the lead exceeds the spread (see the module docstring); `text` says it in words.
    """
    by_set: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        by_set[(row["eval_set"], row["metric"])].append(row)
    out = []
    for (eval_set, metric), rows in by_set.items():
        ranked = sorted(rows, key=lambda r: r["mean"] if LOWER_IS_BETTER[metric] else -r["mean"])
        if len(ranked) < 2:
            continue
        best, second = ranked[0], ranked[1]
        lead = abs(best["mean"] - second["mean"])
        spread = max(best["spread"], second["spread"])
        decisive = seeds >= 2 and lead > spread
        direction = "lower" if LOWER_IS_BETTER[metric] else "higher"
        if seeds < 2:
            text = (
                f"{eval_set}: {best['variant']} scores best ({metric} {best['mean']:.4f}); one seed gives no "
                "estimate of the noise"
            )
        elif decisive:
            text = (
                f"{eval_set}: {best['variant']} is better ({metric} {best['mean']:.4f} vs {second['variant']} "
                f"{second['mean']:.4f}, {direction} is better): its lead {lead:.4f} exceeds the spread across "
                f"seeds {spread:.4f}"
            )
        else:
            text = (
                f"{eval_set}: within noise ({best['variant']} {best['mean']:.4f} vs {second['variant']} "
                f"{second['mean']:.4f}): the lead {lead:.4f} does not exceed the spread across seeds {spread:.4f}"
            )
        out.append(
            {
                "eval_set": eval_set,
                "metric": metric,
                "best": best["variant"],
                "runner_up": second["variant"],
                "lead": lead,
                "spread": spread,
                "decisive": decisive,
                "text": text,
            }
        )
    return out
