"""Find the input files of a text job and read their text column, with errors that name file and record.

Inputs are local paths or fsspec URLs (`s3://`, `hf://`, ...) of files, folders or globs. A folder holding
`summary.json` and `data/` is a curate output: only `data/*.parquet` is read (not `rejects/`), and the
summary's `run_id` and `config_hash` become the provenance. Other folders contribute every Parquet and JSONL
file under them. Files are read in a fixed order (sorted by name within each input), so a document's index
is stable from run to run; that is what lets `pipelines.tokenize` resume and shuffle deterministically.

Parquet is read column-only in record batches (a 100 MB file never sits in memory whole); JSONL(.gz/.zst/...)
is streamed line by line through fsspec's compression inference. Nulls, non-string values, invalid JSON and
unreadable files raise `InputError`, never a silent skip: tokenized data goes straight into training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

PARQUET_SUFFIXES = (".parquet",)
# JSON Lines, plain or compressed; `.json.gz` too (C4's files), but not a bare `.json`, usually one JSON document.
JSONL_SUFFIXES = (".jsonl", *(f"{base}{c}" for base in (".jsonl", ".json") for c in (".gz", ".zst", ".bz2", ".xz")))
STRING_TYPES = ("string", "large_string", "string_view")


class InputError(ValueError):
    """An unreadable input; the message names the file, and the record where there is one."""


@dataclass(frozen=True)
class InputFile:
    """One input file: its URL (a plain path for local files), size and modification stamp."""

    url: str
    size: int
    stamp: str

    @property
    def is_parquet(self) -> bool:
        """True for Parquet, False for JSONL."""
        return self.url.endswith(PARQUET_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """The resolved inputs: files in reading order and the provenance recorded in the manifest."""

    files: list[InputFile]
    path: str | list[str]
    run_id: str | list[str | None] | None
    config_hash: str | list[str | None] | None

    def manifest_entry(self) -> dict[str, Any]:
        """Return the manifest's `source` record."""
        return {"path": self.path, "run_id": self.run_id, "config_hash": self.config_hash}


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _input_file(fs: fsspec.AbstractFileSystem, path: str) -> InputFile:
    info = fs.info(path)
    url = path if _is_local(fs) else fs.unstrip_protocol(path)
    stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("last_commit") or ""
    return InputFile(url=url, size=int(info.get("size") or 0), stamp=str(stamp))


def _is_supported(path: str) -> bool:
    return path.endswith(PARQUET_SUFFIXES + JSONL_SUFFIXES)


def _is_hidden(path: str, root: str) -> bool:
    """True for a path under `root` with a component starting with '.' or '_' (work folders, _SUCCESS, ...)."""
    return any(part.startswith((".", "_")) for part in path[len(root) :].split("/") if part)


def resolve_inputs(inputs: list[str]) -> Source:
    """Expand input specs into the files to read, in a fixed order, with their provenance.

    A folder holding `summary.json` and `data/` is a curate output: its `data/*.parquet` are read and the
    summary's `run_id` and `config_hash` recorded. Any other folder contributes every Parquet/JSONL file under
    it, except under names starting with '.' or '_'; a spec with `*`, `?` or `[` is a glob. Within a spec
    files are sorted by name; specs keep their order.

    Args:
        inputs: local paths or fsspec URLs of files, folders or globs.

    Returns:
        The resolved `Source`; `path`, `run_id` and `config_hash` are plain values for one input, lists
        aligned with `inputs` for several.

    Raises:
        InputError: no inputs, a missing path, an unsupported file type or a folder without input files.
    """
    if not inputs:
        raise InputError("no inputs given")
    files: list[InputFile] = []
    paths: list[str] = []
    run_ids: list[str | None] = []
    hashes: list[str | None] = []
    for spec in inputs:
        fs, path = fsspec.core.url_to_fs(spec)
        run_id = config_hash = None
        if any(c in path for c in "*?["):
            found = [p for p in fs.glob(path) if fs.isfile(p) and _is_supported(p)]
        elif fs.isdir(path):
            root = path.rstrip("/")
            if fs.isfile(f"{root}/summary.json") and fs.isdir(f"{root}/data"):
                try:
                    meta = json.loads(fs.cat_file(f"{root}/summary.json"))
                except json.JSONDecodeError as e:
                    raise InputError(f"{spec}: summary.json is not valid JSON ({e})") from e
                run_id, config_hash = meta.get("run_id"), meta.get("config_hash")
                found = fs.glob(f"{root}/data/*.parquet")
            else:
                found = [p for p in fs.find(root) if _is_supported(p) and not _is_hidden(p, root)]
        elif fs.isfile(path):
            if not _is_supported(path):
                raise InputError(f"{spec}: not a Parquet or JSONL file (suffixes: .parquet, .jsonl[.gz|.zst|...])")
            found = [path]
        else:
            raise InputError(f"{spec}: no such file or folder")
        if not found:
            raise InputError(f"{spec}: no Parquet or JSONL files found")
        files.extend(_input_file(fs, p) for p in sorted(found))
        paths.append(path if _is_local(fs) else spec)
        run_ids.append(run_id)
        hashes.append(config_hash)
    if len(inputs) == 1:
        return Source(files, paths[0], run_ids[0], hashes[0])
    return Source(files, paths, run_ids, hashes)


def _parquet_rows(file: InputFile) -> int:
    with fsspec.open(file.url, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def _read_parquet(file: InputFile, column: str, batch_size: int) -> Iterator[list[str]]:
    with fsspec.open(file.url, "rb") as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{file.url}: not a readable Parquet file ({e})") from e
        schema = pf.schema_arrow
        if column not in schema.names:
            raise InputError(f"{file.url}: no column {column!r} (columns: {', '.join(schema.names)})")
        kind = schema.field(column).type
        if str(kind) not in STRING_TYPES:
            raise InputError(f"{file.url}: column {column!r} has type {kind}, expected a string")
        row = 0
        batches = pf.iter_batches(batch_size=batch_size, columns=[column])
        while True:
            try:
                texts = next(batches).column(0)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{file.url}: unreadable after row {row}: {e}") from e
            if texts.null_count:
                first = texts.is_null().to_numpy(zero_copy_only=False).argmax()
                raise InputError(f"{file.url}: row {row + int(first)}: {column!r} is null")
            row += len(texts)
            yield texts.to_pylist()


def _read_jsonl(file: InputFile, field: str, batch_size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    line_no = 0
    with fsspec.open(file.url, "rt", compression="infer", encoding="utf-8") as f:
        try:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{file.url}: line {line_no}: invalid JSON ({e})") from e
                if not isinstance(record, dict) or field not in record:
                    raise InputError(f"{file.url}: line {line_no}: no field {field!r}")
                text = record[field]
                if not isinstance(text, str):
                    kind = type(text).__name__
                    raise InputError(f"{file.url}: line {line_no}: field {field!r} is {kind}, expected a string")
                batch.append(text)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        except InputError:
            raise
        except (UnicodeDecodeError, EOFError, OSError, ValueError) as e:  # gzip/zstd/bz2/xz damage, bad UTF-8
            raise InputError(f"{file.url}: unreadable after line {line_no}: {e}") from e
    if batch:
        yield batch


def iter_text_batches(
    files: list[InputFile], column: str, skip: int = 0, batch_size: int = 256
) -> Iterator[list[str]]:
    """Yield the texts of `files` in order, in batches of at most `batch_size`, after skipping `skip` documents.

    Args:
        files: input files, read in this order.
        column: the text column or field.
        skip: documents to pass over first (already tokenized by an earlier run); whole Parquet files are
            skipped from their metadata without reading them.

    Raises:
        InputError: a missing or non-string text, invalid JSON or an unreadable file, naming file and record.
    """
    for file in files:
        if skip and file.is_parquet:
            rows = _parquet_rows(file)
            if rows <= skip:
                skip -= rows
                continue
        reader = _read_parquet if file.is_parquet else _read_jsonl
        for batch in reader(file, column, batch_size):
            if skip >= len(batch):
                skip -= len(batch)
                continue
            yield batch[skip:] if skip else batch
            skip = 0
