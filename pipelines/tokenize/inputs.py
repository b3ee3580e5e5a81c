"""Read the text column of tokenize's inputs, with errors that name the file and the record.

Input files come from `pipelines.common.inputs` (Parquet and JSONL; a curate output folder contributes its
`data/*.parquet`, and its summary's `run_id` and `config_hash` become the manifest's provenance). Files are read
in a fixed order (sorted within each input, inputs in the order given), so a document's index is stable from run
to run; that is what lets `pipelines.tokenize` resume and shuffle deterministically.

Parquet is read column-only in record batches (a 100 MB file never sits in memory whole); JSONL (plain or
gzip/zstd/bzip2/xz-compressed, told by magic bytes) is streamed line by line. Nulls, non-string values, invalid
JSON and unreadable files raise `InputError`, never a silent skip: tokenized data goes straight into training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.inputs import TEXT_FORMATS, InputError, InputFile, discover, iter_json_lines

STRING_TYPES = ("string", "large_string", "string_view")


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


def resolve_inputs(inputs: list[str]) -> Source:
    """Expand input specs into the Parquet/JSONL files to read, in a fixed order, with their provenance.

    Args:
        inputs: local paths or fsspec URLs of files, folders, globs or curate output folders.

    Returns:
        The resolved `Source`; `path`, `run_id` and `config_hash` are plain values for one input, lists
        aligned with `inputs` for several.

    Raises:
        InputError: no inputs, a missing path, an unsupported file or a folder without input files.
    """
    if not inputs:
        raise InputError("no inputs given")
    found = [discover(spec, TEXT_FORMATS) for spec in inputs]
    files = [f for d in found for f in d.files]
    paths = [d.path for d in found]
    run_ids = [(d.summary or {}).get("run_id") for d in found]
    hashes = [(d.summary or {}).get("config_hash") for d in found]
    if len(inputs) == 1:
        return Source(files, paths[0], run_ids[0], hashes[0])
    return Source(files, paths, run_ids, hashes)


def count_documents(files: list[InputFile]) -> int | None:
    """Documents in all files when every one is Parquet (row counts from the footers, no data read), else None.

    Args:
        files: the input files.

    Returns:
        The total, or None when a JSONL file makes it unknown without reading it through (or a footer is
        unreadable: the reader then reports that file properly).
    """
    if not files or any(f.format != "parquet" for f in files):
        return None
    try:
        return sum(_parquet_rows(f) for f in files)
    except (OSError, pa.ArrowException):
        return None


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
    for line_no, record in iter_json_lines(file.url):
        if field not in record:
            raise InputError(f"{file.url}: line {line_no}: no field {field!r}")
        text = record[field]
        if not isinstance(text, str):
            kind = type(text).__name__
            raise InputError(f"{file.url}: line {line_no}: field {field!r} is {kind}, expected a string")
        batch.append(text)
        if len(batch) == batch_size:
            yield batch
            batch = []
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
        if skip and file.format == "parquet":
            rows = _parquet_rows(file)
            if rows <= skip:
                skip -= rows
                continue
        reader = _read_parquet if file.format == "parquet" else _read_jsonl
        for batch in reader(file, column, batch_size):
            if skip >= len(batch):
                skip -= len(batch)
                continue
            yield batch[skip:] if skip else batch
            skip = 0
