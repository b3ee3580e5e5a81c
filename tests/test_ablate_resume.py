"""kill -9 of `fineforge ablate` during the second variant's training: the rerun reuses the first variant whole and
resumes the second variant's run from its newest checkpoint.

The command runs in its own session, so the kill reaches it and its curate workers at once; its trainer runs in a
session of its own (`trainer.process`) and dies of a broken pipe at its next log line, as it would after a real
SIGKILL of the supervisor. The rerun waits for that (a run directory whose trainer is still alive is refused).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts, write_demo_crawl
from pipelines.common.processes import group_alive
from tests.conftest import REPO_ROOT
from trainer.process import PGID_FILE

FINEFORGE = Path(sys.executable).with_name("fineforge")
TOKENS = 8192  # 16 steps of 512 tokens, a checkpoint every 4: room to kill between two checkpoints


def ablate_cmd(
    crawl: Path, eval_set: Path, out: Path, variants: tuple[str, ...] = ("fineweb", "nofilter"), *extra: str
) -> list[str]:
    """`fineforge ablate` over the demo crawl's JSONL with the shipped configs of `variants`, plus `extra` flags."""
    cmd = [str(FINEFORGE), "ablate", "--input", str(crawl / "docs.jsonl"), "--eval-data", str(eval_set)]
    cmd += ["--out", str(out), "--tokens", str(TOKENS), "--seeds", "0", *extra]
    for name in variants:
        cmd += ["--variant", f"{name}={REPO_ROOT / 'configs' / f'{name}.yaml'}"]
    return cmd


def wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"ablate exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_9_in_second_variant_then_rerun_resumes(tmp_path):
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(2, seed=3)))
    out = tmp_path / "out"
    first_run, second_run = out / "fineweb" / "runs" / "seed-0", out / "nofilter" / "runs" / "seed-0"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(ablate_cmd(crawl, eval_set, out), stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        wait_for(
            lambda: list((second_run / "checkpoints").glob("step_*.pt")), proc, 900, "a second-variant checkpoint"
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    pgid = int((second_run / PGID_FILE).read_text())
    deadline = time.monotonic() + 120
    while group_alive(pgid) and time.monotonic() < deadline:  # the orphaned trainer's next line breaks its pipe
        time.sleep(0.2)
    assert not group_alive(pgid)
    assert json.loads((second_run / "run.json").read_text())["status"] in ("running", "failed")  # not completed
    first_state = {
        p: p.read_bytes() for p in sorted((out / "fineweb").rglob("*")) if p.is_file() and p.suffix != ".log"
    }
    checkpoint = max(int(p.stem.split("_")[1]) for p in (second_run / "checkpoints").glob("step_*.pt"))
    assert checkpoint < 16, "the kill came after the run finished; nothing left to resume"

    rerun = subprocess.run(ablate_cmd(crawl, eval_set, out), capture_output=True, text=True, env=env, timeout=1800)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    lines = rerun.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("variant ")]
    fineweb_part = lines[starts[0] : starts[1]]
    assert sum("finished earlier, reused" in line for line in fineweb_part) == 3, fineweb_part  # curate, tokenize, run
    now = {p: p.read_bytes() for p in first_state}
    changed = [str(p) for p in first_state if now[p] != first_state[p] and p.name != "report.html"]
    assert not changed, changed  # the first variant was reused, not redone (only its data report is rewritten)
    assert (
        f"resuming from {second_run / 'checkpoints' / f'step_{checkpoint:06d}.pt'}"
        in (second_run / "train.log").read_text()
    )
    assert json.loads((second_run / "run.json").read_text())["status"] == "completed"
    record = json.loads((out / "ablation.json").read_text())
    assert {(r["variant"], r["seed"]) for r in record["results"]} == {("fineweb", 0), ("nofilter", 0)}
    assert (first_run / "evals.json").is_file()


@pytest.mark.slow
def test_sigterm_stops_parallel_runs_with_checkpoints_then_rerun_resumes(tmp_path):
    """Two seeds training side by side (--training-concurrency 2): SIGTERM to the command stops both trainers
    with a checkpoint and exits 143; the rerun resumes both."""
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(2, seed=3)))
    out = tmp_path / "out"
    cmd = ablate_cmd(crawl, eval_set, out, ("fineweb",), "--seeds", "0,1", "--training-concurrency", "2")
    runs = [out / "fineweb" / "runs" / f"seed-{seed}" for seed in (0, 1)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        both = lambda: all(list((r / "checkpoints").glob("step_*.pt")) for r in runs)  # noqa: E731
        wait_for(both, proc, 900, "a checkpoint in both runs")
        pgids = [int((r / PGID_FILE).read_text()) for r in runs]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert not any(group_alive(pgid) for pgid in pgids)  # stopped, not orphaned
    stopped = [json.loads((r / "run.json").read_text()) for r in runs]
    assert [s["status"] for s in stopped] == ["interrupted", "interrupted"], stopped
    assert "rerun the same command to resume" in (tmp_path / "first.log").read_text()

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for run, before in zip(runs, stopped, strict=True):
        assert f"resuming from {before['checkpoint']}" in (run / "train.log").read_text()
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
