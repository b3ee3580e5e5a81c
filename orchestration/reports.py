"""HTML reports over HTTP, from where the UI runs, so that a report artifact opens in one click on any machine.

A `file://` link in a Prefect artifact does not open from the UI's http page, and on another machine the file
is not there. `fineforge server` and `fineforge up` therefore also serve the reports under the FineForge home
(curate reports, and any other `*.html` FineForge writes there, such as ablation reports) read-only over HTTP,
bound to 127.0.0.1 by default like the server, on the UI port + 1. Flows learn the address from
`FINEFORGE_REPORTS_URL` (`fineforge up` sets it for the runs it serves; workers get it with
`fineforge worker --reports-url`) and publish `<reports url>/<path under the home>` as the report link; with
no address, or for a report outside the home, the link stays a `file://` URL.

What is served: regular `*.html` files under the home, found by their path below it, and an index page of
them; nothing else (no data, no directory listings, no dot folders such as `.work`, no path that resolves
outside the home). A request whose path the operating system could not take (a NUL byte, over 4096 bytes, a
name over 255 bytes) gets 400, anything not servable 404, and the index skips what cannot be read (a symlink
loop, a file that vanished): one odd file under the home must not take the page down for everyone. The server
is Python's `ThreadingHTTPServer` in a daemon thread: a report is one self-contained file of a few hundred KB,
so no web framework is needed.
"""

from __future__ import annotations

import contextlib
import html
import os
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from orchestration.server import public_host
from pipelines.common.home import fineforge_home

REPORTS_ENV = "FINEFORGE_REPORTS_URL"
REPORT_SUFFIX = ".html"
INDEX_LIMIT = 1000  # reports listed on the index page
MAX_PATH_BYTES = 4096  # Linux PATH_MAX: a longer request path cannot name a file
MAX_NAME_BYTES = 255  # Linux NAME_MAX, per path component


def reports_url_for(port: int, host: str = "127.0.0.1") -> str:
    """The base URL of a report server bound to `host:port`, e.g. `http://127.0.0.1:4201` (this machine's name
    for a server bound to every interface)."""
    return f"http://{public_host(host)}:{port}"


def report_link(path: Path, base_url: str | None = None, home: Path | None = None) -> str:
    """The link to publish for a report: over HTTP when a report server is known and serves it, else file://.

    Args:
        path: the report file.
        base_url: the report server (default `FINEFORGE_REPORTS_URL`).
        home: the folder the server serves (default the FineForge home).

    Returns:
        `<base_url>/<path relative to home>` or `file:///...`.
    """
    path = Path(path).resolve()
    base_url = base_url if base_url is not None else os.environ.get(REPORTS_ENV)
    home = (home or fineforge_home()).resolve()
    if base_url and path.is_relative_to(home) and servable(home, path):
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(path.relative_to(home).as_posix())}"
    return path.as_uri()


def servable(root: Path, path: Path) -> bool:
    """Whether the report server may send `path`: an `.html` regular file under `root`, outside dot folders.

    Args:
        root: the served folder (resolved).
        path: the requested file (resolved).
    """
    if not path.is_relative_to(root) or path.suffix != REPORT_SUFFIX:
        return False
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        return False
    return path.is_file()


def malformed(relative: str) -> bool:
    """Whether a requested path cannot name a file at all: a NUL byte, over `MAX_PATH_BYTES`, or a component over
    `MAX_NAME_BYTES` (the operating system would refuse it with an error instead of "not found")."""
    raw = relative.encode("utf-8", "surrogateescape")
    return b"\0" in raw or len(raw) > MAX_PATH_BYTES or any(len(name) > MAX_NAME_BYTES for name in raw.split(b"/"))


def served_file(root: Path, path: Path) -> tuple[Path, float] | None:
    """The resolved report file behind `path` and its modification time, or None when the server may not send it
    or it cannot be read (a symlink loop, a file gone meanwhile, a name the operating system refuses).

    Args:
        root: the served folder (resolved).
        path: a path under `root`, not yet resolved.
    """
    try:
        target = path.resolve()
        return (target, target.stat().st_mtime) if servable(root, target) else None
    except (OSError, RuntimeError, ValueError):  # pathlib raises RuntimeError for a symlink loop
        return None


def find_reports(root: Path) -> list[Path]:
    """The servable reports under `root`, newest first (at most `INDEX_LIMIT`); unreadable ones are left out."""
    found = [(p, file[1]) for p in root.rglob(f"*{REPORT_SUFFIX}") if (file := served_file(root, p))]
    return [p for p, _ in sorted(found, key=lambda item: item[1], reverse=True)[:INDEX_LIMIT]]


class _Handler(BaseHTTPRequestHandler):
    root: Path  # set on the subclass the server builds

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server name
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        body, status = self._body(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/"))
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8" if status == HTTPStatus.OK else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _body(self, relative: str) -> tuple[bytes, HTTPStatus]:
        """The answer to a request for `relative` (unquoted, without its leading slash) and its status."""
        if relative == "":
            return self._index().encode("utf-8"), HTTPStatus.OK
        if malformed(relative):
            return b"not a file path\n", HTTPStatus.BAD_REQUEST
        file = served_file(self.root, self.root / relative)
        with contextlib.suppress(OSError):  # a report removed or made unreadable since it was found
            if file:
                return file[0].read_bytes(), HTTPStatus.OK
        return b"not a FineForge report\n", HTTPStatus.NOT_FOUND

    def _index(self) -> str:
        items = "".join(
            f'<li><a href="/{urllib.parse.quote(p.relative_to(self.root).as_posix())}">'
            f"{html.escape(p.relative_to(self.root).as_posix())}</a></li>"
            for p in find_reports(self.root)
        )
        return f"<!doctype html><title>FineForge reports</title><h1>FineForge reports</h1><ul>{items}</ul>"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the UI polls, and access logs would drown the server's own output."""


class ReportServer:
    """Serve the reports under `root` over HTTP in a daemon thread until `stop()`.

    Args:
        root: the folder to serve (the FineForge home).
        host: address to bind (127.0.0.1: this machine only).
        port: port to bind (0: any free port).
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        handler = type("ReportHandler", (_Handler,), {"root": Path(root).resolve()})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:4201`."""
        return reports_url_for(self.port, self.host)

    def start(self) -> ReportServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
