"""In the browser: from a curate run's report artifact page in the Prefect UI, one link to the report's funnel.

Headless Chromium renders the artifact page (the UI is a single-page app: `--virtual-time-budget` lets it fetch
from the API), the test takes the report link out of the rendered page and opens it as a browser would, then
finds the funnel section with the run's numbers in the report. Runs the `curate` deployment of the session's
`fineforge serve` itself (without the URL filter, whose block lists are slow to load), so it needs no other test.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")


def _dom(url: str, profile: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000", "--dump-dom"]  # fmt: skip
    proc = subprocess.run([str(CHROMIUM), *flags, url], check=True, capture_output=True, text=True, timeout=120)
    return proc.stdout


def test_report_artifact_links_to_the_served_report(served, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.deployments import run_deployment

    from orchestration.demo_data import write_demo_crawl
    from orchestration.reports import REPORTS_ENV

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium; .ci/run installs it)")
    url, home, env = served
    write_demo_crawl(tmp_path / "crawl")
    config = tmp_path / "fast.yaml"
    config.write_text("filters:\n  url:\n    enabled: false\n")
    params = {"params": {"dataset": "uireport", "inputs": [str(tmp_path / "crawl")], "config": str(config)},
              "then_tokenize": False}  # fmt: skip
    run = run_deployment("curate/curate", parameters=params, timeout=600, poll_interval=2)
    assert run.state.is_completed(), run.state
    with SyncPrefectClient(url) as client:
        key = ArtifactFilterKey(any_=["curate-report-uireport"])
        artifact = client.read_artifacts(artifact_filter=ArtifactFilter(key=key))[0]
    report_url = f"{env[REPORTS_ENV]}/datasets/uireport/curated/report.html"
    assert artifact.data == f"[Data-quality report: uireport]({report_url})"  # a markdown link with a title

    page = _dom(f"{url.removesuffix('/api')}/artifacts/artifact/{artifact.id}", tmp_path / "ui")
    links = re.findall(r'href="(http://127\.0\.0\.1:\d+/[^"]*report\.html)"', page)
    assert links == [report_url], f"the artifact page shows links {links}"
    report = _dom(links[0], tmp_path / "report")
    funnel = re.search(r'<section id="funnel-section">.*?</section>', report, re.S)
    assert funnel, "no funnel section in the served report"
    summary = json.loads((home / "datasets/uireport/curated/summary.json").read_text())
    assert f"{summary['docs_in']:,}" in funnel.group(0) and f"{summary['docs_out']:,}" in funnel.group(0)
