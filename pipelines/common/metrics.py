"""Reading the trainer's `metrics.jsonl`: one JSON object per event (`step`, `eval`, `sample`), one rule for all.

The trainer writes each record as one line ending in a newline, flushed at once. The file is read while a
trainer may still be appending, and a killed trainer may leave its last line cut short: a last line without
its newline that does not parse is that line, and is left out. Any complete line that does not parse means the
file is damaged, which is an error naming the file and line, never a silently shorter curve.

`MetricsFollower` reads only what was appended since its last look (complete lines), so a supervisor can follow
a long run once a second without re-reading a file that grows by a line per step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


class MetricsError(ValueError):
    """A damaged metrics.jsonl; the message names the file and the line."""


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    """One complete line as a record, or MetricsError naming the file and line."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
    except ValueError as err:
        raise MetricsError(f"{path}:{number}: not JSON ({err})") from err
    return record


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Return the records of a metrics.jsonl in file order (an empty list when the file does not exist).

    Args:
        path: the metrics file (RUN_DIR/metrics.jsonl).

    Returns:
        The records; a last line still being written (or cut by a kill) is left out.

    Raises:
        MetricsError: a complete line is not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    unfinished = bool(text) and not text.endswith("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_parse(line, path, number))
        except MetricsError:
            if unfinished and number == len(lines):
                break  # the line a running (or killed) trainer was writing
            raise
    return records


class MetricsFollower:
    """Reads the records appended to a metrics.jsonl since the last call, complete lines only.

    Args:
        path: the metrics file (it may not exist yet).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._lines = 0

    def new_records(self) -> list[dict[str, Any]]:
        """The records of the lines completed since the last call (all of them on the first call).

        Raises:
            MetricsError: a complete line is not a JSON object.
        """
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        records = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self._lines += 1
            if line.strip():
                records.append(_parse(line, self.path, self._lines))
        return records
