"""Curate resume (acceptance 6 of issue 2): kill -9 a curate run at a random point, rerun it, get byte-identical data/.

The run is the real CLI in a subprocess (its own process group, so the kill also takes the extraction sandbox)
on the demo crawl, split into two tasks so that a kill can land between finished and unfinished tasks as well
as inside a task or a dedup sub-stage. Kill times are drawn uniformly over the reference run's work (from the
moment its work folder appears to its end); the seed is in the failure message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.demo_data import write_demo_crawl
from tests.conftest import REPO_ROOT

FINEFORGE = Path(sys.executable).with_name("fineforge")


def curate_cmd(inputs: Path, out: Path, config: Path) -> list[str]:
    return [str(FINEFORGE), "curate", "--input", str(inputs), "--output", str(out), "--config", str(config)]


def sigint_at_default() -> None:
    """In the child: SIGINT at its default action, as under a terminal. A test run started as a background job
    (`nohup make test &`) hands its children SIGINT ignored, and Python then rightly leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_kill_9_then_rerun_gives_identical_data(tmp_path: Path) -> None:
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    config = tmp_path / "two-tasks.yaml"
    # 0.28 MB of input -> one task per file. No URL filter: its lists cost ~10 s per task and it is tested elsewhere.
    config.write_text("run:\n  task_mb: 0.1\nfilters:\n  url:\n    enabled: false\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def start(out: Path) -> tuple[subprocess.Popen, float]:
        """Start a run; return it with the time its work began (the work folder appears after the imports)."""
        proc = subprocess.Popen(
            curate_cmd(crawl, out, config),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        while not list(out.glob(".work/*/step.json")) and proc.poll() is None:
            time.sleep(0.02)
        return proc, time.monotonic()

    proc, began = start(tmp_path / "ref")
    assert proc.wait() == 0
    work_s = time.monotonic() - began
    reference = tree_bytes(tmp_path / "ref" / "data")
    assert reference

    # Kill twice (the second time while resuming), each at a random point of the work, then finish.
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    out = tmp_path / "killed"
    kills = []
    for _ in range(2):
        proc, began = start(out)
        kill_after = rng.uniform(0.0, 0.95) * work_s
        try:
            proc.wait(timeout=max(0.0, kill_after - (time.monotonic() - began)))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kills.append(f"{kill_after:.2f}s (rc {proc.returncode})")
    rerun = subprocess.run(curate_cmd(crawl, out, config), capture_output=True, text=True, env=env)
    context = f"seed {seed}; killed after {', '.join(kills)} of {work_s:.2f}s of work"
    assert rerun.returncode == 0, f"{context}\n{rerun.stderr[-3000:]}"
    assert tree_bytes(out / "data") == reference, context
    steps = {f"{step['name']}-{step['key']}" for step in json.loads((out / "summary.json").read_text())["steps"]}
    assert {p.name for p in (out / ".work").iterdir() if p.is_dir()} == steps, context  # every rerun resumed them


def test_ctrl_c_says_the_run_stopped_and_a_rerun_resumes(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) once the work began: exit 130 and one line saying how to
    resume, no traceback; the same command then finishes the run."""
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    config = tmp_path / "no-url-filter.yaml"
    config.write_text("filters:\n  url:\n    enabled: false\n")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        curate_cmd(crawl, out, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
        preexec_fn=sigint_at_default,
    )
    while not list(out.glob(".work/*/step.json")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert stderr.rstrip().endswith("stopped by signal 2; rerun the same command to resume"), stderr[-3000:]
    assert "Traceback" not in stdout + stderr
    rerun = subprocess.run(curate_cmd(crawl, out, config), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["docs_out"] > 0


LOST_CTRL_C = """
import os, signal
from pipelines.common.processes import interrupts_remembered, raise_if_interrupted
os.register_at_fork(after_in_parent=lambda: signal.raise_signal(signal.SIGINT))
with interrupts_remembered():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("went on", flush=True)
    raise_if_interrupted()
"""


def test_a_ctrl_c_that_python_drops_is_raised_again() -> None:
    """Ctrl-C landing in an at-fork hook (logging's, after each fork of datatrove's Manager or sandbox) becomes an
    "Exception ignored" and the work went on; the remembered signal is raised at the next check."""
    run = subprocess.run(
        [sys.executable, "-c", LOST_CTRL_C],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        preexec_fn=sigint_at_default,
    )
    assert "Exception ignored" in run.stderr and run.stdout == "went on\n"  # Python dropped it ...
    assert run.returncode == -signal.SIGINT and run.stderr.rstrip().endswith("KeyboardInterrupt")  # ... raised again
