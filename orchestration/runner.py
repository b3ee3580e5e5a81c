"""Serve deployments with a Prefect `Runner` that always ends on SIGTERM, SIGHUP or Ctrl-C, however early they come.

`prefect.serve` leaves a window in which a signal is lost: `Runner.start` installs a SIGTERM handler that calls
`sys.exit(0)` until the runner has finished starting, and that exception, raised inside whatever coroutine the
main thread is running, can die with one task while the runner serves on (seen about once in six `fineforge up`
runs signalled right after the server answered, on a loaded 2-core machine). Here the handlers raise nothing:
they record the signal, and a watcher thread asks the runner to stop (`Runner.astop`, on the runner's own loop)
as soon as it has started. The caller then learns which signal ended the serving. Ctrl-C (SIGINT) takes the same
path: left to asyncio, it cancels `Runner.start` mid-flight, and that teardown sometimes never ended (`fineforge up`
still serving 300 s after Ctrl-C in a clean-clone test run); a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def serve_until_signalled(deployments: Sequence[RunnerDeployment], limit: int | None = None) -> int | None:
    """Register and serve `deployments` until SIGTERM, SIGHUP or Ctrl-C; call from the main thread.

    Args:
        deployments: the deployments to serve (registered with the API in `PREFECT_API_URL`).
        limit: most flow runs at once (None: no limit).

    Returns:
        The number of the signal that ended the serving, or None when it ended otherwise or on Ctrl-C.
    """
    import asyncio

    from prefect.runner import Runner

    received: list[int] = []
    asked = threading.Event()
    finished = threading.Event()

    class _Runner(Runner):
        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
            _record(signal.SIGTERM)

    def _record(signum: int, *_: object) -> None:
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once
        else:
            received.append(signum)
        asked.set()

    runner = _Runner(pause_on_shutdown=False, limit=limit)
    previous = {s: signal.signal(s, _record) for s in STOP_SIGNALS}
    watcher = threading.Thread(target=_stop_when_asked, args=(runner, asked, finished), daemon=True)
    watcher.start()
    try:
        for deployment in deployments:
            runner.add_deployment(deployment)
        if not asked.is_set():
            names = ", ".join(d.name for d in deployments)
            print(f"serving {len(deployments)} deployments ({names}); Ctrl-C or SIGTERM stops", flush=True)
            asyncio.run(runner.start())
    except KeyboardInterrupt:
        pass
    finally:
        finished.set()
        for s, old in previous.items():
            signal.signal(s, old)
    return received[0] if received else None


def _stop_when_asked(runner: Any, asked: threading.Event, finished: threading.Event) -> None:
    """Once a stop signal has come and the runner has started, stop it on its own event loop."""
    asked.wait()
    while not finished.is_set():
        if runner.started:
            runner.execute_in_background(runner.astop)
            return
        finished.wait(0.1)
