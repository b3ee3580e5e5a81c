"""The sources of a mixture: `name=SHARDS:weight` parsed and checked, and each source's train stream as documents.

A source is a shard set `fineforge tokenize` wrote (its `manifest.json` is the proof that it is complete). Its
train shards, in manifest order, form one stream of `[EOT, doc...]` units (a document may continue in the next
shard, as in llm.c); `SourceStream` memory-maps them and locates any token range in them, and
`document_starts` finds where each document begins by scanning for `<|endoftext|>` a block at a time, so the
scan needs memory for the document index only (8 bytes a document), never for the tokens.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.hashing import file_sha256
from pipelines.shards import ShardError, manifest_path, read_shard, verify

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCAN_TOKENS = 1 << 24  # tokens compared with EOT at once while indexing documents (16 MiB of booleans)


class MixError(ValueError):
    """A mixture that cannot be made as given; the message names the source or file and the problem."""


@dataclass(frozen=True)
class SourceSpec:
    """One `--source`: a name, a shard set and its weight as given (not yet normalised)."""

    name: str
    shards: str
    weight: float


def parse_source(text: str) -> SourceSpec:
    """Parse `NAME=SHARDS:WEIGHT` (the `--source` flag); the weight is after the last colon.

    Raises:
        MixError: a missing part, an unsafe name, or a weight that is not a positive number.
    """
    name, sep, rest = text.partition("=")
    shards, colon, weight = rest.rpartition(":")
    if not sep or not colon or not name.strip() or not shards.strip():
        raise MixError(f"--source {text!r}: expected NAME=SHARDS:WEIGHT, e.g. web=shards/web:0.7")
    if not NAME.fullmatch(name.strip()):
        raise MixError(f"--source {text!r}: name {name.strip()!r} must be 1-64 letters, digits, '.', '_' or '-'")
    try:
        value = float(weight)
    except ValueError:
        raise MixError(f"--source {text!r}: weight {weight!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise MixError(f"--source {text!r}: weight must be a positive number, got {weight}")
    return SourceSpec(name.strip(), shards.strip(), value)


class SourceStream:
    """The train split of a shard set as one memory-mapped token stream.

    Args:
        directory: the shard set's folder.
        manifest: its manifest.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any]):
        # plain ndarray views of the memory maps: slicing an np.memmap costs several times more per call
        self.maps = [
            np.asarray(read_shard(directory / e["path"])) for e in manifest["shards"] if e.get("split") == "train"
        ]
        self.starts = [0]
        for tokens in self.maps:
            self.starts.append(self.starts[-1] + tokens.size)

    @property
    def size(self) -> int:
        """Tokens in the stream."""
        return self.starts[-1]

    def locate(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The train shard (index into `maps`) holding each stream offset, and the offset inside it (int64 arrays)."""
        starts = np.asarray(self.starts, dtype=np.int64)
        shard = np.searchsorted(starts, offsets, side="right") - 1
        return shard, offsets - starts[shard]

    def span(self, start: int, count: int) -> np.ndarray:
        """The token range `[start, start + count)` joined from the shards it crosses (a copy)."""
        parts, shard = [], bisect.bisect_right(self.starts, start) - 1
        while count > 0:
            part = self.maps[shard][start - self.starts[shard] : start - self.starts[shard] + count]
            parts.append(part)
            start, count, shard = start + part.size, count - part.size, shard + 1
        return np.concatenate(parts)


def document_starts(stream: SourceStream, eot: int, where: Path) -> np.ndarray:
    """Offsets of every document's EOT in the stream, plus the stream's size at the end (int64).

    Raises:
        MixError: the stream does not begin with EOT (so its first document has no boundary).
    """
    found = []
    for base, tokens in zip(stream.starts, stream.maps, strict=False):
        for lo in range(0, tokens.size, SCAN_TOKENS):
            found.append(np.flatnonzero(tokens[lo : lo + SCAN_TOKENS] == eot).astype(np.int64) + base + lo)
    starts = np.concatenate([*found, np.array([stream.size], dtype=np.int64)])
    if stream.size and starts[0] != 0:
        raise MixError(f"{where}: the train shards do not begin with <|endoftext|> ({eot}); not a tokenize shard set")
    return starts


@dataclass
class Source:
    """A checked source: its spec, manifest (path, sha256, contents), normalised weight and document index."""

    spec: SourceSpec
    manifest_path: Path
    sha256: str
    manifest: dict[str, Any]
    weight: float
    stream: SourceStream
    starts: np.ndarray  # `document_starts`

    @property
    def documents(self) -> int:
        """Documents in the train stream."""
        return self.starts.size - 1


def load_source(spec: SourceSpec, weight: float) -> Source:
    """Check that `spec.shards` is a complete shard set (every shard's header and size) and index its documents.

    Raises:
        MixError: no manifest, a damaged shard, or a train split without tokens.
    """
    path = manifest_path(spec.shards)
    try:
        manifest = verify(path, checksums=False)
    except ShardError as e:
        raise MixError(f"source {spec.name!r}: {e}") from None
    stream = SourceStream(path.parent, manifest)
    if stream.size == 0:
        raise MixError(f"source {spec.name!r}: {path} lists no train tokens")
    starts = document_starts(stream, manifest["eot"], path)
    return Source(spec, path.resolve(), file_sha256(path), manifest, weight, stream, starts)


def check_compatible(sources: list[Source]) -> None:
    """Refuse sources made with different tokenizers, vocabularies or end-of-text ids.

    Raises:
        MixError: naming both sources and what differs.
    """
    first = sources[0]
    for other in sources[1:]:
        for field in ("tokenizer", "vocab_size", "eot"):
            a, b = first.manifest.get(field), other.manifest.get(field)
            if a != b:
                raise MixError(
                    f"{other.manifest_path}: {field} {b!r}, but source {first.spec.name!r} ({first.manifest_path}) "
                    f"has {a!r}; a mixture needs one tokenizer"
                )
