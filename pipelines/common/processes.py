"""Process groups that FineForge starts (the Prefect server, the trainer) and must always end.

A child started with `start_new_session=True` leads its own process group, so one `killpg` reaches it and
everything it started (torchrun and its ranks, the server's workers), and it does not get the terminal's Ctrl-C:
whoever started it ends it explicitly, on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


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
