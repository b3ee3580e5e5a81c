"""Where each task's file comes from: `--data-dir`, the download cache, or a pinned download; and reading it.

A task's file is `DIR/<task>.jsonl` or `DIR/<task>.parquet` in its dataset's Hub layout (`tasks.TASKS`). Without
`--data-dir` the file is `FINEFORGE_HOME/evals/<task>.jsonl`, made once from the task's published original file:
fetched from `FINEFORGE_<TASK>_URL` when set (a mirror; `FINEFORGE_HELLASWAG_URL` for HellaSwag, as before), else
from its published URL. Every original is pinned by its sha256 and size; the bytes are streamed into a temporary
folder (under TMPDIR) and checked before anything is kept, so a failed or wrong download (a mirror's too) leaves
nothing behind.

Most originals are archives or a layout other than the Hub's: after the check, the split the suite scores is
converted into the Hub layout (one function per format below) and written atomically, with `<task>.json` beside it
recording the original's URL, sha256, size and the member converted, so a result names the exact published file.
One original may feed several tasks (ARC's zip holds ARC-Easy and ARC-Challenge): all of them are made from one
download.

The pins are the `download_checksums` that the huggingface/datasets repository recorded for its loading scripts
(`datasets/<name>/dataset_infos.json`, the file each pin cites); the member paths follow the matching
`datasets/<name>/<name>.py`, and the splits are those FineWeb's ablations scored through lighteval.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.common.files import atomic_write, read_json, write_json_atomic
from pipelines.common.home import fineforge_home
from pipelines.common.inputs import InputError, iter_json_lines
from trainer.evals.tasks import Task

EXTENSIONS = ("jsonl", "parquet")

Records = list[dict[str, Any]]


def _lines(original: Path, member: str) -> list[str]:
    """The non-blank lines of a zip member of `original`, or of `original` itself when `member` is empty."""
    if member:
        with zipfile.ZipFile(original) as archive:
            text = archive.read(member).decode("utf-8")
    else:
        text = original.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _as_is(original: Path, member: str) -> Records:
    """JSONL already in the Hub layout (WinoGrande's `dev.jsonl`)."""
    return [json.loads(line) for line in _lines(original, member)]


def _nested(original: Path, member: str, stem: str = "question") -> Records:
    """AI2's nested layout (ARC, OpenBookQA, CommonsenseQA: `question{stem, choices[{label, text}]}`, `answerKey`)
    as the Hub's flat one: the stem under `stem`, and `choices{text, label}`."""
    records = []
    for line in _lines(original, member):
        record = json.loads(line)
        choices = record["question"]["choices"]
        records.append({
            "id": record.get("id"),
            stem: record["question"]["stem"],
            "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
            "answerKey": record["answerKey"],
        })  # fmt: skip
    return records


def _labelled(original: Path, member: str, label: Callable[[str], Any]) -> Records:
    """Questions in `X.jsonl` with their answers one a line in `X-labels.lst` (PIQA, Social IQa) as records with
    `label` (an int for PIQA, the string "1".."3" for Social IQa, as the Hub has them)."""
    questions = _lines(original, member)
    labels = _lines(original, member.removesuffix(".jsonl") + "-labels.lst")
    if len(labels) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(labels)} labels")
    return [{**json.loads(q), "label": label(a.strip())} for q, a in zip(questions, labels, strict=True)]


def _mmlu_csvs(original: Path, member: str) -> Records:
    """MMLU's tar of `data/test/<subject>_test.csv` (question, four choices, answer letter; no header) as cais/mmlu
    `all` records (`subject`, `choices`, `answer` 0-3), subjects in name order."""
    records = []
    with tarfile.open(original) as archive:
        files = [
            m
            for m in archive.getmembers()
            if m.isfile() and m.name.lstrip("./").startswith(member) and m.name.endswith("_test.csv")
        ]
        for info in sorted(files, key=lambda m: m.name):
            subject = Path(info.name).name.removesuffix("_test.csv")
            text = archive.extractfile(info).read().decode("utf-8")
            for question, *choices, answer in csv.reader(io.StringIO(text)):
                records.append(
                    {"question": question, "subject": subject, "choices": choices, "answer": "ABCD".index(answer)}
                )
    return records


@dataclass(frozen=True)
class Source:
    """A task's published original: URL, sha256 and size, and how its scored split becomes the Hub layout.

    `convert(original, member)` returns the records; None means the original is already the task file.
    """

    url: str
    sha256: str
    num_bytes: int
    member: str = ""
    convert: Callable[[Path, str], Records] | None = None


_ARC = (  # datasets/ai2_arc/dataset_infos.json
    "https://s3-us-west-2.amazonaws.com/ai2-website/data/ARC-V1-Feb2018.zip",
    "6d2d5ab50b2ceec6ba5f79c921be77cf2de712ea25a2b3f4fff3acc101cecfa0",
    680841265,
)

SOURCES: dict[str, Source] = {
    # datasets/hellaswag/dataset_infos.json
    "hellaswag": Source(
        "https://github.com/rowanz/hellaswag/raw/master/data/hellaswag_val.jsonl",
        "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588",
        12246618,
    ),
    "arc_easy": Source(*_ARC, "ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Test.jsonl", _nested),
    "arc_challenge": Source(*_ARC, "ARC-V1-Feb2018-2/ARC-Challenge/ARC-Challenge-Test.jsonl", _nested),
    # datasets/piqa/dataset_infos.json
    "piqa": Source(
        "https://storage.googleapis.com/ai2-mosaic/public/physicaliqa/physicaliqa-train-dev.zip",
        "54d32a04f59a7e354396f321723c8d7ec35cc6b08506563d8d1ffcc15ce98ddd",
        1824009,
        "physicaliqa-train-dev/dev.jsonl",
        partial(_labelled, label=int),
    ),
    # datasets/social_i_qa/dataset_infos.json
    "siqa": Source(
        "https://storage.googleapis.com/ai2-mosaic/public/socialiqa/socialiqa-train-dev.zip",
        "ee073914a0fc33265cfbcfc50ec20df9b2e07809c3f420f599138d1f394ef5c3",
        2198056,
        "socialiqa-train-dev/dev.jsonl",
        partial(_labelled, label=str),
    ),
    # datasets/winogrande/dataset_infos.json (dev.jsonl is the validation split of every size, winogrande_xl's too)
    "winogrande": Source(
        "https://storage.googleapis.com/ai2-mosaic/public/winogrande/winogrande_1.1.zip",
        "3619ab104d8be2977b25c90ff420cb42d491707dcc75362a1e5d22bc082b7318",
        3395492,
        "winogrande_1.1/dev.jsonl",
        _as_is,
    ),
    # datasets/openbookqa/dataset_infos.json (config `main`)
    "openbookqa": Source(
        "https://s3-us-west-2.amazonaws.com/ai2-website/data/OpenBookQA-V1-Sep2018.zip",
        "82368cf05df2e3b309c17d162e10b888b4d768fad6e171e0a041954c8553be46",
        1446098,
        "OpenBookQA-V1-Sep2018/Data/Main/test.jsonl",
        partial(_nested, stem="question_stem"),
    ),
    # datasets/commonsense_qa/dataset_infos.json
    "commonsense_qa": Source(
        "https://s3.amazonaws.com/commensenseqa/dev_rand_split.jsonl",
        "3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a",
        471653,
        "",
        _nested,
    ),
    # datasets/hendrycks_test/dataset_infos.json (every subject's config records the same data.tar)
    "mmlu": Source(
        "https://people.eecs.berkeley.edu/~hendrycks/data.tar",
        "bec563ba4bac1d6aaf04141cd7d1605d7a5ca833e38f994051e818489592989b",
        166184960,
        "data/test/",
        _mmlu_csvs,
    ),
}


def mirror_env(task: str) -> str:
    """The environment variable that names a mirror of a task's file (`FINEFORGE_ARC_EASY_URL`)."""
    return f"FINEFORGE_{task.upper()}_URL"


def find_in_dir(task: str, data_dir: Path) -> Path:
    """The file of `task` in a data folder.

    Raises:
        FileNotFoundError: the folder is missing or holds neither `<task>.jsonl` nor `<task>.parquet`.
    """
    for ext in EXTENSIONS:
        if (data_dir / f"{task}.{ext}").is_file():
            return data_dir / f"{task}.{ext}"
    raise FileNotFoundError(f"{data_dir}: no {task}.jsonl or {task}.parquet for task {task}")


def _missing_help(task: Task) -> str:
    single = " (or --data FILE to `fineforge eval hellaswag`)" if task.name == "hellaswag" else ""
    return (
        f"save the {task.dataset} split as DIR/{task.name}.parquet or .jsonl and pass --data-dir DIR{single}, "
        f"or set {mirror_env(task.name)} to a copy of {SOURCES[task.name].url}"
    )


def _cached(task: str) -> Path | None:
    for cached in (fineforge_home() / "evals" / f"{task}.{ext}" for ext in EXTENSIONS):
        if cached.is_file():
            return cached
    return None


def _fetch(task: Task, url: str, source: Source, dest: Path) -> None:
    """Stream `url` into `dest`, checking its size and sha256 against the pin.

    Raises:
        FileNotFoundError: the download failed or is not the published file.
    """
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
            while (chunk := response.read(1 << 20)) and size <= source.num_bytes:
                size += len(chunk)
                digest.update(chunk)
                f.write(chunk)
    except OSError as e:
        raise FileNotFoundError(f"{task.name}: cannot download {url} ({e}); {_missing_help(task)}") from e
    if size != source.num_bytes or digest.hexdigest() != source.sha256:
        got = f"{size} bytes" if size != source.num_bytes else f"sha256 {digest.hexdigest()}"
        raise FileNotFoundError(
            f"{task.name}: {url} is not the published file ({got}; expected sha256 {source.sha256}, "
            f"{source.num_bytes} bytes); {_missing_help(task)}"
        )


def _install(task: str, source: Source, original: Path, url: str) -> None:
    """Write `FINEFORGE_HOME/evals/<task>.jsonl` from a checked original, and `<task>.json` naming the original."""
    evals = fineforge_home() / "evals"
    write_json_atomic(
        evals / f"{task}.json",
        {"url": url, "published": source.url, "sha256": source.sha256, "num_bytes": source.num_bytes,
         "converted_from": source.member or Path(source.url).name if source.convert else None},
    )  # fmt: skip
    with atomic_write(evals / f"{task}.jsonl") as f:
        if source.convert is None:
            with open(original, "rb") as src:
                shutil.copyfileobj(src, f)
        else:
            for record in source.convert(original, source.member):
                f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def download(task: Task) -> Path:
    """The cached file of a task in `FINEFORGE_HOME/evals/`, downloading and checking it the first time.

    Every task sharing the downloaded original (ARC's two sets) is made from it at the same time.

    Args:
        task: the task.

    Returns:
        The cached file.

    Raises:
        FileNotFoundError: the download failed (offline), its bytes do not match the pin, or a pinned original
            cannot be converted; the message names the task and how to provide the file.
    """
    if (cached := _cached(task.name)) is not None:
        return cached
    source = SOURCES[task.name]
    url = os.environ.get(mirror_env(task.name)) or source.url
    evals = fineforge_home() / "evals"
    with tempfile.TemporaryDirectory(prefix="fineforge-eval-") as tmp:
        original = Path(tmp) / "original"
        _fetch(task, url, source, original)
        evals.mkdir(parents=True, exist_ok=True)
        for name, other in SOURCES.items():
            if other.sha256 == source.sha256 and (name == task.name or _cached(name) is None):
                try:
                    _install(name, other, original, url)
                except (KeyError, IndexError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
                    (evals / f"{name}.json").unlink(missing_ok=True)
                    raise FileNotFoundError(
                        f"{name}: {url} is the published file but its {other.member or 'records'} cannot be read "
                        f"({e}); {_missing_help(task)}"
                    ) from e
    return evals / f"{task.name}.jsonl"


def published(path: Path) -> dict[str, Any] | None:
    """What a cached task file was made from (`<task>.json`: url, sha256, ...); None for any other file."""
    if path.parent != fineforge_home() / "evals":
        return None
    return read_json(path.with_suffix(".json"))


def task_file(task: Task, data_dir: str | Path | None) -> Path:
    """The file to score a task on: from `data_dir` when given, else the cache (downloaded once).

    Raises:
        FileNotFoundError: see `find_in_dir` and `download`.
    """
    return find_in_dir(task.name, Path(data_dir)) if data_dir is not None else download(task)


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(FILE: line N | FILE: row N, record)` of a task file, JSONL or Parquet (told by its name).

    Raises:
        InputError: invalid JSON or an unreadable file, naming it.
    """
    if path.suffix == ".parquet":
        try:
            records = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{path}: not a readable Parquet file ({e})") from e
        for row, record in enumerate(records, start=1):
            yield f"{path}: row {row}", record
        return
    for lineno, record in iter_json_lines(str(path)):
        yield f"{path}: line {lineno}", record
