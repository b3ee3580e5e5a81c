"""Two start-up costs of datatrove's dependencies, cut for every process that imports `pipelines.curate`.

`pipelines.curate` imports this module before any of its own, so the swaps are in place before module-level code
such as `dedup.EXACT_HASH` (a datatrove `HashConfig`, which checks that xxhash is installed) runs.

- Distribution checks: datatrove 0.10.1 checks each step's pip dependencies by reading the metadata of every
  installed distribution, once per distinct name (0.22 CPU-s a name here, 234 distributions), and again in every
  pool worker, which imports this package before it unpickles a step. `find_distribution` looks the name up
  directly.
- loguru's library folders (`ExceptionFormatter._get_lib_dirs`): loguru 0.7 works them out from `sysconfig`
  again for every handler it adds; datatrove adds three per task, 15-17 ms each here, 1.1 s (cProfile) of a
  1,333-page curate run's 21 tasks. The folders cannot change while the process runs, so the first answer is kept.
"""

import importlib.metadata
from functools import lru_cache

import datatrove.utils._import_utils
from loguru._better_exceptions import ExceptionFormatter


@lru_cache
def find_distribution(distribution_name: str) -> bool | None:
    """Whether a distribution of that name is installed (True or None, as datatrove's `_is_distribution_available`)."""
    try:
        importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return True


datatrove.utils._import_utils._is_distribution_available = find_distribution

library_folders = lru_cache(maxsize=1)(ExceptionFormatter._get_lib_dirs)
ExceptionFormatter._get_lib_dirs = staticmethod(lambda: list(library_folders()))
