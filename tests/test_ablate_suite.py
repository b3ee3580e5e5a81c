"""`fineforge ablate --eval-suite`: every checkpoint scored on the suite's tasks, per-task and aggregate verdicts,
and the planner's numbers (signal-to-noise, monotonicity, seeds or tokens needed) checked against hand-made runs."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import write_demo_crawl
from pipelines.ablate.evalsets import LOWER_IS_BETTER, prepare_eval_set
from pipelines.ablate.plan import build_plan, spearman, task_plan
from pipelines.ablate.scales import SCALES
from pipelines.ablate.spec import AblationSpec, Variant
from tests.conftest import REPO_ROOT
from tests.test_eval_suite import RECORDS, write_task
from trainer.evals.suite import centered

FINEWEB = str(REPO_ROOT / "configs" / "fineweb.yaml")
NOFILTER = str(REPO_ROOT / "configs" / "nofilter.yaml")


def run(variant, seed, values, tokens=(100, 200, 300, 400), name="arc_easy"):
    return {
        "variant": variant,
        "seed": seed,
        "points": [{"tokens": t, "values": {name: v}} for t, v in zip(tokens, values, strict=True)],
    }


def test_spearman_matches_hand_computed_ranks():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x 1..4, y (2, 1, 4, 3): d^2 = 1+1+1+1 = 4, rho = 1 - 6*4/(4*15) = 0.6
    assert spearman([1, 2, 3, 4], [0.2, 0.1, 0.4, 0.3]) == pytest.approx(0.6)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 2, 3], [5, 5, 5]) is None


def test_planner_numbers_on_hand_made_runs():
    runs = [
        run("a", 0, [0.30, 0.34, 0.38, 0.42]),
        run("a", 1, [0.30, 0.33, 0.37, 0.40]),
        run("b", 0, [0.30, 0.32, 0.35, 0.39]),
        run("b", 1, [0.30, 0.31, 0.34, 0.37]),
    ]
    plan = task_plan("arc_easy", "acc_norm", False, runs, seeds=2)
    gap = (0.42 + 0.40) / 2 - (0.39 + 0.37) / 2  # 0.03
    sd = math.sqrt((0.02**2 / 2 + 0.02**2 / 2) / 2)  # sample variance of two values d apart is d^2 / 2
    assert (plan["best"], plan["runner_up"]) == ("a", "b")
    assert plan["gap"] == pytest.approx(gap) and plan["seed_sd"] == pytest.approx(sd)
    assert plan["snr"] == pytest.approx(gap / sd) and plan["monotonicity"] == pytest.approx(1.0)
    assert plan["seeds_needed"] == math.ceil(8 * sd**2 / gap**2) == 2  # 8 * 0.0002 / 0.0009 = 1.8
    assert plan["carries_signal"] and "resolved with 2 seeds" in plan["text"]


def test_planner_extrapolates_a_growing_gap_and_flags_a_flat_task():
    noisy = [
        run("a", 0, [0.30, 0.31, 0.33, 0.35]),
        run("a", 1, [0.28, 0.29, 0.295, 0.30]),
        run("b", 0, [0.29, 0.30, 0.305, 0.31]),
        run("b", 1, [0.28, 0.285, 0.287, 0.29]),
    ]
    plan = task_plan("arc_easy", "acc_norm", False, noisy, seeds=2)
    gap, sd = 0.325 - 0.30, math.sqrt((0.05**2 / 2 + 0.02**2 / 2) / 2)
    assert plan["seeds_needed"] == 10 == math.ceil(8 * sd**2 / gap**2)  # 9.28
    curves = [[p["values"]["arc_easy"] for p in r["points"]] for r in noisy]
    gaps = [(a0 + a1 - b0 - b1) / 2 for a0, a1, b0, b1 in zip(*curves, strict=True)]
    mean_gap = sum(gaps) / 4
    slope = sum((t - 250) * (g - mean_gap) for t, g in zip((100, 200, 300, 400), gaps, strict=True)) / 50000
    target = 2 * sd * math.sqrt(2 / 2)
    assert plan["tokens_needed"] == int(400 + (target - gaps[-1]) / slope) > 400
    assert f"about 10 seeds per variant, or about {plan['tokens_needed']:,} tokens per run" in plan["text"]
    flat = [run(v, s, [0.25, 0.27, 0.24, 0.26 + 0.01 * s]) for v in "ab" for s in (0, 1)]
    quiet = task_plan("arc_easy", "acc_norm", False, flat, seeds=2)
    assert not quiet["carries_signal"] and "do not decide on it here" in quiet["text"]
    text = build_plan(
        {"summary": [{"eval_set": "arc_easy", "metric": "acc_norm"}], "runs": flat, "seeds": [0, 1]}, LOWER_IS_BETTER
    )["recommendation"]
    assert "At noise level here (decide nothing on them): arc_easy." in text
    single = [run(v, s, [0.3 + 0.01 * s], tokens=(400,)) for v in "ab" for s in (0, 1)]
    assert "no trend to judge" in task_plan("arc_easy", "acc_norm", False, single, seeds=2)["text"]


def test_sets_scored_before_the_suite_are_prepared_and_scored_again(tmp_path):
    path = write_task(tmp_path, "hellaswag", RECORDS["hellaswag"])
    prepared = prepare_eval_set(str(path), "hs", tmp_path / "cache")
    assert (prepared.task, prepared.random, prepared.score_key) == ("hellaswag", 0.25, f"{prepared.sha256}:hellaswag")
    old = {k: v for k, v in asdict(prepared).items() if k not in ("task", "random")}  # set.json of an older FineForge
    (tmp_path / "cache" / "set.json").write_text(json.dumps(old))
    (tmp_path / "cache" / "items.json").write_text("[[[1], [[2], [3], [4], [5]], 0]]")  # (context, endings, label)
    assert prepare_eval_set(str(path), "hs", tmp_path / "cache") == prepared
    items = json.loads((tmp_path / "cache" / "items.json").read_text())
    assert [len(pairs) for pairs, _, _ in items] == [4, 4]


def test_proxy_scales_fill_the_recipe_and_cite_their_cost():
    base = dict(inputs=["in"], variants=[Variant(name="a", config=FINEWEB)], eval_data=["e.jsonl"], out="o")
    spec = AblationSpec(**base, scale="d24-350m")
    assert (spec.model, spec.tokens, spec.sequence_length, spec.step_tokens) == ("d24", 7_000_000_000, 1024, 524_288)
    assert spec.train_settings()["lr"] == 3e-4
    assert AblationSpec(**base, scale="d12-124m", tokens=10**9).tokens == 10**9  # explicit values win
    # llm.c's scripts: 124M 18,865 steps x 300 ms on 8 A100s; 350M 60,000 steps x 820 ms on 8 A100s
    per_token_124m = 18_865 * 0.300 * 8 / 3600 / (18_865 * 524_288)
    per_token_350m = 60_000 * 0.820 * 8 / 3600 / (60_000 * 524_288)
    assert SCALES["d12-124m"].a100_hours == pytest.approx(per_token_124m * 2.5e9)  # about 3.2
    assert SCALES["d24-350m"].a100_hours == pytest.approx(per_token_350m * 7e9)  # about 24


def test_ablate_argument_errors_are_one_line(tmp_path):
    base = ["ablate", "--input", str(tmp_path), "--variant", f"a={FINEWEB}", "--out", str(tmp_path / "o")]
    for extra, message in (
        ([], "give at least one --eval-data set or --eval-suite"),
        (["--eval-suite", "piqa,boolq"], "unknown task boolq"),
        (["--eval-suite", "piqa", "--scale", "huge"], "unknown scale 'huge'; choose one of d12-124m: 124M"),
    ):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ablation_with_the_suite_gives_per_task_verdicts_and_a_plan(tmp_path):
    write_demo_crawl(tmp_path / "crawl")
    suite_dir = tmp_path / "suite"
    for task, records in RECORDS.items():
        write_task(suite_dir, task, records)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["ablate", "--input", str(tmp_path / "crawl" / "docs.jsonl"), "--variant", f"fineweb={FINEWEB}",
         "--variant", f"nofilter={NOFILTER}", "--eval-suite", "early-signal", "--eval-suite-dir", str(suite_dir),
         "--out", str(out), "--tokens", "2048", "--seeds", "0,1", "--training-concurrency", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "ablation.json").read_text())
    names = [*RECORDS, "centered"]
    assert [s["name"] for s in record["eval_sets"]] == names
    assert [v["eval_set"] for v in record["verdicts"]] == names
    assert all(("within noise" in v["text"]) != v["decisive"] for v in record["verdicts"])
    assert {(r["eval_set"], r["metric"]) for r in record["summary"]} == {
        *((t, "acc_norm") for t in RECORDS),
        ("centered", "centered"),
    }
    for run_record in record["runs"]:
        for point in run_record["points"]:  # every checkpoint scored on every task, the aggregate from them
            values = point["values"]
            assert set(values) == set(names)
            assert values["centered"] == pytest.approx(sum(centered(values[t], _random(t)) for t in RECORDS) / 9)
    plan = record["plan"]
    assert [t["eval_set"] for t in plan["tasks"]] == names and plan["recommendation"]
    assert f"plan: {plan['recommendation']}" in result.output
    html = (out / "report.html").read_text()
    assert 'id="plan-section"' in html and 'class="plan-recommendation"' in html


def _random(task):
    choices = {"hellaswag": 4, "piqa": 2, "siqa": 3, "winogrande": 2, "mmlu": 4, "openbookqa": 4, "commonsense_qa": 5}
    if task in choices:
        return 1 / choices[task]
    return sum(1 / len(r["choices"]["text"]) for r in RECORDS[task]) / len(RECORDS[task])
