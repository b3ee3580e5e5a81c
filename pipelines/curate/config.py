"""The curate configuration: one pydantic model composing every stage's settings, FineWeb defaults throughout.

`CurateConfig` = read + extract (`pipelines.curate.extract.ExtractConfig`) + filters
(`pipelines.curate.filters.FilterConfig`) + quality (`pipelines.quality.config.QualityConfig`, off by default) +
decontaminate (`pipelines.curate.decontam.DecontamConfig`, off by default) + dedup
(`pipelines.curate.dedup.DedupConfig`) + `dedup_against` (earlier runs, `pipelines.curate.prior_dedup`) + pii
(`pipelines.curate.pii.PiiConfig`) + rejects + run (executor settings) + `expected_drop`. Every model forbids
unknown keys, so a typo in a YAML file is an error naming the key, not a silently ignored threshold.
`configs/fineweb.yaml` writes the defaults out; `fineforge config show` prints the effective config.

`config_hash` covers everything that can change the output and nothing that cannot: the `run` section (where
and how wide the work runs) and `expected_drop` (a guard, not a setting) are left out, so moving a run from
local processes to Ray, or allowing a stage's drop rate after the guard fired, keeps the hash and the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.common.files import read_yaml_mapping
from pipelines.common.hashing import stable_hash
from pipelines.curate.decontam import DecontamConfig
from pipelines.curate.dedup import DedupConfig
from pipelines.curate.executors import RaySettings, SlurmSettings
from pipelines.curate.extract import ExtractConfig
from pipelines.curate.filters import FilterConfig
from pipelines.curate.pii import PiiConfig
from pipelines.curate.stages import STAGES
from pipelines.quality.config import QualityConfig


class ReadConfig(BaseModel):
    """How records become documents."""

    model_config = ConfigDict(extra="forbid")

    text_key: str = "text"  # JSONL/Parquet field holding the text
    id_key: str = "id"  # JSONL/Parquet field holding the id (made from file and line if absent)
    # A larger record (WARC record, JSONL line, Parquet text, HTML file) is quarantined unread. Common Crawl truncates
    # payloads at 1 MiB (5 MiB planned from 2025; commoncrawl/cc-notebooks), so 16 MiB keeps every real page whole.
    max_record_mb: float = Field(16, gt=0, le=2048)


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
    quality: QualityConfig = QualityConfig()
    decontaminate: DecontamConfig = DecontamConfig()
    dedup: DedupConfig = DedupConfig()
    pii: PiiConfig = PiiConfig()
    rejects: RejectsConfig = RejectsConfig()
    run: RunConfig = RunConfig()
    # Stages allowed to drop >= 99% of >= 100 documents (otherwise the run fails, naming the stage).
    expected_drop: list[str] = []
    # Earlier curate outputs whose kept documents this run drops again (`--dedup-against`, issue 24;
    # pipelines.curate.prior_dedup). Empty: dedup within this run only, FineWeb's per-crawl choice.
    dedup_against: list[str] = []

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
    data = read_yaml_mapping(path)
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
    return with_overrides(cfg, {"run": {"ray": {"address": address.strip()}}})


def with_overrides(cfg: CurateConfig, overrides: dict[str, Any]) -> CurateConfig:
    """A copy of `cfg` with nested settings replaced (e.g. from a Prefect form), validated like a YAML file.

    Args:
        cfg: the base config.
        overrides: a nested dict of the keys to change, e.g. `{"extract": {"engine": "resiliparse"}}`.

    Returns:
        The new config.

    Raises:
        ValueError: an unknown key or an invalid value, naming it.
    """

    def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for key, value in changes.items():
            is_section = isinstance(value, dict) and isinstance(base.get(key), dict)
            merged[key] = merge(base[key], value) if is_section else value
        return merged

    try:
        return CurateConfig.model_validate(merge(cfg.model_dump(mode="json"), overrides))
    except ValueError as err:
        raise ValueError(f"invalid curate settings {overrides}:\n{err}") from err


def config_hash(cfg: CurateConfig) -> str:
    """A short stable hash of everything in the config that can change the output (not `run`, `expected_drop`).

    Args:
        cfg: the config.

    Returns:
        16 hex characters of the SHA-256 of the canonical JSON.
    """
    exclude = {"run", "expected_drop"} | (set() if cfg.dedup_against else {"dedup_against"})  # older hashes stay
    return stable_hash(cfg.model_dump(mode="json", exclude=exclude))


def config_yaml(cfg: CurateConfig) -> str:
    """The config as YAML, in field order (what `fineforge config show` prints).

    Args:
        cfg: the config.

    Returns:
        YAML text that load_config reads back to an equal config.
    """
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
