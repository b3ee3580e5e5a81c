"""Default folders of the UI path, through `pipelines.common.layout.DatasetLayout.home`.

`FINEFORGE_HOME/datasets/<dataset>/{curated,shards}` and `FINEFORGE_HOME/runs/<dataset>`; every flow also takes
explicit folders, and the dataset of a folder is read back from this layout (the report of a curated folder
finds its shards and training run through `report_inputs`).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.common.layout import SHARDS, DatasetLayout, dataset_name

__all__ = ["dataset_name", "report_inputs", "train_run_dir"]


def train_run_dir(manifest: str, run_dir: str | None = None) -> Path:
    """Return the run directory of a training run: `run_dir`, else `FINEFORGE_HOME/runs/<dataset>`.

    Args:
        manifest: manifest.json or its folder; the dataset is the shard folder's name, or its parent's when
            the folder is called `shards` (the default layout `datasets/<dataset>/shards`).
        run_dir: an explicit run directory.

    Returns:
        The absolute run directory.
    """
    if run_dir:
        return Path(run_dir).expanduser().resolve()
    shards = Path(manifest).expanduser().resolve()
    if shards.suffix == ".json":
        shards = shards.parent
    return DatasetLayout.home(dataset_name(shards, SHARDS) or "default").run()


def report_inputs(curated: Path) -> tuple[Path | None, Path | None]:
    """The shard folder and training run a report of `curated` includes: the shards beside it, and the run that
    `pipelines.report.downstream.find_training` finds for them (beside the shards, or where a `DatasetLayout`
    puts it), each only when its contract names what it was made from.

    Args:
        curated: a curate output folder.

    Returns:
        (shard folder or None, training run folder or None).
    """
    from pipelines.report.downstream import find_shards, find_training

    shards = find_shards(Path(curated))
    if shards is None:
        return None, None
    return shards, find_training(shards)
