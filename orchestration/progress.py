"""Where live progress goes: the terminal (rich) for the CLI, Prefect artifacts for the flows.

Both take the `pipelines.common.progress.Progress` snapshots that curate, tokenize and train report, so the
three stages look the same in both places:

- `TerminalProgress`: a bar of the whole stage, the running step with documents (or shards, steps) done,
  units/s and the ETA, and a table of the per-stage counts so far, redrawn at most twice a second on stderr.
  On a console that is not a terminal (a log file, CI) only the last state is printed, once, at the end.
- `ArtifactProgress`: a progress artifact `<stage>-progress-<dataset>` (percent of the stage, the same one-line
  description) and a table artifact `<stage>-counts-<dataset>` of the counts so far (numbers rounded), both
  updated in place at most every `PROGRESS_INTERVAL_S` and once at the end: one card of each per flow run (a
  new table per write gave a 22-minute training run 44 cards). A failure to publish is logged once and never
  fails the run.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestration.artifacts import artifact_key, progress_table
from pipelines.common.progress import Progress, Throttle
from pipelines.curate.logs import stderr_stream

PROGRESS_INTERVAL_S = 3.0  # "at most every few seconds" (issue 15); the UI polls artifacts about as often
TERMINAL_REFRESH_S = 0.5

log = logging.getLogger(__name__)


class TerminalProgress:
    """Show progress snapshots on the terminal; use as a context manager around the stage.

    Args:
        console: where to draw (default: the stderr of the moment it is made, which stays the terminal while
            `pipelines.curate.logs.datatrove_logs_to` sends datatrove's log to a file).
        table_at_end: keep the table of counts in the last state drawn; False for a command that prints its own
            summary table afterwards (the table still shows while the stage runs, and after a failure).
    """

    def __init__(self, console: Console | None = None, table_at_end: bool = True):
        self._stream = None if console else stderr_stream()
        self.console = console or Console(file=self._stream)
        self.table_at_end = table_at_end
        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._throttle = Throttle(TERMINAL_REFRESH_S)
        self._last: Progress | None = None

    def __enter__(self) -> TerminalProgress:
        self._live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: Any) -> None:
        if self._last is not None:
            with_table = self.table_at_end or exc_type is not None
            self._live.update(render(self._last, with_table), refresh=True)
        self._live.stop()
        if self._last is not None and not self.console.is_terminal:
            self.console.line()  # rich leaves a non-terminal's last line open
        if self._stream is not None and self._stream is not sys.stderr:
            self._stream.close()

    def __call__(self, progress: Progress) -> None:
        """Redraw with `progress` (at most twice a second)."""
        self._last = progress
        if self._throttle.ready():
            self._live.update(render(progress), refresh=True)


def render(progress: Progress, with_table: bool = True) -> Group:
    """The rich renderable of a snapshot: a bar line and the table of counts so far.

    Args:
        progress: the snapshot.
        with_table: whether to include the table of counts.

    Returns:
        A rich Group.
    """
    header = Table.grid(padding=(0, 1))
    for _ in range(3):
        header.add_column(no_wrap=True)
    header.add_row(
        Text.assemble((progress.stage, "bold"), f" {100 * progress.overall:5.1f}%"),
        ProgressBar(total=100.0, completed=100 * progress.overall, width=24),
        Text(progress.describe(), overflow="ellipsis"),
    )
    rows = progress_table(progress.rows) if with_table else []
    if not rows:
        return Group(header)
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in rows[0]:
        table.add_column(column, justify="left" if isinstance(rows[0][column], str) else "right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    return Group(header, table)


class ArtifactProgress:
    """Publish progress snapshots as Prefect artifacts of the current flow run; call `done()` at the end.

    Args:
        stage: `curate`, `tokenize` or `train` (the artifact keys start with it).
        dataset: the dataset or run name (the keys end with it).
    """

    def __init__(self, stage: str, dataset: str):
        self.progress_key = artifact_key(f"{stage}-progress", dataset)
        self.table_key = artifact_key(f"{stage}-counts", dataset)
        self.artifact_id: Any = None
        self.table_id: Any = None
        self._progress = Throttle(PROGRESS_INTERVAL_S)
        self._last: Progress | None = None
        self._failed = False

    def __call__(self, progress: Progress) -> None:
        """Update the progress artifact and the table with `progress` (at most every few seconds)."""
        self._last = progress
        if self._progress.ready():
            self._publish_progress(100 * progress.overall, progress.describe())
            if progress.rows:
                self._publish_table(progress)

    def done(self, description: str = "done") -> None:
        """Set the progress artifact to 100% and write the final table of counts."""
        self._publish_progress(100.0, description)
        if self._last is not None and self._last.rows:
            self._publish_table(self._last)

    def _publish_progress(self, percent: float, description: str) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            if self.artifact_id is None:
                self.artifact_id = create_progress_artifact(percent, key=self.progress_key, description=description)
            else:
                update_progress_artifact(self.artifact_id, round(percent, 2), description=description)
        except Exception as err:  # progress must never fail the stage it reports on
            self._warn(err)

    def _publish_table(self, progress: Progress) -> None:
        from prefect.artifacts import create_table_artifact
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        rows, description = progress_table(progress.rows), f"So far: {progress.describe()}"
        try:
            if self.table_id is None:
                self.table_id = create_table_artifact(rows, key=self.table_key, description=description)
            else:  # Prefect has no update_table_artifact; its API updates any artifact's data in place
                update = ArtifactUpdate(data=json.dumps(rows), description=description)
                with get_client(sync_client=True) as client:
                    client.update_artifact(self.table_id, update)
        except Exception as err:  # progress must never fail the stage it reports on
            self._warn(err)

    def _warn(self, err: Exception) -> None:
        if not self._failed:
            log.warning("could not publish progress artifacts (%s); the run goes on", err)
            self._failed = True
