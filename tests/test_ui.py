"""The Prefect UI in headless Chromium: what the deployments page, a curate run's artifact pages and every flow's run
form show.

The UI is a single-page app: `--virtual-time-budget` lets its scripts fetch from the API, then `--dump-dom`
prints the rendered document, whose visible text the tests read (no Playwright, whose browser download fails
offline). The deployments page must name every served deployment; the artifact pages of the curate run must
show the funnel and the drops with the numbers of its summary.json; each run form must show every parameter
description whole. Screenshots of the same pages go to
$FINEFORGE_SCREENSHOTS when set, for a human to look at.
"""

from __future__ import annotations

import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import ChainRun, deployment_names

pytestmark = [pytest.mark.server, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
         "--virtual-time-budget=15000"]  # fmt: skip


class VisibleText(HTMLParser):
    """The text nodes of a document outside <script>, <style> and <template>, stripped, in document order."""

    HIDDEN = {"script", "style", "template", "noscript"}

    def __init__(self, html: str):
        super().__init__()
        self.texts: list[str] = []
        self._hidden = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.texts.append(data.strip())


def _chromium(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium; .ci/run installs it)")
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *mode, url]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


def rendered_text(url: str, profile: Path, name: str) -> list[str]:
    """The visible text of `url` once the UI has rendered it (and a screenshot to $FINEFORGE_SCREENSHOTS)."""
    texts = VisibleText(_chromium(url, profile, "--dump-dom").stdout).texts
    keep = os.environ.get("FINEFORGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        _chromium(url, profile, f"--screenshot={Path(keep) / f'{name}.png'}")
    return texts


def _number(value: object) -> set[str]:
    """How the UI may print a number: as is, or with thousands separators."""
    return {str(value), f"{value:,}"} if isinstance(value, int) else {str(value)}


def _shows_row(texts: list[str], cells: list[object]) -> bool:
    """Whether the cells appear as consecutive text nodes somewhere on the page (one table row)."""
    for start in range(len(texts) - len(cells) + 1):
        if all(texts[start + i] in _number(cell) for i, cell in enumerate(cells)):
            return True
    return False


def _served_deployments(url: str) -> dict[str, str]:
    """Deployment name -> the name of the flow it runs, as the server has them."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(url) as client:
        flows = {flow.id: flow.name for flow in client.read_flows()}
        return {d.name: flows[d.flow_id] for d in client.read_deployments()}


def test_deployments_page_lists_every_deployment(served, tmp_path):
    """The deployments page counts the served deployments and shows a row for each: its name, its flow, Ready."""
    url, _, _ = served
    deployments = _served_deployments(url)
    assert set(deployments) == deployment_names()
    texts = rendered_text(f"{url.removesuffix('/api')}/deployments", tmp_path / "profile", "deployments")
    assert f"{len(deployments)} Deployments" in texts, texts
    for name, flow in deployments.items():
        assert _shows_row(texts, [name, flow, "Ready"]), f"deployments page lacks {name} ({flow}); its text: {texts}"


def _artifact_page(chain: ChainRun, key: str, profile: Path) -> list[str]:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with SyncPrefectClient(chain.url) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact with key {key}"
    return rendered_text(f"{chain.url.removesuffix('/api')}/artifacts/artifact/{found[0].id}", profile, key)


def test_curate_artifact_pages_show_the_funnel(served_chain: ChainRun, tmp_path):
    """The funnel artifact page shows each stage with its documents in, out and dropped; the drops page each
    reason with its count, the numbers of summary.json."""
    summary = served_chain.summary
    funnel = _artifact_page(served_chain, f"curate-funnel-{served_chain.dataset}", tmp_path / "funnel")
    for stage in summary["stages"]:
        row = [stage["name"], stage["docs_in"], stage["docs_out"], sum(stage["dropped"].values())]
        assert _shows_row(funnel, row), f"funnel page lacks the row {row}; its text: {funnel}"

    drops = _artifact_page(served_chain, f"curate-drops-{served_chain.dataset}", tmp_path / "drops")
    expected = [[s["name"], reason, n] for s in summary["stages"] for reason, n in s["dropped"].items() if n]
    assert expected and summary["quarantined"], "the demo crawl plants drops and a broken line"
    for row in expected + [["read", "quarantined", summary["quarantined"]]]:
        assert _shows_row(drops, row), f"drops page lacks the row {row}; its text: {drops}"


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
    description as an HTML tag and drops it ("FINEFORGE_HOME/datasets//."), so placeholders are `{name}`; and
    no optional field opens on its `null` branch, which shows 'Property is type "None"' instead of an input."""
    from prefect.client.orchestration import SyncPrefectClient

    url, _, _ = served
    ui = url.removesuffix("/api")
    with SyncPrefectClient(url) as client:
        deployments = client.read_deployments()
    assert {d.name for d in deployments} == deployment_names()
    for deployment in deployments:
        texts = rendered_text(f"{ui}/deployments/deployment/{deployment.id}/run", tmp_path / deployment.name, "form")
        text = " ".join(texts)
        assert f"Create Flow Run for Deployment: {deployment.name}" in text, text[:300]
        squeezed = "".join(text.split())  # markup such as <code> splits a description into several text nodes
        for description in _form_descriptions(deployment.parameter_openapi_schema):
            assert "".join(description.split()) in squeezed, f"{deployment.name}: {description!r} not shown whole"
        assert "//" not in text.replace("://", ""), f"{deployment.name}: a placeholder vanished"
        assert 'Property is type "None"' not in text, f"{deployment.name}: an optional field opens on None"
