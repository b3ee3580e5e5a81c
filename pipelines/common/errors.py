"""The errors that are the user's to fix, and how to say them in one line.

FineForge's convention: a bad input, setting or folder raises a `ValueError` subclass (`InputError`,
`TokenizeError`, `ShardError`, `DataError`, `ReportError`, pydantic's `ValidationError`, ...) or an `OSError`
(`FileNotFoundError`, `NotADirectoryError`, `PermissionError`, a full disk) whose message names the file and the
problem; a guard that stops a run on purpose (the curate drop guard) raises a `UserError`. The `fineforge` command
catches exactly these (`USER_ERRORS`) in one place, prints `error: <describe(e)>` and exits 2; `--debug` shows the
traceback instead. A server FineForge started that never came up (`ServiceNotReady`) is said the same way with
exit code 1. Anything else is a FineForge bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A run stopped on purpose because of its input or settings (not a bug); the message says what to change."""


class ServiceNotReady(RuntimeError):
    """A server or cluster FineForge started did not come up (it exited, or did not answer in time).

    Not the user's mistake as such, so the `fineforge` command exits with code 1, but said the same way: one line
    naming what was awaited, for how long, and where its log is.
    """


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)


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
