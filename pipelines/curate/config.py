"""The curate configuration: one pydantic model composing every stage's settings, FineWeb defaults throughout.

`CurateConfig` = read + extract + filters (`pipelines.curate.filters.FilterConfig`) + dedup
(`pipelines.curate.dedup.DedupConfig`) + rejects + run (executor settings) + `expected_drop`. Every model forbids
unknown keys, so a typo in a YAML file is an error naming the key, not a silently ignored threshold.
`configs/fineweb.yaml` writes the defaults out; `fineforge config show` prints the effective config.

`config_hash` covers everything that can change the output and nothing that cannot: the `run` section (where
and how wide the work runs) and `expected_drop` (a guard, not a setting) are left out, so moving a run from
local processes to Ray, or allowing a stage's drop rate after the guard fired, keeps the hash and the run.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.common.hashing import stable_hash
from pipelines.curate.dedup import DedupConfig
from pipelines.curate.executors import RaySettings, SlurmSettings
from pipelines.curate.filters import FilterConfig
from pipelines.curate.stages import STAGES


class ReadConfig(BaseModel):
    """How records become documents."""

    model_config = ConfigDict(extra="forbid")

    text_key: str = "text"  # JSONL/Parquet field holding the text
    id_key: str = "id"  # JSONL/Parquet field holding the id (made from file and line if absent)


class ExtractConfig(BaseModel):
    """Trafilatura extraction of HTML documents (text documents pass through)."""

    model_config = ConfigDict(extra="forbid")

    favour_precision: bool = True  # FineWeb's setting (datatrove examples/fineweb.py)
    deduplicate: bool = True  # trafilatura's in-page dedup, datatrove's default
    timeout_s: float = Field(10.0, gt=0)  # per page; datatrove's 1 s is load-dependent on small machines


class RejectsConfig(BaseModel):
    """Dropped documents kept for inspection in rejects/<stage>/ (exact counts are always in summary.json)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    sample_per_reason: int | None = Field(1000, ge=0)  # per task and reason; null keeps every dropped document


class RunConfig(BaseModel):
    """Where the work runs; not part of config_hash (it never changes the output)."""

    model_config = ConfigDict(extra="forbid")

    # Tasks per stage: one per `task_mb` of input, at least `--workers`, at most `max_tasks` and the number of
    # input files. Each task pays fixed start-up costs (about 10 s to load the URL block lists here), so small
    # inputs get few tasks. The task count is part of the run id (it decides the output file layout).
    task_mb: float = Field(256, gt=0)
    max_tasks: int = Field(256, ge=1)
    slurm: SlurmSettings = SlurmSettings()
    ray: RaySettings = RaySettings()


class CurateConfig(BaseModel):
    """Everything `fineforge curate` needs besides inputs and output."""

    model_config = ConfigDict(extra="forbid")

    read: ReadConfig = ReadConfig()
    extract: ExtractConfig = ExtractConfig()
    filters: FilterConfig = FilterConfig()
    dedup: DedupConfig = DedupConfig()
    rejects: RejectsConfig = RejectsConfig()
    run: RunConfig = RunConfig()
    # Stages allowed to drop >= 99% of >= 100 documents (otherwise the run fails, naming the stage).
    expected_drop: list[str] = []

    @field_validator("expected_drop")
    @classmethod
    def _known_stages(cls, names: list[str]) -> list[str]:
        """Reject unknown stage names in expected_drop."""
        if unknown := sorted(set(names) - set(STAGES)):
            raise ValueError(f"expected_drop names unknown stages {unknown}; stages are {list(STAGES)}")
        return names


def load_config(path: Path | None) -> CurateConfig:
    """Load a YAML config over the FineWeb defaults (None or an empty file gives the defaults).

    Args:
        path: YAML file; any subset of CurateConfig's fields.

    Returns:
        The validated config.

    Raises:
        ValueError: the file is not a YAML mapping or a value is invalid (the message names the file and key).
    """
    if path is None:
        return CurateConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    try:
        return CurateConfig.model_validate(data)
    except ValueError as err:
        raise ValueError(f"invalid curate config {path}:\n{err}") from err


def with_ray_address(cfg: CurateConfig, address: str | None) -> CurateConfig:
    """The config with `run.ray.address` set (None keeps the configured address); the config hash is unchanged.

    Args:
        cfg: the config.
        address: a Ray cluster address such as `10.0.0.5:6379` or `ray://head:10001`.

    Returns:
        A copy of the config.
    """
    if address is None:
        return cfg
    if not address.strip():
        raise ValueError("the Ray address is empty; give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379)")
    ray = cfg.run.ray.model_copy(update={"address": address.strip()})
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"ray": ray})})


def config_hash(cfg: CurateConfig) -> str:
    """A short stable hash of everything in the config that can change the output (not `run`, `expected_drop`).

    Args:
        cfg: the config.

    Returns:
        16 hex characters of the SHA-256 of the canonical JSON.
    """
    return stable_hash(cfg.model_dump(mode="json", exclude={"run", "expected_drop"}))


def config_yaml(cfg: CurateConfig) -> str:
    """The config as YAML, in field order (what `fineforge config show` prints).

    Args:
        cfg: the config.

    Returns:
        YAML text that load_config reads back to an equal config.
    """
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
