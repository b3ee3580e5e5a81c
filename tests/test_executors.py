"""Scale-out executors: curate on a local Ray instance with 2 CPUs, and the Slurm executor's settings.

The Ray run must give the same documents as the demo ground truth (the same recipe, other processes), through
datatrove's RayPipelineExecutor for every stage, dedup sub-stages included.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from orchestration.demo_data import write_demo_crawl
from pipelines.curate import run_curate
from pipelines.curate.config import CurateConfig
from pipelines.curate.executors import SlurmSettings, WaitingSlurmExecutor, make_executor


@pytest.mark.slow
def test_curate_on_local_ray_with_two_cpus(tmp_path: Path) -> None:
    import ray  # the `ray` extra, which `make install` installs: a broken install must fail, not skip

    truth = write_demo_crawl(tmp_path / "crawl")
    # No URL filter here: its block lists take ~10 s to load in each Ray task, and it is tested elsewhere.
    cfg = CurateConfig.model_validate({"filters": {"url": {"enabled": False}}})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_curate(cfg, [str(tmp_path / "crawl")], tmp_path / "out", workers=2, executor="ray")
    finally:
        ray.shutdown()
    assert summary["executor"] == "ray" and summary["tasks"] == 2
    expected = {c["url"] for c in truth["cases"] if c["expect"] == "kept" or c["kind"] == "blocked_url"}
    data = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    assert set(data["url"]) == expected and data.height == summary["docs_out"] == len(expected)
    work = tmp_path / "out" / ".work"
    logs = [p.name for step in summary["steps"] for p in (work / f"{step['name']}-{step['key']}" / "logs").iterdir()]
    assert sorted(logs) == sorted(
        ["filter", "exact_signature", "exact_find", "exact_filter"]
        + ["minhash_signature", "minhash_buckets", "minhash_cluster", "minhash_filter"]
    )


def test_slurm_executor_carries_the_settings(tmp_path: Path) -> None:
    settings = SlurmSettings(partition="cpu-long", time="01:00:00", cpus_per_task=2, poll_s=5)
    executor = make_executor([], "filter", 8, kind="slurm", workers=4, logs_root=tmp_path, slurm=settings)
    assert isinstance(executor, WaitingSlurmExecutor)
    assert (executor.partition, executor.time, executor.cpus_per_task, executor.tasks) == (
        "cpu-long",
        "01:00:00",
        2,
        8,
    )
    assert executor.job_name == "fineforge-filter" and executor.poll_s == 5
    assert executor.logging_dir.path == str(tmp_path / "filter")
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor([], "x", 1, kind="spark", workers=1, logs_root=tmp_path)  # type: ignore[arg-type]
