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

Importing the package swaps datatrove's distribution check for a direct look-up (`_find_distribution`): datatrove
0.10.1 checks each step's pip dependencies by reading the metadata of every installed distribution, once per
distinct name, which cost 1.1 CPU-s per process here (233 distributions, 7 names; a 1-page curate run took 10), and
again in every pool worker, which imports this package before it unpickles a step.

It also remembers loguru's list of library folders (`ExceptionFormatter._get_lib_dirs`), which loguru 0.7 works out
from `sysconfig` again for every handler it adds: datatrove adds three per task, 15-17 ms each here, 1.1 s (cProfile)
of a 1,333-page curate run's 21 tasks (the folders cannot change while the process runs).
"""

import importlib.metadata
from functools import lru_cache

import datatrove.utils._import_utils
from loguru._better_exceptions import ExceptionFormatter

from pipelines.curate.config import CurateConfig, config_hash, config_yaml, load_config, with_overrides
from pipelines.curate.job import CurateStage, DropGuardError, run_curate
from pipelines.curate.stages import STAGES
from pipelines.curate.summary import InvariantError


@lru_cache
def _find_distribution(distribution_name: str) -> bool | None:
    """Whether a distribution of that name is installed (True or None, as datatrove's `_is_distribution_available`)."""
    try:
        importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return True


datatrove.utils._import_utils._is_distribution_available = _find_distribution

_library_folders = lru_cache(maxsize=1)(ExceptionFormatter._get_lib_dirs)
ExceptionFormatter._get_lib_dirs = staticmethod(lambda: list(_library_folders()))

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
