"""A `kill -9` of `fineforge curate` leaves no process behind (issue 20, case 9).

A real `fineforge curate` runs on two copies of the demo crawl's WARC with trafilatura (the default engine), so
datatrove forks its Manager and an extraction sandbox per task; with two workers, a forkserver, its resource
tracker and the pool's workers too. Once those exist, SIGKILL goes to curate alone (no handler runs), and every
process it had started, at any depth, must be gone soon after. Before the fix the Manager and the sandbox stayed
under init, about 95 MB each; with two workers a pool worker went on extracting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from orchestration.demo_data import write_demo_crawl
from tests.conftest import REPO_ROOT, wait_for
from tests.test_hostile_processes import gone

pytestmark = pytest.mark.slow


def two_warcs(folder: Path) -> Path:
    """A folder with the demo crawl's WARC twice (two input files: two tasks, a pool with two workers)."""
    write_demo_crawl(folder / "crawl")
    (folder / "in").mkdir()
    for name in ("a", "b"):
        shutil.copy(folder / "crawl" / "crawl.warc.gz", folder / "in" / f"{name}.warc.gz")
    return folder / "in"


def depth(proc: psutil.Process, root: int) -> int:
    """How many generations `proc` lies below the process `root`."""
    generations = 0
    while proc.pid != root:
        proc, generations = proc.parent(), generations + 1
    return generations


def extracting(root: int, sandbox_depth: int) -> list[psutil.Process] | None:
    """Every descendant of `root`, once one lies at `sandbox_depth` beside the Manager (an extraction sandbox:
    a child of curate with one worker, of a pool worker with two); else None."""
    try:
        found = psutil.Process(root).children(recursive=True)
        depths = [depth(p, root) for p in found]
    except psutil.Error:  # a process ended while we looked: look again
        return None
    ready = depths.count(1) >= 2 if sandbox_depth == 1 else sandbox_depth in depths
    return found if ready else None


@pytest.mark.parametrize("workers,sandbox_depth", [(1, 1), (2, 3)], ids=["one-worker", "two-workers"])
def test_kill_9_of_curate_leaves_no_process(tmp_path: Path, workers: int, sandbox_depth: int) -> None:
    cmd = [sys.executable, "-m", "cli", "curate", "-i", str(two_warcs(tmp_path)), "-o", str(tmp_path / "out"),
           "--workers", str(workers)]  # fmt: skip
    log = tmp_path / "curate.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: list[int] = []
    try:
        what = f"fineforge curate --workers {workers} to fork its Manager and an extraction sandbox"
        started = [p.pid for p in wait_for(lambda: extracting(proc.pid, sandbox_depth), 300, what, log)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left = gone(started, timeout=60)
        assert left == [], [" ".join(psutil.Process(p).cmdline())[:200] for p in left]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in gone(started, timeout=0):
            os.kill(pid, signal.SIGKILL)
