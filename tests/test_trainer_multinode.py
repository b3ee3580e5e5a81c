"""Multi-node training on one machine: two torchrun "nodes" train exactly like one node with two processes.

Each node is its own `torchrun --nnodes 2 --node-rank R --nproc-per-node 1` (the command README gives for
several machines), rendezvousing on 127.0.0.1; the reference is `--nproc 2` on one node. Same global batch,
same ranks, so the losses must agree step for step. The shards come from the built-in demo texts, so the test
runs without the shared corpora.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts
from orchestration.server import free_port
from pipelines.tokenize import run_tokenize
from tests.conftest import REPO_ROOT
from tests.trainer_helpers import run_trainer, step_losses, trainer_cmd, trainer_env

STEPS = 12
BATCH = ["--batch-tokens", "256"]  # 2 ranks x 2 micro steps x 2 sequences x 32 tokens


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory) -> Path:
    """manifest.json of token shards made from 400 demo articles."""
    folder = tmp_path_factory.mktemp("multinode")
    docs = folder / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(400)))
    run_tokenize([str(docs)], folder / "shards", shard_tokens=50_000, val_tokens=4096)
    return folder / "shards" / "manifest.json"


def _node(node_rank: int, port: int, flags: list[str], log: Path) -> subprocess.Popen:
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--nnodes", "2", "--node-rank", str(node_rank), "--nproc-per-node", "1",
           "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "trainer", *flags]  # fmt: skip
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env=trainer_env(), stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_nodes_train_like_one_node_with_two_processes(demo_shards: Path, tmp_path: Path) -> None:
    one_node, two_nodes = tmp_path / "one_node", tmp_path / "two_nodes"
    run_trainer(trainer_cmd(demo_shards, one_node, STEPS, *BATCH, "--nproc", "2"))

    flags = trainer_cmd(demo_shards, two_nodes, STEPS, *BATCH)[3:]  # the flags after `python -m trainer`
    port = free_port()
    logs = [tmp_path / f"node{r}.log" for r in range(2)]
    nodes = [_node(rank, port, flags, logs[rank]) for rank in range(2)]
    try:
        codes = [node.wait(timeout=600) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert codes == [0, 0], "\n".join(log.read_text()[-2000:] for log in logs)

    a, b = step_losses(one_node), step_losses(two_nodes)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-6), f"step {step}: one node {a[step]}, two nodes {b[step]}"
    runs = [json.loads((d / "run.json").read_text()) for d in (one_node, two_nodes)]
    assert [r["world_size"] for r in runs] == [2, 2] and {r["status"] for r in runs} == {"completed"}
