"""What `fineforge curate` prints (issue 20): progress and one summary table; datatrove's log goes to a file.

The real CLI runs in a subprocess on the demo crawl (141 planted documents), as a new user runs it. Before this
was fixed it printed 555 lines there: datatrove's pipeline and stats blocks, the stage table twice and a raw JSON
line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestration.demo_data import write_demo_crawl

FINEFORGE = Path(sys.executable).with_name("fineforge")
DATATROVE_MARKS = ("PIPELINE", "📉📉📉 Stats", "datatrove.executor", "| INFO ")  # its pipeline and stats blocks


def curate(crawl: Path, out: Path, *extra: str) -> list[str]:
    """Run `fineforge curate` on `crawl` into `out`; return the lines it printed (stdout and stderr)."""
    cmd = [str(FINEFORGE), "curate", "--input", str(crawl), "--output", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).splitlines()


def test_curate_prints_progress_and_one_summary_table(tmp_path: Path) -> None:
    crawl = tmp_path / "crawl"
    write_demo_crawl(crawl)
    out = tmp_path / "curated"
    lines = curate(crawl, out)
    text = "\n".join(lines)
    assert len(lines) < 40, text
    assert sum(line.startswith("stage ") for line in lines) == 1, text  # one table header
    assert sum(line.startswith("minhash_dedup ") for line in lines) == 1, text  # one row per stage
    assert not any(mark in text for mark in DATATROVE_MARKS), text
    assert not any(line.lstrip().startswith("{") for line in lines), text  # no raw JSON
    assert "curate 100.0%" in text and "documents in, 100 kept" in text
    log = out / "curate.log"
    assert f"datatrove log: {log}" in lines
    assert all(mark in log.read_text(encoding="utf-8") for mark in ("PIPELINE", "Stats")), "datatrove's log"

    # --verbose shows datatrove's log on the terminal (a small run: 5 documents) and writes no log file.
    verbose_out = tmp_path / "verbose"
    verbose = "\n".join(curate(crawl / "docs.jsonl", verbose_out, "--verbose", "--limit", "5"))
    assert "PIPELINE" in verbose and "Stats" in verbose and "stage " in verbose
    assert not (verbose_out / "curate.log").exists()
