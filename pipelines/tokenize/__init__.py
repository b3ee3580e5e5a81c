"""tokenize: curated text to GPT-2 token shards in llm.c's format, plus a checksummed manifest.

Modules: `settings` (`TokenizeSettings`, declared once), `inputs` (which files, read in which order, with which
provenance) and `job` (`TokenizeStage`: encode, order, cut into shards, write the manifest). The byte layout
of a shard belongs to `pipelines.shards`.
"""

from pipelines.tokenize.inputs import InputError, resolve_inputs
from pipelines.tokenize.job import TokenizeStage, run_tokenize
from pipelines.tokenize.settings import TokenizeError, TokenizeSettings

__all__ = ["InputError", "TokenizeError", "TokenizeSettings", "TokenizeStage", "resolve_inputs", "run_tokenize"]
