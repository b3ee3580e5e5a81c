"""The report server: HTML reports under the FineForge home over HTTP, and nothing else; report links."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from orchestration.reports import ReportServer, report_link


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A FineForge home with a report, data beside it, a work folder and a file outside the home."""
    root = tmp_path / "home"
    curated = root / "datasets" / "web" / "curated"
    (curated / "data").mkdir(parents=True)
    (curated / "report.html").write_text("<html><section id='funnel'>funnel</section></html>")
    (curated / "data" / "000.parquet").write_bytes(b"PAR1")
    (curated / "summary.json").write_text("{}")
    (curated / ".work").mkdir()
    (curated / ".work" / "old.html").write_text("<html>work</html>")
    (root / "runs" / "ablate").mkdir(parents=True)
    (root / "runs" / "ablate" / "ablation report.html").write_text("<html>ablation</html>")
    (tmp_path / "secret.html").write_text("<html>outside</html>")
    (curated / "escape.html").symlink_to(tmp_path / "secret.html")
    return root


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_serves_reports_and_nothing_else(home: Path) -> None:
    server = ReportServer(home).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = _get(f"{server.url}/datasets/web/curated/report.html")
        assert status == 200 and "id='funnel'" in body
        status, body = _get(f"{server.url}/runs/ablate/ablation%20report.html")
        assert status == 200 and "ablation" in body
        refused = ["data/000.parquet", "summary.json", ".work/old.html", "escape.html", ""]
        outside = ["../secret.html", "%2e%2e/secret.html", "datasets/none.html", "datasets/web/../../../secret.html"]
        for path in [f"datasets/web/curated/{p}" for p in refused] + outside:
            assert _get(f"{server.url}/{path}")[0] == 404, path
        status, index = _get(server.url + "/")
        assert status == 200
        assert "datasets/web/curated/report.html" in index and "ablation%20report.html" in index
        assert ".work" not in index and "escape.html" not in index
    finally:
        server.stop()


def test_odd_paths_get_an_answer_and_odd_files_leave_the_index_up(home: Path) -> None:
    """A NUL byte, a path over 4 KB and a name over 255 bytes are bad requests (400); a symlink loop, a
    self-pointing `*.html` or a dangling one is not listed and not found (404); the index stays up (issue 20, 8)."""
    curated = home / "datasets" / "web" / "curated"
    (curated / "self.html").symlink_to(curated / "self.html")
    (curated / "ping.html").symlink_to(curated / "pong.html")
    (curated / "pong.html").symlink_to(curated / "ping.html")
    (curated / "dangling.html").symlink_to(curated / "missing.html")
    (home / "loop").symlink_to(home)
    server = ReportServer(home).start()
    try:
        bad = [
            "report%00.html",
            "datasets/web/curated/report.html%00.txt",
            "a/" * 2100 + "r.html",
            "x" * 256 + ".html",
        ]
        for path in bad:
            assert _get(f"{server.url}/{path}")[0] == 400, path[:60]
        for name in ["self.html", "ping.html", "dangling.html", "report.html/x.html"]:
            assert _get(f"{server.url}/datasets/web/curated/{name}")[0] == 404, name
        status, index = _get(server.url + "/")
        assert status == 200 and "datasets/web/curated/report.html" in index
        assert not any(name in index for name in ["self.html", "ping.html", "pong.html", "dangling.html"])
    finally:
        server.stop()


def test_report_link_points_at_the_server_inside_the_home(home: Path, tmp_path: Path) -> None:
    report = home / "datasets" / "web" / "curated" / "report.html"
    base = "http://reports.example:4201"
    assert report_link(report, base, home) == f"{base}/datasets/web/curated/report.html"
    assert report_link(home / "runs/ablate/ablation report.html", base + "/", home).endswith("ablation%20report.html")
    assert report_link(report, None, home) == report.as_uri()
    assert report_link(tmp_path / "secret.html", base, home) == (tmp_path / "secret.html").as_uri()


def test_a_taken_port_is_an_error(home: Path) -> None:
    first = ReportServer(home).start()
    try:
        with pytest.raises(OSError):
            ReportServer(home, port=first.port)
    finally:
        first.stop()
