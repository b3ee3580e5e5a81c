"""FineForge on Prefect work pools: data work on CPU machines, training on GPU machines, one server and UI.

`deploy_to_pools` registers the deployments `cli.py` hands it (`flows.deployments()`: this module sits below
`flows.py` and does not import it) against the server in `PREFECT_API_URL`, on two process work pools that it
creates when missing (`fineforge-data`, `fineforge-train`): training
(`train`, `train-on-shards` with its `fineforge.shards.ready` trigger, `pipeline`, which trains, and
`ablation`, which trains per recipe) goes to the train pool, everything else to the data pool. Entrypoints are
module paths (`flows.curate`), with no pull steps and no stored code: a worker imports the flows from the
FineForge installed on its own machine, so every machine runs the same FineForge version from its own install.

`worker_command` is what `fineforge worker` runs: `prefect worker start --pool NAME --type process`, in an
environment whose `FINEFORGE_HOME` is absolute (a process worker starts each flow run in a fresh temporary
directory, so the default `./.fineforge` would land there). Machines share data through that home on shared
storage: datasets, shards and runs live under it by default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from orchestration.server import CLIENT_ENV
from pipelines.common.home import HOME_ENV

DATA_POOL = "fineforge-data"
TRAIN_POOL = "fineforge-train"
POOL_TYPE = "process"
TRAIN_DEPLOYMENTS = frozenset({"train", "train-on-shards", "pipeline", "ablation"})


class PoolError(ValueError):
    """No server to deploy to, or a work pool that FineForge cannot use; the message says what to do."""


def pool_for(deployment: str, data_pool: str, train_pool: str) -> str:
    """The pool a deployment belongs to: training deployments to `train_pool`, the rest to `data_pool`.

    Args:
        deployment: the deployment name.
        data_pool: pool of CPU (data) workers.
        train_pool: pool of GPU (training) workers.
    """
    return train_pool if deployment in TRAIN_DEPLOYMENTS else data_pool


def api_url() -> str:
    """The server FineForge talks to: `PREFECT_API_URL`.

    Raises:
        PoolError: it is not set.
    """
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:
        raise PoolError(
            "PREFECT_API_URL is not set: point it at the server's API, e.g. "
            "export PREFECT_API_URL=http://SERVER:4200/api (the server runs `fineforge server --host 0.0.0.0`)"
        )
    return url


def ensure_process_pool(client: Any, name: str) -> bool:
    """Create a process work pool named `name` unless it exists; refuse a pool of another type.

    Args:
        client: a synchronous Prefect client.
        name: the pool name.

    Returns:
        True when the pool was created here.

    Raises:
        PoolError: a pool of that name exists with another worker type.
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template))
        except ObjectAlreadyExists:  # created by someone else a moment ago: check it below
            pool = client.read_work_pool(name)
        else:
            return True
    if pool.type != POOL_TYPE:
        raise PoolError(
            f"work pool {name!r} exists with type {pool.type!r}; FineForge deploys to {POOL_TYPE!r} pools: "
            "choose another name (--data-pool / --train-pool)"
        )
    return False


def check_pool(name: str) -> None:
    """Check that the server in PREFECT_API_URL has a process pool `name` (what `fineforge worker` serves).

    Raises:
        PoolError: no server address, an unreachable server, no such pool or a pool of another type.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    url = api_url()
    try:
        with get_client(sync_client=True) as client:
            pool = client.read_work_pool(name)
    except ObjectNotFound:
        raise PoolError(f"no work pool {name!r} on {url}; run `fineforge deploy` first") from None
    except (OSError, httpx.HTTPError) as err:
        raise PoolError(f"cannot reach the Prefect server at {url}: {err}") from None
    if pool.type != POOL_TYPE:
        raise PoolError(f"work pool {name!r} on {url} has type {pool.type!r}, not {POOL_TYPE!r}")


def deploy_to_pools(data_pool: str, train_pool: str, deployments: Sequence[Any]) -> list[tuple[str, str]]:
    """Create the two pools when missing and register every deployment on its pool (idempotent: rerun to update).

    Args:
        data_pool: pool for curate, tokenize, report (and other data deployments).
        train_pool: pool for train, train-on-shards, pipeline and ablation.
        deployments: the runner deployments to register, with module entrypoints: what
            `flows.deployments(settings, entrypoint_type=EntrypointType.MODULE_PATH)` returns (`cli.py` builds them,
            so this module does not import the layer above it).

    Returns:
        (deployment name, pool) for every deployment registered, in the order given.

    Raises:
        PoolError: no PREFECT_API_URL, an unreachable server, or a pool of another type.
    """
    from prefect import get_client

    url = api_url()
    if data_pool == train_pool:
        raise PoolError(f"the data and train pools are both {data_pool!r}: give them different names")
    try:
        with get_client(sync_client=True) as client:
            for pool in (data_pool, train_pool):
                ensure_process_pool(client, pool)
    except (OSError, httpx.HTTPError) as err:
        raise PoolError(f"cannot reach the Prefect server at {url}: {err}") from None
    placed = []
    for deployment in deployments:
        pool = pool_for(deployment.name, data_pool, train_pool)
        deployment.apply(work_pool_name=pool)
        placed.append((deployment.name, pool))
    return placed


def worker_env(home: str, reports_url: str | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a FineForge worker: an absolute FineForge home, telemetry off, the report server.

    Args:
        home: the FineForge home (absolute; on shared storage when workers run on several machines).
        reports_url: the report server's base URL for report links (None: keep FINEFORGE_REPORTS_URL as is).
        base: environment to start from (default: this process's).

    Returns:
        The environment dict.
    """
    from orchestration.reports import REPORTS_ENV

    env = dict(os.environ if base is None else base)
    env.update(CLIENT_ENV)
    env[HOME_ENV] = home
    if reports_url:
        env[REPORTS_ENV] = reports_url
    return env


def worker_command(pool: str, limit: int | None = None, name: str | None = None) -> list[str]:
    """`prefect worker start` for a FineForge process pool (what `fineforge worker` runs).

    Args:
        pool: the work pool.
        limit: most flow runs at once on this worker (None: no limit).
        name: the worker's name (default: Prefect's, from the host name).

    Returns:
        The argv.
    """
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", POOL_TYPE]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if name:
        cmd += ["--name", name]
    return cmd
