"""Send datatrove's log (several hundred lines per curate run) to a file instead of the terminal.

Datatrove logs outside tasks through loguru's current handlers and, per task, adds a handler on `sys.stderr`
(`datatrove.utils.logging.add_task_logger`); worker processes of a multi-worker run (and libraries that print
from C) write to file descriptor 2. So inside the block all three point at the file: loguru's handlers,
`sys.stderr` and descriptor 2 (which the workers inherit). Afterwards loguru's default handler and the terminal
are back. The block yields a stream on the stderr it started with, for what the user should still see there
(the progress display of `fineforge curate`). `fineforge curate` (without `--verbose`), `fineforge demo` and
`fineforge ablate` keep the terminal for their own lines this way.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def stderr_stream() -> TextIO:
    """A stream on the current stderr that later redirections of `sys.stderr` and descriptor 2 do not move.

    Returns:
        A new stream on a duplicate of descriptor 2 (close it after use), or `sys.stderr` itself where that is not
        descriptor 2 (a test runner capturing in memory).
    """
    try:
        on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, io.UnsupportedOperation):
        on_fd2 = False
    if not on_fd2:
        return sys.stderr
    sys.stderr.flush()
    return os.fdopen(os.dup(2), "w", encoding=sys.stderr.encoding, errors="replace", buffering=1)


@contextlib.contextmanager
def _fd2_to(log: TextIO) -> Iterator[TextIO]:
    """Point descriptor 2 at `log` (unless stderr is not descriptor 2); yield a stream on the stderr before."""
    terminal = stderr_stream()
    if terminal is sys.stderr:
        yield terminal
        return
    os.dup2(log.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(terminal.fileno(), 2)
        terminal.close()


@contextlib.contextmanager
def datatrove_logs_to(log_path: Path) -> Iterator[TextIO]:
    """Append datatrove's (loguru's) output and anything written to stderr to `log_path` inside the block.

    Args:
        log_path: the log file (its folder must exist).

    Yields:
        A text stream on the stderr the block started with (the terminal, usually).
    """
    from loguru import logger

    with open(log_path, "a", encoding="utf-8", buffering=1) as log:
        try:
            with _fd2_to(log) as terminal, contextlib.redirect_stderr(log):
                logger.remove()
                logger.add(log, level="INFO")
                yield terminal
        finally:
            logger.remove()  # drop handlers bound to the log file before it closes
            logger.add(sys.stderr)  # loguru's default handler again, on the restored stderr
