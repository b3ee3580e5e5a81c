"""Default folders of the UI path: datasets and runs under the FineForge home.

`FINEFORGE_HOME/datasets/<dataset>/{curated,shards}` and `FINEFORGE_HOME/runs/<dataset>`; every flow also takes
explicit folders, and the dataset of a folder is read back from this layout (the report of a curated folder
finds its shards and training run through `report_inputs`).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.common.home import fineforge_home


def dataset_dir(dataset: str) -> Path:
    """Return `FINEFORGE_HOME/datasets/<dataset>`, where a dataset's curated folder and shards live by default."""
    return fineforge_home() / "datasets" / dataset


def dataset_name(folder: Path, layout_name: str) -> str:
    """The dataset a stage folder belongs to: its parent's name in the default layout
    `datasets/<dataset>/<layout_name>`, else the folder's own name."""
    return folder.parent.name if folder.name == layout_name else folder.name


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
    name = dataset_name(shards, "shards")
    return fineforge_home() / "runs" / (name or "default")


def report_inputs(curated: Path) -> tuple[Path | None, Path | None]:
    """The shard folder and training run a report of `curated` includes: the shards beside it, the run beside
    the shards (`fineforge demo`'s layout) or at `FINEFORGE_HOME/runs/<dataset>` (this layout), each only when
    its contract names what it was made from.

    Args:
        curated: a curate output folder.

    Returns:
        (shard folder or None, training run folder or None).
    """
    from pipelines.report.downstream import find_shards, find_training

    shards = find_shards(Path(curated))
    if shards is None:
        return None, None
    return shards, find_training(shards, [train_run_dir(str(shards))])
