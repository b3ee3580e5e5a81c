"""The errors that are the user's to fix, and how to say them in one line.

FineForge's convention: a bad input, setting or folder raises a `ValueError` subclass (`InputError`,
`TokenizeError`, `ShardError`, `DataError`, `ReportError`, pydantic's `ValidationError`, ...) or an `OSError`
(`FileNotFoundError`, `NotADirectoryError`, `PermissionError`, a full disk) whose message names the file and the
problem; a guard that stops a run on purpose (the curate drop guard) raises a `UserError`, and so does a full disk
(`DiskFullError`, which `run_stage` raises naming the output folder). The `fineforge` command
catches exactly these (`USER_ERRORS`) in one place, prints `error: <describe(e)>` and exits 2; `--debug` shows the
traceback instead. A server FineForge started that never came up (`ServiceNotReady`) is said the same way with
exit code 1. Anything else is a FineForge bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class UserError(Exception):
    """A run stopped on purpose because of its input or settings (not a bug); the message says what to change."""


class ServiceNotReady(RuntimeError):
    """A server or cluster FineForge started did not come up (it exited, or did not answer in time).

    Not the user's mistake as such, so the `fineforge` command exits with code 1, but said the same way: one line
    naming what was awaited, for how long, and where its log is.
    """


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)
_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device", also in messages that carry no errno (pyarrow)


class DiskFullError(UserError):
    """The output folder's file system filled up during a run; the message names the folder."""


def disk_full(error: BaseException) -> OSError | None:
    """The "no space left" error behind `error` (itself, or its cause or context), or None.

    Args:
        error: a caught exception (a datatrove worker's error arrives as the worker raised it).

    Returns:
        The OSError that says the disk or quota is full, if any.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and (error.errno in _FULL or _FULL_TEXT in str(error)):
            return error
        error = error.__cause__ or error.__context__
    return None


def no_space_error(folder: Path, error: OSError) -> DiskFullError:
    """The one-line error for a full disk under `folder`: `FOLDER: no space left on device (details)`.

    Args:
        folder: the output folder being written.
        error: the OSError that said so (its file, where it names one).

    Returns:
        The error to raise.
    """
    details = []
    if error.filename is not None:
        name = Path(os.fsdecode(error.filename))
        details.append(f"writing {name.relative_to(folder) if name.is_relative_to(folder) else name}")
    try:
        details.append(f"a file system of {shutil.disk_usage(folder).total / 1e6:.1f} MB")
    except OSError:
        pass
    return DiskFullError(f"{folder}: no space left on device ({'; '.join(details)}); free some space and rerun")


def describe(error: BaseException) -> str:
    """One line (or a few) for the user: the file and the problem.

    An `OSError` from the operating system is rewritten as `FILE: problem` (`/x/out: Not a directory`) instead of
    Python's `[Errno 20] Not a directory: '/x/out'`; every other error is its own message.

    Args:
        error: a caught exception.

    Returns:
        The text to print after `error: `.
    """
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        files = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else f"{error.filename}"
        return f"{files}: {error.strerror}"
    return str(error) or type(error).__name__
