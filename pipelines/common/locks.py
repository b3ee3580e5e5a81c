"""One writer per output folder: an exclusive `flock` on a lock file inside it, naming its holder.

Two runs into one folder (two `fineforge curate` commands, a CLI run beside a flow run) would interleave their
work files and end in raw tracebacks. Every stage that writes a folder (`run_stage` for curate and tokenize,
`fineforge ablate` for its DIR, the trainer for its run directory) holds `folder_lock` while it claims and
writes; the second run is refused at once with one line naming the first (host and pid), instead of waiting for
a run that may take hours.

Why `flock`: the kernel releases it when the holder dies, `kill -9` included, so a stale lock never blocks a
rerun; the host and pid written into the file are only read for the message. The lock file is removed when the
block ends, so a finished or refused folder holds nothing extra; a process that locked a file just removed by its
holder notices (the path no longer names the file it locked) and locks the new one instead. `flock` is local to
one machine: runs on several machines are kept apart by Prefect concurrency limits (`orchestration.run_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from pipelines.common.files import make_output_dir

LOCK_FILE = ".fineforge.lock"


class FolderInUse(ValueError):
    """Another process is writing into the folder; the message names it (host and pid)."""


def _in_use(folder: Path) -> Callable[[str], Exception]:
    def error(holder: str) -> Exception:
        return FolderInUse(
            f"{folder}: in use by another FineForge run ({holder}); wait for it to finish or choose another output"
        )

    return error


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def folder_lock(
    folder: str | Path, busy: Callable[[str], Exception] | None = None, name: str = LOCK_FILE
) -> Iterator[None]:
    """Hold an exclusive lock on `folder/name` for the block (creating the folder), recording this host and pid.

    Args:
        folder: the output folder.
        busy: builds the error raised when another process holds the lock, from its `HOST pid PID`; by default a
            `FolderInUse` naming the folder.
        name: the lock file's name inside the folder.

    Raises:
        FolderInUse: (or what `busy` returns) another process holds the lock.
        OutputFolderError: the folder cannot be created or written.
    """
    folder = make_output_dir(folder)
    path = folder / name
    while True:
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed below on every path)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise (busy or _in_use(folder))(holder) from None
        if _same_file(f.fileno(), path):
            break
        f.close()  # its holder removed it between our open and our lock: lock the file the path names now
    try:
        f.truncate(0)
        f.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # still ours: nobody else can hold or remove it while we hold the lock
        f.close()
