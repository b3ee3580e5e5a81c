"""`fineforge curate --executor ray --ray-address ADDRESS` on an existing Ray cluster (a head of the test's own).

The cluster run must give byte-identical output to the local executor with the same task count, and its tasks
must run in the head's worker processes (their log files appear in the head's temp dir), not in a Ray instance
the driver started for itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from orchestration.demo_data import write_demo_crawl
from tests.conftest import REPO_ROOT
from tests.ray_head import local_ray_head

# No URL filter: its block lists take ~10 s to load in every task, and it is tested elsewhere.
FAST_CONFIG = "filters:\n  url:\n    enabled: false\n"


def _curate(crawl: Path, out: Path, config: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "cli", "curate", "--input", str(crawl), "--output", str(out), "--workers", "2",
           "--config", str(config), *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"curate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads((out / "summary.json").read_text())


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_existing_ray_cluster_gives_the_local_output(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    write_demo_crawl(tmp_path / "crawl")
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_CONFIG)
    local = _curate(tmp_path / "crawl", tmp_path / "local", config)
    with local_ray_head(cpus=2) as head:
        on_ray = _curate(
            tmp_path / "crawl", tmp_path / "ray", config, "--executor", "ray", "--ray-address", head.address,
            env=head.env,
        )  # fmt: skip
        assert head.worker_logs(), "no task ran in the head's worker processes"
    assert on_ray["executor"] == "ray" and local["executor"] == "local"
    assert on_ray["run_id"] == local["run_id"] and on_ray["tasks"] == local["tasks"] == 2
    assert on_ray["stages"] == local["stages"] and on_ray["docs_out"] == local["docs_out"] > 0
    for folder in ("data", "rejects", "quarantine"):
        assert _files(tmp_path / "ray" / folder) == _files(tmp_path / "local" / folder), folder


def test_an_unreachable_ray_cluster_is_a_clear_error(tmp_path: Path) -> None:
    from cli import app
    from orchestration.server import free_port

    write_demo_crawl(tmp_path / "crawl")
    address = f"127.0.0.1:{free_port()}"
    args = ["curate", "--input", str(tmp_path / "crawl"), "--output", str(tmp_path / "out"), "--executor", "ray"]
    result = CliRunner().invoke(app, [*args, "--ray-address", address])
    assert result.exit_code == 2, result.output
    assert f"cannot connect to the Ray cluster at {address}: nothing answers" in result.output
    result = CliRunner().invoke(app, [*args, "--ray-address", "head-without-port"])
    assert result.exit_code == 2 and "is not HOST:PORT" in result.output


def test_ray_address_needs_the_ray_executor(tmp_path: Path) -> None:
    from cli import app
    from flows import CurateParams

    result = CliRunner().invoke(
        app, ["curate", "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--ray-address", "h:6379"]
    )
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output
    with pytest.raises(ValidationError, match="ray_address is set but the executor is 'local'"):
        CurateParams(inputs=[str(tmp_path)], ray_address="h:6379")
    assert CurateParams(inputs=[str(tmp_path)], executor="ray", ray_address="h:6379").ray_address == "h:6379"
