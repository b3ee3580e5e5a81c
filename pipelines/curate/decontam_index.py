"""Benchmark decontamination index: the word n-grams of evaluation sets, in one file (`fineforge decontam index`).

A model trained on web text and scored on HellaSwag is only meaningful if the eval text was not in the training
data. GPT-3's analysis (Brown et al. 2020, appendix C) called a training document contaminated when it shares
a 13-gram with a benchmark item, over words after lower-casing and removing punctuation; this module builds
such an index and the `decontaminate` stage (`pipelines.curate.decontam`) looks documents up in it.

Normalisation (`words`): lower-case; every character that is neither a letter, a digit nor white space (and
`_`) becomes a space; split on white space. Replacing punctuation by a space rather than deleting it keeps
"web/text" and "end.Next" apart as two words; both sides use the same rule, so apostrophes ("don't" -> "don t")
match either way.

Eval sets (JSONL, compressed or not, or Parquet; one set per file, named by `NAME=PATH` or the file's stem):
- HellaSwag records (`ctx`, `endings`, optional `label`): the context followed by the gold ending is one passage,
  and every ending is another; the WikiHow markers (`[title]`, `[header]`, `[step]`, ...) are removed first as
  lm-evaluation-harness does, because the web copy of an article has none of them.
- Any other record: its text field (`text` by default).
A passage shorter than n words gives no n-gram and cannot be detected; the index counts them (`too_short`).

Hashing: each word is hashed with xxh3-64, and an n-gram's key is the polynomial `sum(h[i + k] * B**(n-1-k))`
modulo 2**64 over its word hashes (B odd), computed for a whole document in n numpy passes. With 2**64 keys,
a document of 1,000 words against an index of 10 million n-grams collides by chance with probability ~5e-10.

File format (`INDEX`, a NumPy `.npz` archive, read with `allow_pickle=False`):
- `meta`: UTF-8 JSON as uint8 bytes: `{"format": "fineforge-decontam-index", "version": 1, "ngram": n,
  "normalisation": ..., "hash": ..., "sets": [{"name", "path", "sha256", "kind": "hellaswag"|"text",
  "records", "passages", "too_short", "ngrams"}]}`;
- `set_<i>`: the sorted, unique uint64 n-gram keys of set i (in `sets` order).
Written atomically; HellaSwag's 10,042 validation items give about 0.6 M keys (5 MB).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from pipelines.common.files import atomic_write
from pipelines.common.hashing import file_sha256
from pipelines.common.inputs import InputError, iter_json_lines

FORMAT = "fineforge-decontam-index"
VERSION = 1
DEFAULT_NGRAM = 13  # GPT-3 (Brown et al. 2020), appendix C: 13-gram overlap
# The n-gram lengths an index may use. Below 8 words, n-grams are common phrases ("one of the most important
# parts of") that clean web text shares with any benchmark: `--ngram 1` dropped every document. 8 is the
# shortest window a published contamination study used (PaLM, Chowdhery et al. 2022, section 8: 8-grams).
# Above 50, almost no benchmark passage is long enough to give an n-gram at all (HellaSwag contexts and endings
# are 10-40 words), so the index flags nothing: `--ngram 100000` wrote an index with zero n-grams.
NGRAM_RANGE = range(8, 51)
_BASE = np.uint64(0x100000001B3)  # odd multiplier of the polynomial over word hashes (FNV-1a 64's prime)
_ZIP_MAGIC = b"PK\x03\x04"  # every .npz archive is a zip file
_NON_WORD = re.compile(r"[^\w\s]|_")
_HELLASWAG_MARKER = re.compile(r"\[.*?\]")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NORMALISATION = "lower-case; characters other than letters, digits and white space become spaces; split on spaces"
HASH = "xxh3_64 per word; n-gram key = sum(h[i+k] * 0x100000001b3**(n-1-k)) mod 2**64"


class DecontamIndexError(ValueError):
    """An eval set or index file that cannot be used; the message names the file and the record."""


def words(text: str) -> list[str]:
    """The normalised words of a text (see the module docstring).

    Args:
        text: any text.

    Returns:
        Lower-cased words without punctuation.
    """
    return _NON_WORD.sub(" ", text.lower()).split()


def ngram_keys(tokens: list[str], n: int) -> np.ndarray:
    """The 64-bit keys of every word n-gram, in order.

    Args:
        tokens: normalised words.
        n: n-gram length.

    Returns:
        uint64 array of length max(len(tokens) - n + 1, 0); element i is the key of tokens[i:i + n].
    """
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    hashes = np.fromiter(map(xxhash.xxh3_64_intdigest, tokens), dtype=np.uint64, count=len(tokens))
    keys = hashes[:count].copy()
    for k in range(1, n):
        keys *= _BASE  # wraps modulo 2**64
        keys += hashes[k : k + count]
    return keys


def hellaswag_passages(record: dict[str, Any]) -> list[str]:
    """The passages of one HellaSwag item: context + gold ending, then every ending alone.

    Args:
        record: a HellaSwag JSONL record (`ctx`, `endings`, optional `label`).

    Returns:
        Passages with the WikiHow markers removed (lm-evaluation-harness `hellaswag.preprocess`).
    """

    def clean(text: str) -> str:
        return " ".join(_HELLASWAG_MARKER.sub("", str(text).replace(" [title]", ". ")).split())

    ctx, endings = clean(record["ctx"]), [clean(e) for e in record["endings"]]
    label = record.get("label")
    label = int(label) if isinstance(label, int | str) and str(label).isdigit() else None
    first = f"{ctx} {endings[label]}" if label is not None and label < len(endings) else ctx
    return [first, *endings]


@dataclass
class EvalSet:
    """One evaluation set to index.

    Attributes:
        name: its name in reasons (`contaminated:<name>`) and reports.
        path: the JSONL or Parquet file.
    """

    name: str
    path: Path


def parse_eval_arg(value: str) -> EvalSet:
    """Read one `--eval` value: `PATH` (named by the file's stem) or `NAME=PATH`.

    Args:
        value: the command-line value.

    Returns:
        The eval set.

    Raises:
        DecontamIndexError: the name has characters other than letters, digits, `_`, `.`, `-` (or is empty).
    """
    name, sep, path = value.partition("=")
    if not sep or not name or "/" in name:
        name, path = "", value
    path_obj = Path(path)
    if not name:
        name = path_obj.name
        for suffix in (".gz", ".zst", ".jsonl", ".json", ".parquet"):
            name = name.removesuffix(suffix)
    if not _SET_NAME.match(name):
        raise DecontamIndexError(
            f"eval set name {name!r} (from {value!r}): use letters, digits, '_', '.', '-' (at most 64)"
        )
    return EvalSet(name, path_obj)


def _records(path: Path) -> Any:
    """Yield (record number, record) of a JSONL(.gz) or Parquet file; errors name the file and record."""
    if not path.is_file():
        raise DecontamIndexError(f"{path}: eval set file not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path)
            row = 0
            for batch in table.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    row += 1
                    yield row, record
        except (OSError, ValueError) as err:
            raise DecontamIndexError(f"{path}: unreadable Parquet ({err})") from err
        return
    try:
        yield from iter_json_lines(str(path))
    except InputError as err:
        raise DecontamIndexError(str(err)) from None


def set_passages(eval_set: EvalSet, text_field: str = "text") -> tuple[str, int, list[str]]:
    """Read an eval set's passages.

    Args:
        eval_set: the set.
        text_field: field of the text in records that are not HellaSwag items.

    Returns:
        (kind "hellaswag" | "text", records read, passages).

    Raises:
        DecontamIndexError: an unreadable file, an empty set, or a record with neither HellaSwag fields nor the text
            field (naming the file and record number).
    """
    kinds, passages, records = set(), [], 0
    for number, record in _records(eval_set.path):
        records += 1
        where = f"{eval_set.path}:{number}"
        if not isinstance(record, dict):
            raise DecontamIndexError(f"{where}: record is a JSON {type(record).__name__}, not an object")
        if "ctx" in record and isinstance(record.get("endings"), list):
            if not isinstance(record["ctx"], str) or not all(isinstance(e, str) for e in record["endings"]):
                raise DecontamIndexError(f"{where}: a HellaSwag item needs a string ctx and string endings")
            kinds.add("hellaswag")
            passages += hellaswag_passages(record)
        elif isinstance(record.get(text_field), str):
            kinds.add("text")
            passages.append(record[text_field])
        else:
            keys = ", ".join(sorted(map(str, record))[:8])
            raise DecontamIndexError(
                f"{where}: neither a HellaSwag item (ctx, endings) nor a '{text_field}' text (keys: {keys})"
            )
    if not records:
        raise DecontamIndexError(f"{eval_set.path}: no records")
    return ("hellaswag" if kinds == {"hellaswag"} else "text"), records, passages


def build_index(
    eval_sets: list[EvalSet], out: Path, ngram: int = DEFAULT_NGRAM, text_field: str = "text"
) -> dict[str, Any]:
    """Index the n-grams of evaluation sets and write the index file (atomically).

    Args:
        eval_sets: the sets (names must be distinct).
        out: the index file to write.
        ngram: n-gram length in words.
        text_field: field of the text in non-HellaSwag records.

    Returns:
        The index's `meta` dict (also stored in the file).

    Raises:
        DecontamIndexError: bad sets or settings, naming the file and record.
    """
    check_ngram(ngram, "--ngram")
    if not eval_sets:
        raise DecontamIndexError("give at least one --eval set")
    names = [s.name for s in eval_sets]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise DecontamIndexError(f"eval set names must differ; repeated: {duplicates} (use NAME=PATH)")
    out = Path(out)
    if out.is_dir():
        raise DecontamIndexError(f"{out}: is a folder; --out names the index file to write")
    if out.exists():
        try:
            load_index(out, settings=False)  # an index we wrote may be replaced; any other file is someone else's
        except DecontamIndexError as err:
            raise DecontamIndexError(f"{out} exists and is not a decontamination index; choose another --out") from err
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "ngram": ngram,
        "normalisation": NORMALISATION,
        "hash": HASH,
        "sets": [],
    }
    arrays = {}
    for i, eval_set in enumerate(eval_sets):
        kind, records, passages = set_passages(eval_set, text_field)
        keys = [ngram_keys(words(p), ngram) for p in passages]
        unique = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)
        if not unique.size:
            raise DecontamIndexError(
                f"{eval_set.path}: no passage of eval set {eval_set.name!r} has {ngram} words, so the index could "
                f"flag nothing; give longer passages or a smaller --ngram (at least {NGRAM_RANGE[0]})"
            )
        arrays[f"set_{i}"] = unique
        meta["sets"].append(
            {
                "name": eval_set.name,
                "path": str(eval_set.path.resolve()),
                "sha256": file_sha256(eval_set.path),
                "kind": kind,
                "records": records,
                "passages": len(passages),
                "too_short": sum(1 for k in keys if not k.size),
                "ngrams": int(unique.size),
            }
        )
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "wb") as f:
        f.write(buffer.getvalue())
    return meta


def check_ngram(ngram: Any, where: str, hint: str = "") -> None:
    """Refuse an n-gram length outside `NGRAM_RANGE` (see there why).

    Args:
        ngram: the length.
        where: what set it, for the message (`--ngram`, or the index file).
        hint: what to do, appended to the message.

    Raises:
        DecontamIndexError: naming `where` and the range.
    """
    low, high = NGRAM_RANGE[0], NGRAM_RANGE[-1]
    if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram not in NGRAM_RANGE:
        raise DecontamIndexError(
            f"{where}: n-grams of {ngram!r} words; {low} to {high} work ({DEFAULT_NGRAM} is GPT-3's): shorter ones "
            f"match common phrases of clean text, longer ones no benchmark passage{hint}"
        )


@dataclass
class DecontamIndex:
    """A loaded index: its metadata and one sorted key array per eval set."""

    meta: dict[str, Any]
    keys: dict[str, np.ndarray]

    @property
    def ngram(self) -> int:
        """The n-gram length."""
        return int(self.meta["ngram"])


def load_index(path: Path, settings: bool = True) -> DecontamIndex:
    """Read and check an index file.

    Args:
        path: a file written by `build_index`.
        settings: also refuse an index whose n-gram length is outside `NGRAM_RANGE` (written before the range
            existed); False only asks whether the file is an index at all (may `build_index` replace it).

    Returns:
        The index.

    Raises:
        DecontamIndexError: missing, not an index, another format version, damaged, or (with `settings`) of an
            n-gram length that cannot work, naming the file.
    """
    path = Path(path)
    build = "build one with `fineforge decontam index`"
    if not path.is_file():
        raise DecontamIndexError(f"{path}: decontamination index not found ({build})")
    with open(path, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:  # np.load would try it as a pickle and advise allow_pickle=True
            raise DecontamIndexError(f"{path}: not a decontamination index (not a NumPy .npz archive); {build}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise DecontamIndexError(f"{path}: not a {FORMAT} version {VERSION} file; {build}")
            keys = {s["name"]: archive[f"set_{i}"] for i, s in enumerate(meta["sets"])}
    except DecontamIndexError:
        raise
    except Exception as err:  # zip, JSON, key and dtype errors all mean one thing: not a usable index
        reason = "it holds pickled objects" if "allow_pickle" in str(err) else f"{type(err).__name__}: {err}"
        raise DecontamIndexError(f"{path}: damaged or not a decontamination index ({reason}); {build}") from err
    for name, array in keys.items():
        if array.dtype != np.uint64 or (array.size > 1 and not bool(np.all(array[1:] > array[:-1]))):
            raise DecontamIndexError(f"{path}: the keys of eval set {name!r} are not sorted unique uint64 values")
    if settings:
        check_ngram(meta.get("ngram"), str(path), "; rebuild it with `fineforge decontam index`")
    return DecontamIndex(meta, keys)
