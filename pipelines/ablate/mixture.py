"""A mixture variant of an ablation: a YAML naming curate configs or shard sets, each with a weight.

`fineforge ablate --variant NAME=MIXTURE.yaml` compares a mixture with plain recipes at equal tokens. The file has
one top-level key, `mix`:

    mix:
      sources:
        - {name: web, config: configs/fineweb.yaml, weight: 0.7}   # curated from the ablation's --input
        - {name: edu, shards: /data/edu/shards, weight: 0.3}        # a shard set `fineforge tokenize` wrote
      seed: 0           # optional: seed of the picks and their order
      max_epochs: 4     # optional: most passes over any source

A `config` source is curated and tokenized inside the variant's folder (DIR/<variant>/sources/<name>/), as any
variant is; then `pipelines.mix` mixes every source into DIR/<variant>/shards with exactly the ablation's
training tokens, so each source gives its weight's share of what every run trains on. Relative paths are
relative to the mixture file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.common.files import read_yaml_mapping
from pipelines.common.hashing import file_sha256, stable_hash
from pipelines.curate import config_hash, load_config
from pipelines.mix.sources import NAME, SourceSpec
from pipelines.shards import ShardError, load_manifest, manifest_path

MIX_KEY = "mix"


class MixtureSource(BaseModel):
    """One source of a mixture variant: a curate config or a shard set, and its weight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Source name: letters, digits, '.', '_', '-'.")
    config: str | None = Field(None, description="Curate config YAML, curated from the ablation's inputs.")
    shards: str | None = Field(None, description="A shard set written by `fineforge tokenize`.")
    weight: float = Field(gt=0, description="Share of the training tokens (weights are normalised).")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME.fullmatch(name):
            raise ValueError(f"source name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        return name

    @model_validator(mode="after")
    def _one_kind(self) -> MixtureSource:
        if (self.config is None) == (self.shards is None):
            raise ValueError(f"source {self.name!r}: give exactly one of config (a curate YAML) or shards")
        return self


class Mixture(BaseModel):
    """The `mix` section of a mixture variant's YAML."""

    model_config = ConfigDict(extra="forbid")

    sources: list[MixtureSource] = Field(min_length=1, description="The sources and their weights.")
    seed: int = Field(0, ge=0, description="Seed of the documents picked and their order.")
    max_epochs: int = Field(4, ge=1, description="Most passes over any source's train tokens.")

    @model_validator(mode="after")
    def _unique(self) -> Mixture:
        names = [s.name for s in self.sources]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"source names must be unique; repeated: {', '.join(repeated)}")
        return self


def read_mixture(path: Path) -> Mixture | None:
    """The mixture a variant's YAML describes, or None for a plain curate config (no top-level `mix` key).

    Paths inside are made absolute against the file's folder.

    Raises:
        ValueError: an unreadable file or an invalid `mix` section, naming the file.
    """
    data = read_yaml_mapping(path)
    if MIX_KEY not in data:
        return None
    if len(data) > 1:
        raise ValueError(f"{path}: a mixture file holds only the key {MIX_KEY!r}, not {sorted(set(data) - {MIX_KEY})}")
    try:
        mixture = Mixture.model_validate(data[MIX_KEY])
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in (MIX_KEY, *first["loc"]))
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    base = path.parent
    for source in mixture.sources:
        for field in ("config", "shards"):
            if (value := getattr(source, field)) is not None:
                setattr(source, field, str((base / Path(value).expanduser()).resolve()))
    return mixture


def mixture_identity(mixture: Mixture) -> tuple[str, dict[str, Any]]:
    """Check every source (a readable curate config, a complete shard set) and return the mixture's config hash
    (over the weights, settings, each config's hash and each shard set's manifest sha256) and the configs loaded.

    Raises:
        ValueError: a config that does not load or a folder that is not a shard set, naming the source.
    """
    configs, parts = {}, []
    for source in mixture.sources:
        if source.config is not None:
            try:
                configs[source.name] = load_config(Path(source.config))
            except ValueError as e:
                raise ValueError(f"source {source.name!r}: {e}") from None
            parts.append({"name": source.name, "weight": source.weight, "config": config_hash(configs[source.name])})
        else:
            try:
                load_manifest(source.shards)
            except ShardError as e:
                raise ValueError(f"source {source.name!r}: {e}") from None
            sha = file_sha256(manifest_path(source.shards))
            parts.append({"name": source.name, "weight": source.weight, "shards": sha})
    identity = {"sources": parts, "seed": mixture.seed, "max_epochs": mixture.max_epochs}
    return stable_hash(identity), configs


def source_specs(mixture: Mixture, shards_of: dict[str, Path]) -> list[SourceSpec]:
    """The `pipelines.mix` sources of a mixture; `shards_of` gives the shard folder of each `config` source."""
    return [SourceSpec(s.name, s.shards or str(shards_of[s.name]), s.weight) for s in mixture.sources]
