"""mix: tokenized shard sets, weighted, into one shard set of whole documents (`fineforge mix`).

Modules: `sources` (the `--source` flag, each source checked and indexed by document), `plan` (shares, whole
documents picked per source, the seeded order) and `job` (`MixStage`: order, shards, val copies, manifest).
"""

from pipelines.mix.job import MixStage, run_mix
from pipelines.mix.sources import MixError, SourceSpec, parse_source

__all__ = ["MixError", "MixStage", "SourceSpec", "parse_source", "run_mix"]
