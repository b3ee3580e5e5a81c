"""The decontaminate and pii stages resume like the rest of curate and do not depend on the worker count.

Input: two JSONL files of built-in articles (so two tasks), some carrying planted emails and public IPs, some a
planted eval passage from a HellaSwag-format file the test writes and indexes. A reference run with one worker,
a run with two workers, and a run killed with SIGKILL at a random point of its work and then rerun must publish
byte-identical `data/` with the same counts for both stages.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts
from pipelines.curate.decontam_index import EvalSet, build_index
from tests.test_curate_resume import curate_cmd, tree_bytes

SECRETS = ["jane.doe@gmail.com", "93.184.216.34", "2606:4700:4700::1111", "ops@wikipedia.org"]


def write_inputs(root: Path) -> tuple[Path, Path]:
    """Two crawl files and a config with decontamination on; returns (crawl folder, config)."""
    texts = demo_texts(60, seed=41)
    eval_texts = demo_texts(10, seed=42)
    items = [{"ctx": t.split("\n\n")[0], "endings": ["a.", "b.", "c.", "d."], "label": 0} for t in eval_texts]
    (root / "hellaswag.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    build_index([EvalSet("hellaswag", root / "hellaswag.jsonl")], root / "eval.idx")
    crawl = root / "crawl"
    crawl.mkdir()
    for part in (0, 1):
        lines = []
        for i in range(part, len(texts), 2):
            text = texts[i]
            if i % 4 == 0:
                text = text.replace(". ", f". Contact {SECRETS[i % 4]} or {SECRETS[(i + 1) % 4]} now. ", 1)
            if i % 6 == 1:
                text += "\n\n" + items[i % 10]["ctx"] + " a."
            lines.append(json.dumps({"id": f"d{i:03d}", "url": f"https://site.example.net/{i}", "text": text}))
        (crawl / f"part{part}.jsonl").write_text("\n".join(lines) + "\n")
    config = root / "recipe.yaml"
    config.write_text(
        "run:\n  task_mb: 0.01\nfilters:\n  url:\n    enabled: false\n"
        f"decontaminate:\n  enabled: true\n  index: {root / 'eval.idx'}\n"
    )
    return crawl, config


@pytest.mark.slow
def test_workers_and_kill_9_give_identical_data(tmp_path: Path) -> None:
    crawl, config = write_inputs(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def run(out: Path, *extra: str) -> dict:
        done = subprocess.run(curate_cmd(crawl, out, config) + list(extra), capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((out / "summary.json").read_text())

    began = time.monotonic()
    reference = run(tmp_path / "ref")
    work_s = time.monotonic() - began
    stages = {s["name"]: s for s in reference["stages"]}
    assert stages["decontaminate"]["dropped"] == {"contaminated:hellaswag": 10}
    assert stages["pii"]["modified"] == 15 and stages["pii"]["replacements"] == {"emails": 15, "ip_addresses": 15}
    data = tree_bytes(tmp_path / "ref" / "data")
    assert data and not any(s.encode() in b for b in data.values() for s in SECRETS)

    two = run(tmp_path / "two", "--workers", "2")
    assert tree_bytes(tmp_path / "two" / "data") == data
    assert two["stages"] == reference["stages"]

    seed = random.randrange(2**32)
    kill_after = random.Random(seed).uniform(0.2, 0.9) * work_s
    proc = subprocess.Popen(
        curate_cmd(crawl, tmp_path / "killed", config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    resumed = run(tmp_path / "killed")
    context = f"seed {seed}, killed after {kill_after:.1f}s of {work_s:.1f}s"
    assert tree_bytes(tmp_path / "killed" / "data") == data, context
    assert resumed["stages"] == reference["stages"], context
