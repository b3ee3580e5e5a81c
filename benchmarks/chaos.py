"""Crash benchmark: `kill -9` real `fineforge curate` and `fineforge tokenize` runs at seeded random moments,
rerun each, and count the reruns whose output is identical to a clean run's.

For each command: one clean run into a fresh folder (its wall time T is the window), then `--trials` times: start
the same command into a fresh folder, SIGKILL its whole process group (the CLI and its datatrove or tokenizer
workers, as a power cut would) after `uniform(0.02, 0.98) * T` seconds drawn from `random.Random(--seed)`, rerun
the command to completion, and compare every output file with the clean run's by sha256:

- curate (`--workers 2`, the built-in demo crawl, default config): `data/`, `rejects/`, `quarantine/`, the
  ownership record, and `summary.json` without `duration_s` and `docs_per_s` (the rerun's own timing);
- tokenize (`--workers 2`, `--shard-tokens 200000`, 12,000 demo texts as JSONL): every shard and
  `manifest.json` without `created`.

A kill that lands after the command already finished is counted apart (`finished before the kill`); the rerun
must then reuse the finished output. Prints one line per trial and `identical N/TRIALS` per command.
Run: `.venv/bin/python -m benchmarks.chaos [--trials 10] [--seed 0] [--only curate|tokenize]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestration.demo_data import demo_texts, write_demo_crawl

REPO = Path(__file__).resolve().parents[1]
VOLATILE = {"summary.json": ("duration_s", "docs_per_s"), "manifest.json": ("created",)}


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every output file under `folder` (work folders aside; timing fields of contracts removed)."""
    prints = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or relative.startswith((".work/", ".tokenize/")):
            continue
        data = path.read_bytes()
        if path.name in VOLATILE:
            record = json.loads(data)
            data = json.dumps(
                {k: v for k, v in record.items() if k not in VOLATILE[path.name]}, sort_keys=True
            ).encode()
        prints[relative] = hashlib.sha256(data).hexdigest()
    return prints


def run(args: list[str], kill_after: float | None = None) -> tuple[int | None, bool, float]:
    """Run `python -m cli ARGS`; with `kill_after`, SIGKILL its process group then.

    Returns:
        (exit code or None when killed, whether it was still running at the kill, wall seconds).
    """
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        if kill_after is None:
            return proc.wait(), False, time.monotonic() - start
        try:
            code = proc.wait(timeout=kill_after)
            return code, False, time.monotonic() - start
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, True, time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def chaos(name: str, command: list[str], output_flag: str, work: Path, trials: int, rng: random.Random) -> int:
    """Clean run, then `trials` kill-and-rerun rounds; print each and return how many reruns were identical."""
    clean_dir = work / f"{name}-clean"
    code, _, window = run([*command, output_flag, str(clean_dir)])
    if code != 0:
        raise SystemExit(f"the clean {name} run failed with exit code {code}")
    reference = fingerprint(clean_dir)
    print(f"{name}: clean run {window:.1f} s, {len(reference)} output files")
    identical = 0
    for trial in range(trials):
        moment = rng.uniform(0.02, 0.98) * window
        out = work / f"{name}-{trial}"
        _, killed, _ = run([*command, output_flag, str(out)], kill_after=moment)
        code, _, rerun_s = run([*command, output_flag, str(out)])
        same = code == 0 and fingerprint(out) == reference
        identical += same
        when = f"killed at {moment:5.1f} s" if killed else f"finished before the kill at {moment:.1f} s"
        print(f"  trial {trial}: {when}; rerun exit {code} in {rerun_s:.1f} s: {'identical' if same else 'DIFFERENT'}")
        shutil.rmtree(out, ignore_errors=True)
    print(f"{name}: identical {identical}/{trials}")
    return identical


def main() -> None:
    """Parse the flags, build the inputs and run the trials."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("curate", "tokenize"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="fineforge-chaos-") as tmp:
        work = Path(tmp)
        if args.only in (None, "curate"):
            write_demo_crawl(work / "crawl")
            chaos("curate", ["curate", "--input", str(work / "crawl"), "--workers", "2"], "--output", work,
                  args.trials, rng)  # fmt: skip
        if args.only in (None, "tokenize"):
            docs = work / "docs.jsonl"
            docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(12_000)))
            command = ["tokenize", "--input", str(docs), "--workers", "2", "--shard-tokens", "200000"]
            chaos("tokenize", command, "--output", work, args.trials, rng)


if __name__ == "__main__":
    main()
