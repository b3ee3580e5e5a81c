"""Where each stage of one dataset lives: `DatasetLayout`, the one map of curated, shards and training runs.

Three layouts exist on disk, and each is a constructor here (folder names never change):

- `DatasetLayout.demo(DIR)`: `fineforge demo`, `DIR/{curated,shards,run}`;
- `DatasetLayout.home(DATASET)`: the UI and flows, `FINEFORGE_HOME/datasets/<dataset>/{curated,shards}` and the
  run `FINEFORGE_HOME/runs/<dataset>`;
- `DatasetLayout.variant(DIR/<variant>)`: one ablation variant, `{curated,shards,runs/seed-<s>}`.

The report finds a shard folder's training runs through `run_candidates` (every layout the shards can sit in),
after the siblings of the shards (folders laid out by hand); a run counts only when its run.json names the shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.common.home import fineforge_home

CURATED = "curated"
SHARDS = "shards"


def dataset_name(folder: Path, stage_folder: str) -> str:
    """The dataset a stage folder belongs to: its parent's name when the folder has its layout name
    (`datasets/<dataset>/<stage_folder>`), else the folder's own name.

    Args:
        folder: a curated or shard folder.
        stage_folder: the layout's name of that folder (`CURATED` or `SHARDS`).
    """
    return folder.parent.name if folder.name == stage_folder else folder.name


@dataclass(frozen=True)
class DatasetLayout:
    """The folders of one dataset's chain curate -> tokenize -> train.

    Attributes:
        root: the folder holding `curated/` and `shards/`.
        runs: the training run, or with `seeded` the folder of its `seed-<s>` runs.
        seeded: one run per seed (an ablation variant).
    """

    root: Path
    runs: Path
    seeded: bool = False

    @classmethod
    def demo(cls, folder: Path) -> DatasetLayout:
        """`fineforge demo`'s layout: `folder/{curated,shards,run}`."""
        return cls(folder, folder / "run")

    @classmethod
    def home(cls, dataset: str) -> DatasetLayout:
        """The UI's layout: `FINEFORGE_HOME/datasets/<dataset>/{curated,shards}`, run `FINEFORGE_HOME/runs/<dataset>`.

        Args:
            dataset: the dataset name.
        """
        return cls(fineforge_home() / "datasets" / dataset, fineforge_home() / "runs" / dataset)

    @classmethod
    def variant(cls, folder: Path) -> DatasetLayout:
        """An ablation variant's layout: `folder/{curated,shards}`, runs `folder/runs/seed-<s>`."""
        return cls(folder, folder / "runs", seeded=True)

    @property
    def curated(self) -> Path:
        """The curate output folder."""
        return self.root / CURATED

    @property
    def shards(self) -> Path:
        """The token shard folder."""
        return self.root / SHARDS

    def run(self, seed: int | None = None) -> Path:
        """The training run folder (of `seed` in a seeded layout).

        Raises:
            ValueError: a seeded layout without a seed.
        """
        if not self.seeded:
            return self.runs
        if seed is None:
            raise ValueError(f"{self.runs}: one run per seed; name the seed")
        return self.runs / f"seed-{seed}"

    def existing_runs(self) -> list[Path]:
        """The run folders of this layout that exist, seeds in name order."""
        found = sorted(self.runs.glob("seed-*")) if self.seeded else [self.runs]
        return [run for run in found if run.is_dir()]


def run_candidates(shards: Path) -> list[Path]:
    """The training runs that a layout places for a shard folder: an ablation variant's seed runs beside it and
    the UI's `FINEFORGE_HOME/runs/<dataset>` (the demo's run is a sibling, found as one).

    Args:
        shards: a shard folder.
    """
    shards = Path(shards)
    layouts = [DatasetLayout.home(dataset_name(shards, SHARDS) or "default")]
    if shards.name == SHARDS:
        layouts.insert(0, DatasetLayout.variant(shards.parent))
    return [run for layout in layouts for run in layout.existing_runs()]
