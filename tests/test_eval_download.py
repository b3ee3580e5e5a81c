"""The suite's download path over real HTTP on loopback. Each task's published original is written here in its
own layout (ARC, PIQA, Social IQa, WinoGrande and OpenBookQA zips, CommonsenseQA's nested JSONL, MMLU's tar of
CSVs, HellaSwag's JSONL) from this project's own records, served, pinned by its sha256, converted and scored; a
mirror variable, the cache, the shared ARC download, and one-line errors (wrong bytes, offline, an unreadable
original) that leave nothing behind."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from model.gpt2 import GPT, config_from_preset
from tests.test_eval_suite import RECORDS, write_task
from trainer.checkpoint import save_checkpoint
from trainer.evals import data as eval_data
from trainer.evals.tasks import TASKS

ALL = ",".join(TASKS)


class CountingHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        CountingHandler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def nested(record, stem):
    """A Hub record of ARC, OpenBookQA or CommonsenseQA in AI2's original nested layout."""
    choices = [
        {"text": t, "label": lab} for t, lab in zip(record["choices"]["text"], record["choices"]["label"], strict=True)
    ]
    return {
        "id": record["id"],
        "question": {"stem": record[stem], "choices": choices},
        "answerKey": record["answerKey"],
    }


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2018, 2, 1, 0, 0, 0)), text)  # same bytes every call
    return buffer.getvalue()


def with_labels(records, folder, fields):
    """PIQA's and Social IQa's layout: questions in dev.jsonl, answers one a line in dev-labels.lst."""
    questions = [{"id": f"{folder}-{i}", **{f: r[f] for f in fields}} for i, r in enumerate(records)]
    return zipped({
        f"{folder}/dev.jsonl": jsonl(questions),
        f"{folder}/dev-labels.lst": "".join(f"{r['label']}\n" for r in records),
        f"{folder}/train.jsonl": jsonl(questions[:1]),  # another split, never converted
        f"{folder}/train-labels.lst": "0\n",
    })  # fmt: skip


def mmlu_tar(records) -> bytes:
    """MMLU's data.tar: data/<split>/<subject>_<split>.csv, question, four choices and the answer letter."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        files = {f"data/test/{r['subject']}_test.csv": [r] for r in records}
        files["data/dev/anatomy_dev.csv"] = [{**records[0], "question": "Not a test question?"}]
        for name, rows in files.items():
            text = io.StringIO()
            csv.writer(text).writerows([r["question"], *r["choices"], "ABCD"[r["answer"]]] for r in rows)
            body = text.getvalue().encode()
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def originals() -> dict[str, tuple[str, bytes]]:
    """Per task the published file's name and bytes, written from the suite tests' own records."""
    arc = zipped({
        f"ARC-V1-Feb2018-2/{d}/{d}-{split}.jsonl": jsonl(nested(r, "question") for r in RECORDS[t][:n])
        for t, d in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge"))
        for split, n in (("Train", 1), ("Test", None))
    })  # fmt: skip
    return {
        "hellaswag": ("hellaswag_val.jsonl", jsonl(RECORDS["hellaswag"]).encode()),
        "arc_easy": ("ARC-V1-Feb2018.zip", arc),
        "arc_challenge": ("ARC-V1-Feb2018.zip", arc),
        "piqa": ("physicaliqa-train-dev.zip", with_labels(RECORDS["piqa"], "physicaliqa-train-dev",
                                                         ("goal", "sol1", "sol2"))),
        "siqa": ("socialiqa-train-dev.zip", with_labels(RECORDS["siqa"], "socialiqa-train-dev",
                                                       ("context", "question", "answerA", "answerB", "answerC"))),
        "winogrande": ("winogrande_1.1.zip", zipped({
            "winogrande_1.1/dev.jsonl": jsonl({"qID": f"w{i}", **r} for i, r in enumerate(RECORDS["winogrande"])),
            "winogrande_1.1/test.jsonl": jsonl({k: v for k, v in r.items() if k != "answer"}
                                               for r in RECORDS["winogrande"]),
        })),
        "openbookqa": ("OpenBookQA-V1-Sep2018.zip", zipped({
            "OpenBookQA-V1-Sep2018/Data/Main/test.jsonl": jsonl(nested(r, "question_stem")
                                                                for r in RECORDS["openbookqa"]),
        })),
        "commonsense_qa": ("dev_rand_split.jsonl",
                           jsonl(nested(r, "question") for r in RECORDS["commonsense_qa"]).encode()),
        "mmlu": ("data.tar", mmlu_tar(RECORDS["mmlu"])),
    }  # fmt: skip


@pytest.fixture()
def published(tmp_path, monkeypatch):
    """Serve every task's original on loopback and pin each task to it (members and converters as shipped)."""
    site = tmp_path / "site"
    site.mkdir()
    CountingHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(site)))
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    for task, (name, body) in originals().items():
        (site / name).write_bytes(body)
        pin = {"url": f"{url}/{name}", "sha256": hashlib.sha256(body).hexdigest(), "num_bytes": len(body)}
        monkeypatch.setitem(eval_data.SOURCES, task, dataclasses.replace(eval_data.SOURCES[task], **pin))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site, url
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


def suite(checkpoint, tasks, *args):
    return CliRunner().invoke(app, ["eval", "suite", "--checkpoint", str(checkpoint), "--tasks", tasks, *args])


def one_line_error(result, start):
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(start), result.output


def test_every_task_is_pinned_to_a_published_file_by_sha256():
    assert set(eval_data.SOURCES) == set(TASKS)
    for source in eval_data.SOURCES.values():
        assert source.url.startswith("https://") and re.fullmatch("[0-9a-f]{64}", source.sha256)
        assert source.num_bytes > 0


def test_published_originals_are_converted_and_score_as_the_hub_layout(published, home, checkpoint, tmp_path):
    site, url = published
    downloaded = suite(checkpoint, ALL, "--out", str(tmp_path / "downloaded.json"))
    assert downloaded.exit_code == 0, downloaded.output
    assert sorted(CountingHandler.requests) == sorted({f"/{name}" for name, _ in originals().values()})  # ARC once
    for task in TASKS:
        write_task(tmp_path / "hub", task, RECORDS[task])
    reference = suite(checkpoint, ALL, "--data-dir", str(tmp_path / "hub"), "--out", str(tmp_path / "hub.json"))
    assert reference.exit_code == 0, reference.output
    got, want = (json.loads((tmp_path / f).read_text()) for f in ("downloaded.json", "hub.json"))
    for task, (name, body) in originals().items():
        assert {k: got["tasks"][task][k] for k in ("n", "acc", "acc_norm")} == {
            k: want["tasks"][task][k] for k in ("n", "acc", "acc_norm")
        }, task
        source = got["tasks"][task]["source"]
        assert source["sha256"] == hashlib.sha256(body).hexdigest() and source["url"] == f"{url}/{name}"
        assert json.loads((home / "evals" / f"{task}.json").read_text()) == source
        assert want["tasks"][task]["source"] is None
    assert got["centered"] == want["centered"]
    assert sorted(p.name for p in (home / "evals").iterdir()) == sorted(
        f"{t}.{e}" for t in TASKS for e in ("json", "jsonl")
    )
    assert suite(checkpoint, ALL, "--limit", "1").exit_code == 0
    assert len(CountingHandler.requests) == len({name for name, _ in originals().values()})  # cached: no new requests


def test_a_mirror_is_checked_against_the_pin(published, home, checkpoint, monkeypatch):
    site, url = published
    (site / "copy.zip").write_bytes((site / "physicaliqa-train-dev.zip").read_bytes())
    monkeypatch.setenv("FINEFORGE_PIQA_URL", f"{url}/copy.zip")
    result = suite(checkpoint, "piqa")
    assert result.exit_code == 0, result.output
    assert CountingHandler.requests == ["/copy.zip"]
    assert json.loads((home / "evals" / "piqa.json").read_text())["url"] == f"{url}/copy.zip"


def test_a_mirror_serving_another_file_leaves_nothing(published, home, checkpoint, monkeypatch):
    _, url = published
    monkeypatch.setenv("FINEFORGE_MMLU_URL", f"{url}/winogrande_1.1.zip")
    one_line_error(suite(checkpoint, "mmlu"), f"error: mmlu: {url}/winogrande_1.1.zip is not the published file (")
    assert not home.exists()


def test_a_pinned_original_without_the_split_is_one_line_and_leaves_nothing(published, home, checkpoint, monkeypatch):
    site, url = published
    body = zipped({"winogrande_1.1/train_xs.jsonl": jsonl(RECORDS["winogrande"])})
    (site / "winogrande_1.1.zip").write_bytes(body)
    pin = {"sha256": hashlib.sha256(body).hexdigest(), "num_bytes": len(body)}
    monkeypatch.setitem(eval_data.SOURCES, "winogrande", dataclasses.replace(eval_data.SOURCES["winogrande"], **pin))
    one_line_error(suite(checkpoint, "winogrande"), f"error: winogrande: {url}/winogrande_1.1.zip is the published")
    assert not any((home / "evals").iterdir())


def test_offline_is_one_line_naming_the_task_and_how_to_provide_it(home, checkpoint, monkeypatch):
    monkeypatch.setenv("FINEFORGE_HELLASWAG_URL", "http://127.0.0.1:9/hellaswag_val.jsonl")  # discard port: refused
    result = suite(checkpoint, "hellaswag")
    one_line_error(result, "error: hellaswag: cannot download http://127.0.0.1:9/hellaswag_val.jsonl")
    assert "--data-dir DIR" in result.output and "FINEFORGE_HELLASWAG_URL" in result.output
    arc = dataclasses.replace(eval_data.SOURCES["arc_easy"], url="http://127.0.0.1:9/ARC-V1-Feb2018.zip")
    monkeypatch.setitem(eval_data.SOURCES, "arc_easy", arc)
    result = suite(checkpoint, "arc_easy")
    one_line_error(result, "error: arc_easy: cannot download http://127.0.0.1:9/ARC-V1-Feb2018.zip")
    assert "allenai/ai2_arc ARC-Easy test split" in result.output and "FINEFORGE_ARC_EASY_URL" in result.output
    assert not home.exists()


def test_a_missing_checkpoint_is_refused_before_any_download(published, home, tmp_path):
    """A mistyped checkpoint path fails at once, naming it: nothing is requested and FINEFORGE_HOME stays empty."""
    missing = tmp_path / "no-such-run"
    one_line_error(suite(missing, ALL), f"error: {missing}: no such checkpoint or folder")
    assert CountingHandler.requests == []
    assert not home.exists()
