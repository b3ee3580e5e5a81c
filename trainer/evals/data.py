"""Where each task's file comes from: `--data-dir`, the download cache, or a pinned download; and reading it.

A task's file is `DIR/<task>.jsonl` or `DIR/<task>.parquet` in its dataset's published layout (`tasks.TASKS`).
Without `--data-dir` the file is `FINEFORGE_HOME/evals/<task>.<ext>`, downloaded once from its source: the URL of
`FINEFORGE_<TASK>_URL` when set (a mirror; `FINEFORGE_HELLASWAG_URL` for HellaSwag, as before), else the
published location. The whole body is read and checked against the source's pin before anything is written, so a
failed or wrong download leaves nothing behind.

Pins are only those verified from the published source (no pin is guessed): HellaSwag's validation file is pinned
by its git blob id in github.com/rowanz/hellaswag (commit a29ff8e, `data/hellaswag_val.jsonl`, blob
0f5ee25d72216f12317d5d8a7b92deafa423d81e; a git blob id is the SHA-1 of "blob <size>\\0" + the bytes, so it
identifies the exact published file). The other tasks are published on the Hugging Face Hub, which this project
could not reach to read their checksums: they have no default download, and the error says to save the split
(named in `tasks.TASKS`) as DIR/<task>.parquet or .jsonl, or to set the task's mirror variable. A mirror without a
pin is trusted as the user's choice; the file's sha256 is reported with every result either way.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.common.files import atomic_write
from pipelines.common.home import fineforge_home
from pipelines.common.inputs import InputError, iter_json_lines
from trainer.evals.tasks import Task

EXTENSIONS = ("jsonl", "parquet")


@dataclass(frozen=True)
class Source:
    """A task's published file: its URL, format, and a verified content pin (`git-blob-sha1` or `sha256`)."""

    url: str | None
    ext: str = "jsonl"
    pin: tuple[str, str] | None = None


SOURCES: dict[str, Source] = {
    "hellaswag": Source(
        "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl",
        "jsonl",
        ("git-blob-sha1", "0f5ee25d72216f12317d5d8a7b92deafa423d81e"),
    ),
}


def mirror_env(task: str) -> str:
    """The environment variable that names a mirror of a task's file (`FINEFORGE_ARC_EASY_URL`)."""
    return f"FINEFORGE_{task.upper()}_URL"


def content_digest(body: bytes, algorithm: str) -> str:
    """The digest of a file's bytes by a pin's algorithm (`sha256`, or `git-blob-sha1`: git's blob id)."""
    if algorithm == "git-blob-sha1":
        return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
    return hashlib.sha256(body).hexdigest()


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
        f"or set {mirror_env(task.name)} to a copy"
    )


def download(task: Task) -> Path:
    """The cached file of a task in `FINEFORGE_HOME/evals/`, downloading and checking it the first time.

    Args:
        task: the task.

    Returns:
        The cached file.

    Raises:
        FileNotFoundError: no source (no pin known and no mirror set), the download failed (offline), or its
            bytes do not match the pin; the message names the task and how to provide the file.
    """
    source = SOURCES.get(task.name, Source(None))
    mirror = os.environ.get(mirror_env(task.name))
    url = mirror or source.url
    named = Path(url.split("?")[0]).suffix.lstrip(".") if url else ""
    ext = named if named in EXTENSIONS else source.ext
    for cached in (fineforge_home() / "evals" / f"{task.name}.{e}" for e in EXTENSIONS):
        if cached.is_file():
            return cached
    if url is None:
        raise FileNotFoundError(f"{task.name}: no verified download is known; {_missing_help(task)}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
    except OSError as e:
        raise FileNotFoundError(f"{task.name}: cannot download {url} ({e}); {_missing_help(task)}") from e
    if source.pin is not None:
        algorithm, expected = source.pin
        if (got := content_digest(body, algorithm)) != expected:
            raise FileNotFoundError(
                f"{task.name}: {url} is not the published file ({algorithm} {got}, expected {expected}); "
                f"{_missing_help(task)}"
            )
    cache = fineforge_home() / "evals" / f"{task.name}.{ext}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache) as f:
        f.write(body)
    return cache


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
