"""Headless Chromium screenshots of the Prefect UI: the deployments page and a curate run's artifacts.

Chromium's own `--screenshot` mode is enough (no Playwright download, which fails offline); the UI is a
single-page app, so `--virtual-time-budget` lets its scripts fetch from the API before the capture. Copies go
to $FINEFORGE_SCREENSHOTS when set, for a human to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")


def _screenshot(url: str, out: Path, profile: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium; .ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]  # fmt: skip
    cmd = [
        str(CHROMIUM),
        *flags,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        f"--screenshot={out}",
        url,
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert out.exists() and out.stat().st_size > 20_000, f"blank or missing screenshot of {url}"
    keep = os.environ.get("FINEFORGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    return out


def test_deployments_page(served, tmp_path):
    """The deployments page lists the served FineForge deployments."""
    url, _, _ = served
    ui = url.removesuffix("/api")
    _screenshot(f"{ui}/deployments", tmp_path / "deployments.png", tmp_path / "profile")


def test_curate_run_artifacts_page(served, tmp_path):
    """The artifact pages of a finished curate run: the funnel and the drops by reason."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    url, _, _ = served
    keys = ["curate-funnel-e2e", "curate-drops-e2e"]
    with SyncPrefectClient(url) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    if not found:
        pytest.skip("needs the curate run of tests/test_flows.py::test_curate_tokenize_event_trains")
    ui = url.removesuffix("/api")
    for artifact in {a.key: a for a in found}.values():
        _screenshot(
            f"{ui}/artifacts/artifact/{artifact.id}", tmp_path / f"{artifact.key}.png", tmp_path / artifact.key
        )
