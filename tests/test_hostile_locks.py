"""Two runs into one folder (issue 20, finding 4): the second is refused in one line naming the first (host, pid).

Before the lock, two `fineforge curate` runs into one folder ended in raw tracebacks (datatrove's `AssertionError:
Hash order error`) and `atomic_write` gave both writers of a file the same `<name>.tmp` ("...tmp: No such file").
The deterministic cases hold the folder's lock from this test process (as a run would: `flock` on
`DIR/.fineforge.lock` with `HOST pid PID` in it) and run the real commands; one case races two real `fineforge
curate` processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts
from pipelines.common.files import atomic_write
from tests.quality_helpers import texts_jsonl

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK = ".fineforge.lock"
FAST_CONFIG = "filters:\n  url:\n    enabled: false\n"  # the URL filter's block lists cost ~10 s per run


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """(40 demo articles as JSONL, a curate config without the URL filter)."""
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_CONFIG)
    return texts_jsonl(tmp_path / "docs.jsonl", demo_texts(40)), config


def hold_lock(folder: Path) -> Iterator[str]:
    """Hold `folder`'s lock as another run would; yield what it names (`HOST pid PID`)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = f"{socket.gethostname()} pid {os.getpid()}"
    with open(folder / LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write(holder + "\n")
        f.flush()
        yield holder


def assert_refused(result, folder: Path, holder: str) -> None:
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert output == f"error: {folder}: in use by another FineForge run ({holder}); wait for it to finish or " + (
        "choose another output"
    )


def test_curate_and_tokenize_refuse_a_folder_another_run_holds(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    docs, config = inputs
    out = tmp_path / "curated"
    for holder in hold_lock(out):
        result = CliRunner().invoke(app, ["curate", "-i", str(docs), "-o", str(out), "-c", str(config)])
        assert_refused(result, out, holder)
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing written beside the other run

    # The holder died (its flock is gone, its lock file still names it): a rerun is not blocked.
    result = CliRunner().invoke(app, ["curate", "-i", str(docs), "-o", str(out), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert not (out / LOCK).exists()  # a finished run leaves no lock file

    shards = tmp_path / "shards"
    for holder in hold_lock(shards):
        result = CliRunner().invoke(app, ["tokenize", "--input", str(out), "--output", str(shards)])
        assert_refused(result, shards, holder)
    assert sorted(p.name for p in shards.iterdir()) == [LOCK]


def test_ablate_refuses_a_folder_another_ablation_holds(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    docs, config = inputs
    evals = texts_jsonl(tmp_path / "held-out.jsonl", demo_texts(4, seed=9))
    out = tmp_path / "ablation"
    for holder in hold_lock(out):
        result = CliRunner().invoke(
            app, ["ablate", "-i", str(docs), "--variant", f"a={config}", "--eval-data", str(evals), "--out", str(out)]
        )
        assert_refused(result, out, holder)
    assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_two_curate_processes_into_one_folder(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    docs, config = inputs
    out = tmp_path / "curated"
    cmd = [sys.executable, "-m", "cli", "curate", "-i", str(docs), "-o", str(out), "-c", str(config)]
    first = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Wait (generously: imports on a loaded 2-core machine) until the first run holds the lock, then pause it
        # there (SIGSTOP keeps its lock held) so that it cannot finish before the second one has tried: a small
        # run takes only a few seconds, less than the second process's start-up on a loaded machine.
        deadline = time.monotonic() + 120
        while f"pid {first.pid}" not in ((out / LOCK).read_text() if (out / LOCK).exists() else ""):
            assert first.poll() is None, f"the first curate ended before it was seen holding {out / LOCK}"
            assert time.monotonic() < deadline, f"the first curate did not take {out / LOCK} within 120 s"
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        output = (second.stdout + second.stderr).strip()
        assert second.returncode == 2, output
        assert output.startswith(f"error: {out}: in use by another FineForge run ("), output
        assert f"{socket.gethostname()} pid {first.pid}" in output and len(output.splitlines()) == 1, output
        first_output, _ = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, first_output
    assert json.loads((out / "summary.json").read_text())["docs_in"] == 40


def test_two_writers_of_one_file_use_their_own_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    with atomic_write(target, "w") as outer:
        outer.write("outer")
        with atomic_write(target, "w") as inner:
            inner.write("inner")
        assert target.read_text() == "inner"
    assert target.read_text() == "outer"  # the later rename wins; neither writer lost its file
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
