"""Send datatrove's log (several hundred lines per curate run) to a file instead of the terminal.

Datatrove logs outside tasks through loguru's current handlers and, per task, adds a handler on `sys.stderr`
(`datatrove.utils.logging.add_task_logger`), so both are pointed at the file while the block runs; afterwards
loguru's default handler is back. `fineforge demo` and `fineforge ablate` keep the terminal for their own lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def datatrove_logs_to(log_path: Path) -> Iterator[None]:
    """Append datatrove's (loguru's) output and anything written to stderr to `log_path` inside the block.

    Args:
        log_path: the log file (its folder must exist).
    """
    from loguru import logger

    with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        logger.remove()
        logger.add(log, level="INFO")
        try:
            yield
        finally:
            logger.remove()  # drop handlers bound to the log file before it closes
            logger.add(sys.stderr)  # loguru's default handler again
