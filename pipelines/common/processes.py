"""Process groups that FineForge starts (the Prefect server, the trainer) and must always end.

A child started with `start_new_session=True` leads its own process group, so one `killpg` reaches it and
everything it started (torchrun and its ranks, the server's workers), and it does not get the terminal's Ctrl-C:
whoever started it ends it explicitly, on every exit path. Three ways to end make that hold:

- an exception or Ctrl-C: the starter's `finally` calls `stop_process`;
- SIGTERM or SIGHUP (a service manager, a closed terminal): `signals_raise` turns them into `StopRequested`
  while the child runs, so the same `finally` runs (without it, SIGTERM to `fineforge server` left
  `prefect server` holding its port);
- SIGKILL, which no handler sees: `die_with_parent` asks the kernel (Linux `PR_SET_PDEATHSIG`) to send the child
  SIGTERM when its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StopRequested(Exception):
    """A termination signal (SIGTERM, SIGHUP) reached this process; raised so that cleanup runs.

    Attributes:
        signum: the signal number; the conventional exit code is 128 + signum.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def signals_raise(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Turn `signals` into `StopRequested` while the block runs.

    Only in the main thread, and only for signals nobody else handles (inside a Prefect flow run, Prefect's own
    handlers stay in charge); the previous handlers are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        raise StopRequested(signum)

    previous = {s: signal.getsignal(s) for s in signals}
    mine = [s for s, old in previous.items() if old in (signal.SIG_DFL, None)]
    for s in mine:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in mine:
            signal.signal(s, previous[s])


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that has the kernel send the child SIGTERM when its parent dies.

    Linux only (None elsewhere). libc's `prctl` is looked up here, in the parent, so the child only calls it
    between fork and exec. The signal comes when the thread that started the child ends, so start long-lived
    children from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return set_parent_death_signal


def group_alive(pgid: int) -> bool:
    """Return True while any process of the group `pgid` exists (zombies aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_group(pgid: int, grace: float) -> bool:
    """Wait up to `grace` s for a group to vanish, then SIGKILL what is left.

    Args:
        pgid: the process group id.
        grace: seconds to wait.

    Returns:
        True when the group vanished by itself.
    """
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return False
        time.sleep(0.2)
    return True


def stop_group(pgid: int, grace: float, proc: subprocess.Popen | None = None, sig: int = signal.SIGTERM) -> bool:
    """Signal a process group, wait up to `grace` s, then SIGKILL what is left.

    Args:
        pgid: the process group id.
        grace: seconds to wait after the signal.
        proc: the group leader when it is our child (reaped while waiting).
        sig: the first signal.

    Returns:
        True when the group exited within the grace period.
    """
    deadline = time.monotonic() + grace
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    stopped = reap_group(pgid, max(0.0, deadline - time.monotonic()))
    if proc is not None:
        proc.wait()
    return stopped


def stop_process(proc: subprocess.Popen, grace: float = 15.0, sig: int = signal.SIGTERM) -> int:
    """End a child started with `start_new_session=True` and everything in its group; return its exit code.

    Args:
        proc: the process (its pid is its group id).
        grace: seconds to wait after the first signal before SIGKILL.
        sig: the first signal.

    Returns:
        The exit code.
    """
    stop_group(proc.pid, grace, proc, sig)
    return proc.returncode
