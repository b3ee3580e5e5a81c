"""The token shard format: the one module that knows its byte layout.

A shard is llm.c's GPT-2 data file (`dev/data/data_common.py` in karpathy/llm.c), so the same files train
here, in llm.c and in nanoGPT-style loaders:

- header: 256 little-endian int32 words, ``[20240520, 1, n_tokens, 0, 0, ...]`` (magic, version, count);
- body: ``n_tokens`` little-endian uint16 GPT-2 token ids (vocab 50257 fits below 65536);
- every document is preceded by ``<|endoftext|>`` (50256), as llm.c's FineWeb script writes it, so a
  reader finds document boundaries without an index;
- file names are ``{split}_{index:06d}.bin`` (``train_000000.bin``, ``val_000000.bin``), and every shard but
  the last of a split holds exactly the configured number of tokens. As in llm.c, a document that does not fit
  continues in the next shard, so only the first shard of a split is sure to start with EOT; a shard's
  `documents` count in the manifest is the number of EOTs (document starts) it holds.

`manifest.json` beside the shards lists each one with its token and document counts and sha256; it is
written last and atomically, so its presence means the shard set is complete. This module owns that contract too:
`Manifest` its fields, `write_manifest` and `load_manifest` its writer and reader, `manifest_path` where it lies,
and `verify` its invariants (every listed shard intact, split totals = the shards' tokens).
Every failure raises `ShardError` with the offending file in the message.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipelines.common.files import load_contract, read_json, sync_and_rename, temp_sibling, write_json_atomic
from pipelines.common.hashing import file_sha256

MAGIC = 20240520
VERSION = 1
HEADER_WORDS = 256
HEADER_BYTES = HEADER_WORDS * 4
TOKEN_DTYPE = np.dtype("<u2")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "llm.c-gpt2-v1"
MANIFEST_FIELDS = ("format", "vocab_size", "eot", "shards")  # what every reader of a manifest relies on


class ShardError(ValueError):
    """A shard or manifest that does not match the format; the message names the file."""


class Manifest(BaseModel):
    """The fields of `manifest.json`, in the order they are written; a field left unset is not written.

    `source` is {`path`, `run_id`, `config_hash`} of the documents tokenized; `shards` [{`path`, `split`, `tokens`,
    `documents`, `sha256`}]; `total_tokens` and `documents` are per split. Unknown fields are kept.
    """

    model_config = ConfigDict(extra="allow")

    format: str
    tokenizer: str | None = None
    vocab_size: int
    eot: int
    config_hash: str | None = None
    source: dict[str, Any] | None = None
    shards: list[dict[str, Any]]
    total_tokens: dict[str, int] | None = None
    documents: dict[str, int] | None = None
    created: str | None = None


def shard_name(split: str, index: int) -> str:
    """Return the file name of shard `index` of `split`, e.g. ``train_000003.bin``."""
    return f"{split}_{index:06d}.bin"


def unit_starts(unit_tokens: np.ndarray) -> np.ndarray:
    """Start offset of each [EOT, doc...] unit in its split's token stream, plus the total at the end (int64)."""
    starts = np.zeros(unit_tokens.size + 1, dtype=np.int64)
    np.cumsum(unit_tokens, out=starts[1:])
    return starts


def plan_split(split: str, starts: np.ndarray, shard_tokens: int) -> list[dict[str, Any]]:
    """Cut one split's stream into shards of `shard_tokens` (the last one shorter), as the format prescribes.

    Args:
        split: "train" or "val" (the file name's prefix).
        starts: `unit_starts` of the split's units, in shard order.
        shard_tokens: tokens per shard.

    Returns:
        One record per shard: `path`, `split`, `index`, `tokens`, `documents` (units starting in it).
    """
    total = int(starts[-1])
    shards = []
    for index in range(math.ceil(total / shard_tokens)):
        lo, hi = index * shard_tokens, min((index + 1) * shard_tokens, total)
        docs = int(np.searchsorted(starts[:-1], hi) - np.searchsorted(starts[:-1], lo))
        shards.append(
            {"path": shard_name(split, index), "split": split, "index": index, "tokens": hi - lo, "documents": docs}
        )
    return shards


def write_shard(path: str | Path, tokens: np.ndarray) -> str:
    """Write `tokens` as one shard, atomically (temporary file, fsync, then rename).

    Args:
        path: destination file.
        tokens: 1-D array of token ids, all in [0, 65535].

    Returns:
        The sha256 hex digest of the written file.
    """
    tmp, sha = write_shard_unsynced(path, tokens)
    sync_and_rename(tmp, Path(path))
    return sha


def write_shard_unsynced(path: str | Path, tokens: np.ndarray) -> tuple[Path, str]:
    """Write `tokens` as a shard into a new temporary sibling of `path`, not yet fsynced or renamed (that is
    `pipelines.common.files.sync_and_rename`, which a caller may run in another thread while it goes on).

    Returns:
        The temporary file and the sha256 hex digest of its bytes.

    Raises:
        ShardError: tokens that are not 1-D or do not fit in uint16 (nothing is written).
    """
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ShardError(f"{path}: tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and not np.can_cast(tokens.dtype, TOKEN_DTYPE) and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise ShardError(f"{path}: token ids must fit in uint16")
    header = np.zeros(HEADER_WORDS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, tokens.size)
    body = memoryview(np.ascontiguousarray(tokens.astype(TOKEN_DTYPE, copy=False))).cast("B")  # no copy
    digest = hashlib.sha256(header.tobytes())
    digest.update(body)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(header.tobytes())
            f.write(body)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def read_header(path: str | Path) -> int:
    """Check a shard's header and size and return its token count.

    Raises:
        ShardError: wrong magic or version, or a file size that disagrees with the header.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard ({e.strerror or e})") from e
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: truncated shard ({size} bytes, the header alone is {HEADER_BYTES})")
    header = np.fromfile(path, dtype="<i4", count=HEADER_WORDS)
    if header[0] != MAGIC:
        raise ShardError(f"{path}: bad magic {header[0]} (expected {MAGIC}); not an llm.c token shard")
    if header[1] != VERSION:
        raise ShardError(f"{path}: unsupported shard version {header[1]} (expected {VERSION})")
    n_tokens = int(header[2])
    if n_tokens < 0:
        raise ShardError(f"{path}: negative token count {n_tokens} in the header")
    expected = HEADER_BYTES + n_tokens * TOKEN_DTYPE.itemsize
    if size != expected:
        raise ShardError(f"{path}: size {size} bytes, but the header promises {n_tokens} tokens ({expected} bytes)")
    return n_tokens


def read_shard(path: str | Path) -> np.memmap:
    """Memory-map a shard's tokens after checking magic, version and file size.

    Returns:
        A read-only uint16 memory map of the tokens.
    """
    n_tokens = read_header(path)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(n_tokens,))


def check_token_range(path: str | Path, vocab_size: int) -> None:
    """Check that every token id of a shard is below `vocab_size` (reads every token; memory-speed, no hashing).

    Raises:
        ShardError: naming the shard, the first offending position and its id.
    """
    tokens = read_shard(path)
    if tokens.size and int(tokens.max()) >= vocab_size:
        position = int(np.argmax(tokens >= vocab_size))
        raise ShardError(
            f"{path}: token {position} is id {int(tokens[position])}, outside the vocabulary (vocab_size {vocab_size})"
        )


def manifest_path(data: str | Path) -> Path:
    """The manifest of `data`: a `manifest.json` itself, or the shard folder that holds one."""
    path = Path(data)
    return path / MANIFEST_NAME if path.is_dir() else path


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write `manifest.json` into `directory` atomically and return its path."""
    return write_json_atomic(Path(directory) / MANIFEST_NAME, manifest.model_dump(exclude_unset=True))


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest (a path to `manifest.json` or to its directory) and check its format fields."""
    path = manifest_path(path)
    manifest = load_contract(path, MANIFEST_FIELDS, ShardError, "no manifest: the shard set is missing or incomplete")
    if manifest["format"] != MANIFEST_FORMAT:
        raise ShardError(f"{path}: manifest format {manifest['format']!r}, expected {MANIFEST_FORMAT!r}")
    return manifest


def verify(manifest_path: str | Path, checksums: bool = True) -> dict[str, Any]:
    """Check every shard a manifest lists: header, size, token count, split totals and (optionally) content.

    Args:
        manifest_path: `manifest.json` or the directory holding it.
        checksums: also read every byte: recompute each shard's sha256 and check that every token id is
            below the manifest's `vocab_size` (`check_token_range`, which the trainer runs in any case).

    Returns:
        The loaded manifest.

    Raises:
        ShardError: naming the first file that fails.
    """
    manifest_path = Path(manifest_path)
    directory = manifest_path if manifest_path.is_dir() else manifest_path.parent
    manifest = load_manifest(manifest_path)
    split_tokens: dict[str, int] = {}
    for entry in manifest["shards"]:
        path = directory / entry["path"]
        if not path.is_file():
            raise ShardError(f"{path}: listed in the manifest but missing")
        n_tokens = read_header(path)
        if n_tokens != entry["tokens"]:
            raise ShardError(f"{path}: holds {n_tokens} tokens, the manifest says {entry['tokens']}")
        split = entry.get("split", "")
        split_tokens[split] = split_tokens.get(split, 0) + n_tokens
        if checksums:
            if file_sha256(path) != entry["sha256"]:
                raise ShardError(f"{path}: sha256 does not match the manifest (corrupt or replaced shard)")
            check_token_range(path, manifest["vocab_size"])
    for split, total in manifest.get("total_tokens", {}).items():
        if split_tokens.get(split, 0) != total:
            raise ShardError(
                f"{manifest_path}: total_tokens[{split!r}] is {total}, its shards hold {split_tokens.get(split, 0)}"
            )
    return manifest


def made_by(directory: Path, job_file: Path, job: dict[str, Any]) -> bool:
    """True when `directory` holds a manifest written by exactly `job` (as recorded in `job_file`), its shards
    intact in size: a finished run that a rerun of the same job reuses."""
    manifest_file = directory / MANIFEST_NAME
    if not manifest_file.exists() or read_json(job_file) != job:
        return False
    try:
        verify(manifest_file, checksums=False)
    except ShardError:
        return False
    return True
