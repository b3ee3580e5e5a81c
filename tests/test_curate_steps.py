"""Curate's steps come from one table (`pipelines.curate.job.CURATE_STEPS`), and their keys did not change.

A step key names a work folder (`.work/<step>-<key>/`) and feeds the run_id, so a key that changes by accident
makes every published run look new and reuses nothing. The expected settings below are what each key hashed before
the steps became one table (issue 21), copied from the old `CurateStage._step_settings`; the keys are computed from
them with `pipelines.curate.work.plan_work`, the one key function. (Checked once by hand as well: the old code's
`CurateStage.plan()` gave the same five keys as this table on the same files, config, model and index.)
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.demo_data import demo_texts
from pipelines.common.hashing import file_sha256
from pipelines.curate import CurateConfig, CurateStage
from pipelines.curate.decontam_index import EvalSet, build_index
from pipelines.curate.job import CURATE_STEPS
from pipelines.curate.work import plan_work
from tests.quality_helpers import texts_jsonl, train_planted


def old_step_settings(cfg: dict, model: Path | None, index: Path | None) -> list[tuple[str, dict]]:
    """What each step key hashed before issue 21 (the old `CurateStage._step_settings`, with its inputs spelled)."""
    rejects = cfg["rejects"]
    steps = [("filter", {key: cfg[key] for key in ("read", "extract", "filters", "rejects", "pii")})]
    if model is not None:
        cut = {key: cfg["quality"][key] for key in ("threshold", "keep_fraction", "score_only")}
        steps += [("score", {"model_sha256": file_sha256(model)}), ("select", cut | {"rejects": rejects})]
    if index is not None:
        screen = {"action": cfg["decontaminate"]["action"], "index_sha256": file_sha256(index)}
        steps.append(("screen", screen | {"rejects": rejects}))
    steps.append(("dedup", {"dedup": cfg["dedup"], "pii": cfg["pii"], "rejects": rejects}))
    return steps


def planned(config: CurateConfig, crawl: Path, out: Path) -> CurateStage:
    """A curate stage over `crawl`, planned (keys computed; nothing written)."""
    stage = CurateStage(config, [str(crawl)], out)
    stage.plan()
    return stage


def expected_keys(stage: CurateStage, model: Path | None, index: Path | None) -> list[tuple[str, str]]:
    """(step, key) as the old settings give them for the stage's planned inputs."""
    inputs = {"files": [[f.url, f.size] for f in stage.files], "tasks": stage.tasks, "limit": stage.limit}
    settings = old_step_settings(stage.config.model_dump(mode="json"), model, index)
    return [(work.name, work.key) for work in plan_work(stage.output_dir / ".work", inputs, settings)]


def test_step_keys_unchanged_with_every_step_on(tmp_path: Path) -> None:
    """Quality and decontamination on: five steps, in table order, each key as before."""
    model = train_planted(tmp_path / "model")
    items = [{"ctx": text.split("\n\n")[0], "endings": ["a.", "b."], "label": 0} for text in demo_texts(5, seed=42)]
    (tmp_path / "hellaswag.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    index = tmp_path / "eval.idx"
    build_index([EvalSet("hellaswag", tmp_path / "hellaswag.jsonl")], index)
    crawl = texts_jsonl(tmp_path / "crawl" / "part.jsonl", demo_texts(8, seed=3)).parent
    config = CurateConfig.model_validate(
        {
            "quality": {"enabled": True, "model": str(model), "threshold": 0.4},
            "decontaminate": {"enabled": True, "index": str(index), "action": "flag"},
        }
    )
    stage = planned(config, crawl, tmp_path / "out")
    keys = [(work.name, work.key) for work in stage.work.values()]
    assert (
        [name for name, _ in keys]
        == [step.name for step in CURATE_STEPS]
        == [
            "filter",
            "score",
            "select",
            "screen",
            "dedup",
        ]
    )
    assert keys == expected_keys(stage, model, index)
    assert [name for name, _ in stage.steps()] == [name for name, _ in keys]


def test_step_keys_unchanged_with_the_defaults(tmp_path: Path) -> None:
    """The default config plans filter and dedup only, with the keys the old settings give."""
    crawl = texts_jsonl(tmp_path / "crawl" / "part.jsonl", demo_texts(8, seed=3)).parent
    stage = planned(CurateConfig(), crawl, tmp_path / "out")
    assert [(work.name, work.key) for work in stage.work.values()] == expected_keys(stage, None, None)
    assert list(stage.work) == ["filter", "dedup"]
