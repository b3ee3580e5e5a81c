"""curate: raw crawl to filtered, deduplicated Parquet with every dropped document counted under its reason.

Modules, in the order documents meet them: `read` (records -> documents, quarantine), `extract` (trafilatura or
resiliparse, with a language pre-check), `filters` (URL, language, Gopher, C4, FineWeb; word splitting in
`words`/`words_rules`; the language-ID model in `lid`), the optional
`quality` stage (in `pipelines.quality`, its datatrove steps in `pipelines.quality.steps`), `decontam` (eval-set
n-grams; the index in `decontam_index`), `prior_dedup` (against earlier runs, by their `dedup_index`), `dedup` (exact
and MinHash; the duplicate clusters exported by `clusters`), `pii` (emails and public IPs); `stages` is the
ordered stage list, `config` the settings, `stats` the accounting read back from datatrove, `executors` where tasks
run, `work` the step keys and folders that let a run reuse an earlier run's finished steps, `summary` the contract
`summary.json` (its fields, reader, writer and invariants), and `job` the `CurateStage` that ties them together;
`score` is `fineforge quality score` (a curate run that only scores).

Importing the package first runs `startup`, which cuts two start-up costs of datatrove's dependencies (its
distribution checks, loguru's library folders) before any module-level datatrove code runs.
"""

# `startup` must run before the modules below import datatrove steps.
from pipelines.curate import startup  # noqa: F401

# isort: split
from pipelines.curate.config import CurateConfig, config_hash, config_yaml, load_config, with_overrides
from pipelines.curate.job import CurateStage, DropGuardError, run_curate
from pipelines.curate.stages import STAGES
from pipelines.curate.summary import InvariantError

__all__ = [
    "STAGES",
    "CurateConfig",
    "CurateStage",
    "DropGuardError",
    "InvariantError",
    "config_hash",
    "config_yaml",
    "load_config",
    "run_curate",
    "with_overrides",
]
