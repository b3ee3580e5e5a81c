"""At most one training run per run directory, across every worker and machine: a Prefect concurrency limit.

Two `fineforge.shards.ready` events for one dataset start two `train-on-shards` runs into the same run
directory, possibly on two train workers. The `train` flow therefore holds a slot of a global concurrency limit
of size 1 named after the run directory (`fineforge-run-<name>-<hash of the path>`) while it trains. The
second run logs that it waits, and starts when the first has finished: then it finds the run completed on the
same shards and skips, or is refused because the run directory belongs to other shards, never two trainers
writing one folder. With `wait_s` it gives up after that many seconds with `RunDirBusy`.

The slot is a lease that the holder renews; a flow process killed outright loses it within `LEASE_S`, so a
crash never locks a run directory for good. A failed renewal (a server restart) is logged and does not stop
the training: the trainer's checkpoints are worth more than the lock, and `trainer.stage` keeps a file lock in
the run directory as a second guard on one machine.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from pipelines.common.hashing import stable_hash

LEASE_S = 300.0  # Prefect's default lease; renewed in the background while the run holds the slot


class RunDirBusy(RuntimeError):
    """Another training run held the run directory for longer than this run would wait."""


def run_dir_limit_name(run_dir: Path) -> str:
    """The concurrency limit name of a run directory, e.g. `fineforge-run-e2e-1a2b3c4d`.

    Args:
        run_dir: the run directory (its absolute path is hashed, its name kept for reading).

    Returns:
        A name of lowercase letters, digits and dashes.
    """
    path = str(Path(run_dir).resolve())
    slug = re.sub(r"[^a-z0-9]+", "-", Path(path).name.lower()).strip("-")[:40] or "run"
    return f"fineforge-run-{slug}-{stable_hash(path)[:8]}"


@contextlib.contextmanager
def exclusive_run_dir(run_dir: Path, wait_s: float | None, logger: logging.LoggerAdapter) -> Iterator[None]:
    """Hold the run directory's slot for the block, waiting (and saying so) while another run holds it.

    Args:
        run_dir: the run directory.
        wait_s: most seconds to wait for the slot; None waits as long as it takes.
        logger: where the waiting line goes (the flow run's log).

    Raises:
        RunDirBusy: the slot stayed taken for `wait_s` seconds.
    """
    from prefect import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = run_dir_limit_name(run_dir)
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectAlreadyExists):  # another run created it a moment ago
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        limit = client.read_global_concurrency_limit_by_name(name)
    if limit.active_slots >= limit.limit:
        patience = "as long as it takes" if wait_s is None else f"up to {wait_s:g} s"
        logger.warning("run dir %s is in use by another flow run (limit %s); waiting %s", run_dir, name, patience)
    holding = False
    try:
        with concurrency(
            name, occupy=1, timeout_seconds=wait_s, lease_duration=LEASE_S, strict=True,
            raise_on_lease_renewal_failure=False,
        ):  # fmt: skip
            holding = True
            logger.info("holding run dir %s (concurrency limit %s)", run_dir, name)
            yield
    except TimeoutError:
        if holding:  # raised by the training itself, not by the wait
            raise
        raise RunDirBusy(
            f"run dir {run_dir} stayed busy with another training run for {wait_s:g} s (concurrency limit {name}); "
            "run again when it has finished, or train into another run dir"
        ) from None
