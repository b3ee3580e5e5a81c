"""The suite's download path over real HTTP on loopback: a mirror variable, the pin check (a wrong file leaves
nothing behind), the cache in FINEFORGE_HOME/evals/, and one-line errors offline or without a known source."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from model.gpt2 import GPT, config_from_preset
from tests.test_eval_suite import RECORDS
from trainer.checkpoint import save_checkpoint
from trainer.evals import data as eval_data
from trainer.evals.data import Source, content_digest


class CountingHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        CountingHandler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for task in ("arc_easy", "hellaswag", "piqa"):
        (site / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS[task]))
    CountingHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FINEFORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(config_from_preset("tiny"))
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "step": 1}
    return save_checkpoint(tmp_path_factory.mktemp("run"), state, keep=1)


def suite(checkpoint, tasks):
    return CliRunner().invoke(app, ["eval", "suite", "--checkpoint", str(checkpoint), "--tasks", tasks])


def test_mirror_download_is_cached_once(server, home, checkpoint, monkeypatch):
    site, url = server
    monkeypatch.setenv("FINEFORGE_ARC_EASY_URL", f"{url}/arc_easy.jsonl")
    for _ in range(2):
        result = suite(checkpoint, "arc_easy")
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1].startswith(f"{'arc_easy':<16}{2:>7}")
    assert CountingHandler.requests == ["/arc_easy.jsonl"]
    assert (home / "evals" / "arc_easy.jsonl").read_bytes() == (site / "arc_easy.jsonl").read_bytes()


def test_pinned_download_checks_the_bytes(server, home, checkpoint, monkeypatch):
    site, url = server
    body = (site / "piqa.jsonl").read_bytes()
    pinned = Source(f"{url}/piqa.jsonl", "jsonl", ("sha256", hashlib.sha256(body).hexdigest()))
    monkeypatch.setitem(eval_data.SOURCES, "piqa", pinned)
    result = suite(checkpoint, "piqa")
    assert result.exit_code == 0, result.output
    assert (home / "evals" / "piqa.jsonl").read_bytes() == body


def test_a_mirror_serving_another_file_leaves_nothing(server, home, checkpoint, monkeypatch):
    _, url = server
    monkeypatch.setenv("FINEFORGE_HELLASWAG_URL", f"{url}/hellaswag.jsonl")
    result = suite(checkpoint, "hellaswag")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(
        f"error: hellaswag: {url}/hellaswag.jsonl is not the published file (git-blob-sha1"
    )
    assert not (home / "evals").exists() or not any((home / "evals").iterdir())


def test_offline_and_unknown_sources_are_one_line_errors(home, checkpoint, monkeypatch):
    monkeypatch.setenv("FINEFORGE_HELLASWAG_URL", "http://127.0.0.1:9/hellaswag_val.jsonl")  # discard port: refused
    result = suite(checkpoint, "hellaswag")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: hellaswag: cannot download http://127.0.0.1:9/hellaswag_val.jsonl")
    assert "--data-dir DIR" in result.output and "FINEFORGE_HELLASWAG_URL" in result.output
    result = suite(checkpoint, "mmlu")
    assert result.exit_code == 2
    assert result.output.startswith("error: mmlu: no verified download is known; save the cais/mmlu all test split")
    assert not (home / "evals").exists()


def test_git_blob_pin_is_gits_own_object_id(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"ctx": "x"}\n')
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert content_digest(path.read_bytes(), "git-blob-sha1") == git
