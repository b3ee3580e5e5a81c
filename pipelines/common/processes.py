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

Ctrl-C can be lost: Python raises `KeyboardInterrupt` wherever the main thread is, and when that is an at-fork hook
(logging's `_releaseLock`, after each fork of datatrove's Manager or extraction sandbox) or a `__del__`, the
exception is printed as "Exception ignored" and the work goes on (a `fineforge curate` interrupted then ran to its
end, exit 0, in one of 25 tries). `interrupts_remembered` also keeps the signal, and `raise_if_interrupted`, called
per document, raises it again.

Children that a library forks without asking us (datatrove's `multiprocess` Manager in every local stage, its
extraction sandbox) get the same from `forked_children_die_with_parent`: a `kill -9` of `fineforge curate` once
left the Manager and the sandbox running under init, about 95 MB each. A pool worker started by a forkserver is
not a child of the process it works for (and keeps the forkserver alive), so it watches that process instead
(`ends_with`).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.util
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StopRequested(BaseException):
    """A termination signal (SIGTERM, SIGHUP) reached this process; raised so that cleanup runs.

    A `BaseException`, like `KeyboardInterrupt`: raised wherever the main thread happens to be, it must not be
    swallowed by a library's `except Exception` (an optional import, a retry loop), which once left
    `fineforge up` serving after SIGTERM.

    Attributes:
        signum: the signal number; the conventional exit code is 128 + signum.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")


_interrupted: list[int] = []  # SIGINTs caught inside `interrupts_remembered`


@contextlib.contextmanager
def interrupts_remembered() -> Iterator[None]:
    """While the block runs, Ctrl-C raises `KeyboardInterrupt` as usual and is remembered for `raise_if_interrupted`.

    Only in the main thread and while Python's own SIGINT handler is installed; it is put back afterwards.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def handler(signum: int, frame) -> None:
        _interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _interrupted.clear()


def raise_if_interrupted() -> None:
    """Raise `KeyboardInterrupt` if Ctrl-C came inside `interrupts_remembered` (where Python may have dropped it)."""
    if _interrupted:
        raise KeyboardInterrupt


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


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that has the kernel send the child `sig` when its parent dies.

    Linux only (None elsewhere). libc's `prctl` is looked up here, in the parent, so the child only calls it
    between fork and exec. The signal comes when the thread that started the child ends, so start long-lived
    children from the main thread.

    Args:
        sig: the signal the child gets (SIGTERM: it may clean up).

    Returns:
        The function to call in the child, or None off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return set_parent_death_signal


class _DeathHook:
    """The after-fork hook of one multiprocessing library: the forked child gets SIGKILL when its parent dies.

    SIGKILL rather than SIGTERM: such a child holds nothing worth saving once its parent is gone, and a child
    forked inside a Prefect flow run inherits Prefect's SIGTERM handler, which raises instead of ending it.
    """

    def __init__(self, parent_process: Callable[[], Any]):
        self.parent_process = parent_process  # the library's `parent_process()`, set in the child before the hook
        self.set_death_signal = die_with_parent(signal.SIGKILL)

    def apply(self) -> None:
        """In the child: ask for the signal, then end at once if the parent died before we asked."""
        self.set_death_signal()
        parent = self.parent_process()
        if parent is not None and os.getppid() != parent.pid:
            os._exit(1)


@contextlib.contextmanager
def forked_children_die_with_parent() -> Iterator[None]:
    """While the block runs, every process that `multiprocessing` or `multiprocess` (datatrove's) forks from this
    process is killed by the kernel when its parent dies (Linux `PR_SET_PDEATHSIG`, SIGKILL).

    The hooks ride on the libraries' after-fork registries, which run in each child they fork (not in spawned or
    forkserver children, which start from a fresh interpreter and end through their own pipes). The signal
    comes when the *thread* that forked the child ends, so use this only around work that ends its children
    before it returns, as datatrove's executor (its Manager) and extraction sandbox do. No-op off Linux.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    import multiprocess
    import multiprocess.util

    hooks = [_DeathHook(multiprocessing.parent_process), _DeathHook(multiprocess.parent_process)]
    multiprocessing.util.register_after_fork(hooks[0], _DeathHook.apply)
    multiprocess.util.register_after_fork(hooks[1], _DeathHook.apply)
    try:
        yield
    finally:
        del hooks  # the registries hold their objects weakly: the hooks leave them here


@contextlib.contextmanager
def ends_with(pid: int | None) -> Iterator[None]:
    """While the block runs, this process kills itself (SIGKILL) as soon as process `pid` ends.

    For a worker that is not a child of the process it serves (a forkserver pool's worker), where the kernel's
    parent-death signal cannot help. A daemon thread waits on a Linux pidfd, so the end is seen at once and a
    reused pid cannot fool it; no-op when `pid` is None or this process, or without `os.pidfd_open`.

    Args:
        pid: the process to end with.
    """
    if pid is None or pid == os.getpid() or not hasattr(os, "pidfd_open"):
        yield
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        raise
    stop_r, stop_w = os.pipe()

    def watch() -> None:
        ready, _, _ = select.select([pidfd, stop_r], [], [])
        if pidfd in ready:
            os.kill(os.getpid(), signal.SIGKILL)

    watcher = threading.Thread(target=watch, name=f"ends-with-{pid}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        os.write(stop_w, b"x")
        watcher.join()
        for fd in (pidfd, stop_r, stop_w):
            os.close(fd)


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
