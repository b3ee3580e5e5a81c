"""Labelled training texts for the quality classifier, from either of two kinds of input.

- Labelled records (`--data`): JSONL or Parquet files (or folders, globs, fsspec URLs of them) whose records hold
  a text field and a label field. Labels are class names (strings without whitespace) or integers; integral
  floats (a Parquet float column of 0.0/1.0) count as integers. All labels of a run must be of one kind.
- Text collections (`--positive`, `--negative`), DCLM style: any texts the tokenizer reads (JSONL, Parquet,
  folders of them, curate output folders), labelled `positive` and `negative`.

Every record is checked: a missing or non-string text, a missing, null, boolean or fractional label and invalid
JSON raise `InputError` naming the file and the line or row. Whitespace-only texts carry no signal and are
skipped, counted per file. Each file is recorded with its sha256 so that a model card names its exact data.

`split` holds out the same share of every class (stratified), seeded, so small classes are represented in the
test set and a seed gives the same split on every machine.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.inputs import TEXT_FORMATS, InputError, InputFile, discover, iter_json_lines
from pipelines.quality.model import Label
from pipelines.tokenize.inputs import iter_text_batches

POSITIVE, NEGATIVE = "positive", "negative"


@dataclass
class Examples:
    """Texts with their labels and the files they came from.

    Attributes:
        texts: the documents.
        labels: one class per document (all int or all str).
        data: one record per input file: `{"path", "sha256", "role", "documents", "skipped_empty"}`.
    """

    texts: list[str] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)

    def add_file(self, file: InputFile, role: str, records: Iterator[tuple[str, Label]]) -> None:
        """Append a file's (text, label) records, skipping whitespace-only texts, and record the file."""
        kept = skipped = 0
        for text, label in records:
            if not text.strip():
                skipped += 1
                continue
            self.texts.append(text)
            self.labels.append(label)
            kept += 1
        self.data.append(
            {
                "path": file.url,
                "sha256": url_sha256(file.url),
                "role": role,
                "documents": kept,
                "skipped_empty": skipped,
            }
        )


def url_sha256(url: str) -> str:
    """sha256 of a local file or fsspec URL, streamed in 8 MiB blocks."""
    digest = hashlib.sha256()
    with fsspec.open(url, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def label_of(value: Any, where: str) -> Label:
    """Check one raw label value and return it as an int or a class name.

    Args:
        value: the label as read.
        where: `file: line N` or `file: row N`, for the error.

    Returns:
        An int (integral floats included) or a non-empty string without whitespace.

    Raises:
        InputError: naming `where` and the value.
    """
    if isinstance(value, bool) or value is None:
        raise InputError(f"{where}: label {value!r} is not a class; use an integer or a class name")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise InputError(f"{where}: label {value!r} is not a class; round scores to integers (FineWeb-Edu: int_score)")
    if isinstance(value, str) and value and not any(ch.isspace() for ch in value):
        return value
    raise InputError(f"{where}: label {value!r} must be an integer or a class name without spaces")


def _jsonl_records(file: InputFile, text_field: str, label_field: str) -> Iterator[tuple[str, Label]]:
    for line_no, record in iter_json_lines(file.url):
        yield _record(record, f"{file.url}: line {line_no}", text_field, label_field)


def _parquet_records(file: InputFile, text_field: str, label_field: str) -> Iterator[tuple[str, Label]]:
    with fsspec.open(file.url, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
            names = parquet.schema_arrow.names
            if missing := [c for c in (text_field, label_field) if c not in names]:
                raise InputError(f"{file.url}: no column {missing} (columns: {', '.join(names)})")
            row = 0
            for batch in parquet.iter_batches(columns=[text_field, label_field]):
                for text, label in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    row += 1
                    yield _record(
                        {text_field: text, label_field: label}, f"{file.url}: row {row}", text_field, label_field
                    )
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{file.url}: not a readable Parquet file ({err})") from err


def _record(record: dict[str, Any], where: str, text_field: str, label_field: str) -> tuple[str, Label]:
    for name in (text_field, label_field):
        if name not in record:
            raise InputError(f"{where}: no field {name!r} (fields: {', '.join(sorted(record)[:10])})")
    text = record[text_field]
    if not isinstance(text, str):
        raise InputError(f"{where}: field {text_field!r} is {type(text).__name__}, expected a string")
    return text, label_of(record[label_field], where)


def read_labelled(inputs: list[str], text_field: str = "text", label_field: str = "label") -> Examples:
    """Read labelled records from JSONL/Parquet files, folders, globs or URLs.

    Args:
        inputs: the `--data` inputs.
        text_field: field (JSONL) or column (Parquet) holding the text.
        label_field: field or column holding the label.

    Returns:
        The examples, in input order.

    Raises:
        InputError: a bad record (named by file and line or row), labels of mixed kinds, or fewer than two classes.
    """
    examples = Examples()
    for spec in inputs:
        for file in discover(str(spec), TEXT_FORMATS).files:
            reader = _parquet_records if file.format == "parquet" else _jsonl_records
            examples.add_file(file, "data", reader(file, text_field, label_field))
    kinds = {type(label) for label in examples.labels}
    if len(kinds) > 1:
        raise InputError(f"{', '.join(inputs)}: labels mix integers and class names; use one kind")
    check_classes(examples)
    return examples


def read_collections(positive: list[str], negative: list[str], text_field: str = "text") -> Examples:
    """Label whole text collections: every text of `positive` is `positive`, of `negative` is `negative`.

    Args:
        positive: files, folders, globs, URLs or curate output folders of good text.
        negative: the same, of text to filter out (DCLM: random raw crawl).
        text_field: field or column holding the text.

    Returns:
        The examples, positives first.

    Raises:
        InputError: a missing input or bad record, naming the file and record.
    """
    if not positive or not negative:
        raise InputError("give at least one --positive and one --negative input")
    examples = Examples()
    for role, specs in ((POSITIVE, positive), (NEGATIVE, negative)):
        for spec in specs:
            for file in discover(str(spec), TEXT_FORMATS).files:
                texts = (text for batch in iter_text_batches([file], text_field) for text in batch)
                examples.add_file(file, role, ((text, role) for text in texts))
    check_classes(examples)
    return examples


def read_examples(
    data: list[str], positive: list[str], negative: list[str], text_field: str = "text", label_field: str = "label"
) -> Examples:
    """Read the training texts from either labelled records or positive/negative collections (not both).

    Args:
        data: labelled JSONL/Parquet inputs (`--data`).
        positive: collections of good text (`--positive`).
        negative: collections of text to filter out (`--negative`).
        text_field: field or column holding the text.
        label_field: field or column holding the label (labelled records only).

    Returns:
        The examples.

    Raises:
        InputError: both kinds or neither given, or a bad input (see `read_labelled`, `read_collections`).
    """
    if data and (positive or negative):
        raise InputError("give either --data or --positive/--negative, not both")
    if data:
        return read_labelled(data, text_field, label_field)
    if not (positive or negative):
        raise InputError("no training data: give --data FILE, or --positive PATH and --negative PATH")
    return read_collections(positive, negative, text_field)


def check_classes(examples: Examples) -> None:
    """Raise InputError unless the examples hold at least two classes."""
    classes = sorted({str(label) for label in examples.labels})
    if len(classes) < 2:
        files = ", ".join(d["path"] for d in examples.data) or "the inputs"
        raise InputError(f"{files}: a classifier needs at least two classes, found {classes or 'no documents'}")


def split(labels: list[Label], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified, seeded train/test split of example indices.

    Every class gives `round(test_fraction * n)` of its n examples to the test set, at least one when
    `test_fraction > 0` and at most n - 1 (each class keeps a training example); the training indices come back
    shuffled by the same seed, since fastText learns in file order.

    Args:
        labels: one label per example.
        test_fraction: the share of each class to hold out.
        seed: the random seed.

    Returns:
        (train indices, test indices sorted ascending).
    """
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(str(label), []).append(i)
    train, test = [], []
    for name in sorted(by_class):
        members = by_class[name]
        rng.shuffle(members)
        n_test = round(test_fraction * len(members))
        if test_fraction > 0 and n_test == 0:
            n_test = 1
        n_test = min(n_test, len(members) - 1)  # every class keeps a training example
        test += members[:n_test]
        train += members[n_test:]
    rng.shuffle(train)
    return train, sorted(test)
