"""Headless Chromium on the Prefect UI: the deployments page, a curate run's artifacts and every flow's run form.

Chromium's own `--screenshot` and `--dump-dom` modes are enough (no Playwright download, which fails offline); the
UI is a single-page app, so `--virtual-time-budget` lets its scripts fetch from the API before the capture. Copies
go to $FINEFORGE_SCREENSHOTS when set, for a human to look at.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")


def _chromium(url: str, profile: Path, mode: str) -> str:
    """Run headless Chromium on `url` in `mode` (`--screenshot=FILE` or `--dump-dom`); return its stdout."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium; .ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]  # fmt: skip
    cmd = [str(CHROMIUM), *flags, f"--user-data-dir={profile}", "--virtual-time-budget=15000", mode, url]
    return subprocess.run(cmd, check=True, capture_output=True, timeout=120, text=True).stdout


def _screenshot(url: str, out: Path, profile: Path) -> Path:
    _chromium(url, profile, f"--screenshot={out}")
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


def _visible_text(dom: str) -> str:
    """The text a reader sees in a dumped DOM: scripts and styles dropped, tags removed, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def _form_descriptions(schema: dict) -> list[str]:
    """Descriptions the run form shows: each parameter's, and each field's of a parameter that is a model.

    Backticks are dropped: the UI renders descriptions as Markdown.
    """
    definitions = schema.get("definitions", {})
    shown = []
    for prop in schema.get("properties", {}).values():
        shown.append(prop.get("description", ""))
        if ref := prop.get("$ref"):
            shown += [field.get("description", "") for field in definitions[ref.split("/")[-1]]["properties"].values()]
    return [d.replace("`", "") for d in shown if d]


def test_every_flow_form_shows_its_descriptions_whole(served, tmp_path):
    """Every deployment's run form shows each parameter description in full: the UI renders `<name>` in a
    description as an HTML tag and drops it ("FINEFORGE_HOME/datasets//."), so placeholders are `{name}`."""
    from prefect.client.orchestration import SyncPrefectClient

    url, _, _ = served
    ui = url.removesuffix("/api")
    with SyncPrefectClient(url) as client:
        deployments = client.read_deployments()
    assert len(deployments) >= 6
    for deployment in deployments:
        dom = _chromium(f"{ui}/deployments/deployment/{deployment.id}/run", tmp_path / deployment.name, "--dump-dom")
        text = _visible_text(dom)
        assert f"Create Flow Run for Deployment: {deployment.name}" in text, text[:300]
        squeezed = "".join(text.split())  # markup such as <code> leaves spaces that the description has not
        for description in _form_descriptions(deployment.parameter_openapi_schema):
            assert "".join(description.split()) in squeezed, f"{deployment.name}: {description!r} not shown whole"
        assert "//" not in text.replace("://", ""), f"{deployment.name}: a placeholder vanished"
