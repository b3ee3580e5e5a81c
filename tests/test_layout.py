"""One layout object names where each stage of a dataset lives; the demo, the flows, the ablation and the report
all take their folders from it, so the report of each finds its shards and training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows import CurateParams, TokenizeParams
from orchestration.layout import report_inputs, train_run_dir
from pipelines.ablate.job import Ablation
from pipelines.common.layout import DatasetLayout
from tests.test_ablate import spec


def made_chain(layout: DatasetLayout, seed: int | None = None) -> None:
    """Write the lineage the report follows: shards whose manifest names the curated folder, a run whose run.json
    names the manifest (the fields tokenize and train write; the rest of their files is not read here)."""
    layout.curated.mkdir(parents=True)
    layout.shards.mkdir(parents=True)
    (layout.shards / "manifest.json").write_text(json.dumps({"source": {"path": str(layout.curated)}}))
    run = layout.run(seed)
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"manifest": {"path": str(layout.shards / "manifest.json")}}))
    (run / "metrics.jsonl").write_text("")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A FINEFORGE_HOME of this test's own."""
    monkeypatch.setenv("FINEFORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_three_layouts_keep_their_folder_names(tmp_path, home):
    demo = DatasetLayout.demo(tmp_path / "demo")
    assert (demo.curated, demo.shards, demo.run()) == tuple(
        tmp_path / "demo" / n for n in ("curated", "shards", "run")
    )
    ui = DatasetLayout.home("web")
    assert (ui.curated, ui.shards, ui.run()) == (
        home / "datasets" / "web" / "curated",
        home / "datasets" / "web" / "shards",
        home / "runs" / "web",
    )
    variant = DatasetLayout.variant(tmp_path / "abl" / "fineweb")
    assert variant.run(3) == tmp_path / "abl" / "fineweb" / "runs" / "seed-3"
    with pytest.raises(ValueError, match="name the seed"):
        variant.run()


def test_flows_and_ablation_take_their_folders_from_the_layout(tmp_path, home):
    assert CurateParams(dataset="web", inputs=["x"]).output_dir() == DatasetLayout.home("web").curated
    assert TokenizeParams(dataset="web", inputs=["x"]).output_dir() == DatasetLayout.home("web").shards
    assert train_run_dir(str(DatasetLayout.home("web").shards / "manifest.json")) == DatasetLayout.home("web").run()
    ablation = Ablation(spec(tmp_path))
    ablation.plan()
    folders = ablation.layout("fineweb")
    assert folders == DatasetLayout.variant(tmp_path / "out" / "fineweb")
    assert ablation.run_dir("fineweb", 1) == folders.run(1)
    assert ablation.curate_stage("fineweb").output_dir == folders.curated
    assert ablation.tokenize_stage("fineweb").output_dir == folders.shards


@pytest.mark.parametrize("kind", ["demo", "home", "variant"])
def test_the_report_finds_each_layouts_shards_and_run(tmp_path, home, kind):
    layout = {
        "demo": DatasetLayout.demo(tmp_path / "demo"),
        "home": DatasetLayout.home("web"),
        "variant": DatasetLayout.variant(tmp_path / "abl" / "fineweb"),
    }[kind]
    seed = 0 if kind == "variant" else None
    made_chain(layout, seed)
    assert report_inputs(layout.curated) == (layout.shards, layout.run(seed))


def test_a_hand_laid_sibling_is_still_found(tmp_path, home):
    """Folders laid out by hand: shards and run are siblings of the curated folder under any names."""
    curated, shards, run = tmp_path / "cur", tmp_path / "toks", tmp_path / "training"
    made_chain(DatasetLayout(tmp_path, tmp_path / "unused"), None)  # a layout-shaped chain beside, not ours
    curated.mkdir()
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"source": {"path": str(curated)}}))
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"manifest": {"path": str(shards / "manifest.json")}}))
    (run / "metrics.jsonl").write_text("")
    assert report_inputs(curated) == (shards, run)
