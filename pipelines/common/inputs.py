"""Input discovery for every stage: paths, folders, globs and fsspec URLs become a list of typed input files.

One rule everywhere (curate reads every format, tokenize Parquet and JSONL):

- A file named explicitly must have a known format: by its name first (`.warc`, `.arc`, `.wet`, `.jsonl`,
  `.ndjson`, `.parquet`, `.html`, `.htm`, each optionally compressed as `.gz`, `.zst`, `.zstd`, `.bz2`, `.xz`),
  then by sniffing its (decompressed) first bytes. A `.json` file counts as JSONL only when its first line is a
  whole JSON object, so a pretty-printed JSON document is never mistaken for data.
- A folder is searched recursively; hidden names (starting with `.`), folders starting with `_` (work folders of
  other tools, such as Spark's `_temporary/`), anything under an excluded path (a stage's own output) and files of
  other formats are left out.
- A folder holding `summary.json` and `data/` is a curate output: only its `data/*.parquet` are read, and the
  summary's `run_id` and `config_hash` travel on as provenance.
- Compression is recognised by its magic bytes (gzip, zstd, bzip2, xz), whatever the file is called.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import socket
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

FORMATS = ("warc", "jsonl", "parquet", "html")
TEXT_FORMATS = ("jsonl", "parquet")  # inputs that already hold text
COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2", ".xz")
_NAME_FORMATS = {
    ".warc": "warc",
    ".arc": "warc",
    ".wet": "warc",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".html": "html",
    ".htm": "html",
}
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
}
# Errors a damaged compressed stream raises while being read.
STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


class InputError(ValueError):
    """An input that cannot be used; the message names the input (and the record, where there is one)."""


# What a host that cannot be reached raises at the bottom of its exception chain, whichever client library
# (aiohttp for http(s)://, httpx for hf://, botocore for s3://) wraps it: a failed name lookup, a refused or
# reset connection, a timeout.
_NETWORK_ERRORS = (socket.gaierror, ConnectionError, TimeoutError)


def _server(url: str, fs: fsspec.AbstractFileSystem | None) -> str:
    """The server an fsspec URL talks to, for messages: the filesystem's endpoint (hf:// -> huggingface.co), the
    host of an http(s):// URL, else the protocol's service."""
    endpoint = getattr(fs, "endpoint", None)
    if isinstance(endpoint, str) and (host := urllib.parse.urlsplit(endpoint).hostname):
        return host
    parts = urllib.parse.urlsplit(url)
    return parts.hostname if parts.scheme in ("http", "https") and parts.hostname else f"the {parts.scheme}:// service"


@contextlib.contextmanager
def remote_errors(url: str, fs: fsspec.AbstractFileSystem | None = None) -> Iterator[None]:
    """Say in one line why an fsspec URL cannot be read: its filesystem's package is missing, or its server does not
    answer (this machine is offline, or the name does not resolve). Other errors pass through unchanged.

    Args:
        url: the URL as the user gave it.
        fs: its filesystem, where already made (names the server of hf:// URLs).

    Raises:
        InputError: naming the URL and what is missing: the package and how to install it, or the server.
    """
    try:
        yield
    except ImportError as err:  # fsspec: "Install s3fs to access S3", from the ModuleNotFoundError of s3fs
        package = getattr(err.__cause__, "name", None) or getattr(err, "name", None)
        protocol = url.partition("://")[0]
        if not package:
            raise InputError(f"{url}: cannot read {protocol}:// URLs here ({err})") from None
        raise InputError(
            f"{url}: reading {protocol}:// URLs needs the Python package {package}, which is not installed "
            f"(pip install {package})"
        ) from None
    except Exception as err:
        chain, cause = [], err
        while cause is not None and cause not in chain:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        if not any(isinstance(e, _NETWORK_ERRORS) for e in chain):
            raise
        reason = getattr(chain[-1], "strerror", None) or str(chain[-1]) or type(chain[-1]).__name__
        raise InputError(
            f"{url}: cannot reach {_server(url, fs)} ({reason}); this machine may be offline: copy the data here and "
            "give its local path"
        ) from None


@dataclass(frozen=True)
class InputFile:
    """One input file.

    Attributes:
        url: absolute local path or fsspec URL.
        format: one of FORMATS.
        size: size in bytes, or None where the filesystem does not say.
        stamp: modification time (or ETag, commit) as the filesystem reports it; "" where unknown.
    """

    url: str
    format: str
    size: int | None
    stamp: str = ""


@dataclass(frozen=True)
class DiscoveredInput:
    """The files of one input spec, with the provenance of a curate output folder.

    Attributes:
        spec: the input as the user gave it.
        path: the resolved path (local) or the spec (URL).
        files: the files, sorted by URL.
        summary: the curate `summary.json` when the spec is a curate output folder, else None.
    """

    spec: str
    path: str
    files: list[InputFile]
    summary: dict[str, Any] | None = field(default=None)


def compression_of(head: bytes) -> str | None:
    """Return "gzip", "zstd", "bzip2" or "xz" when `head` starts with that format's magic bytes, else None."""
    return next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)


def decompressed(raw: IO[bytes], compression: str | None) -> IO[bytes]:
    """Wrap a binary stream in a decompressor for `compression` (None returns the stream itself).

    Args:
        raw: the compressed stream.
        compression: as `compression_of` names it.

    Returns:
        A binary stream of the decompressed bytes (zstd frames and gzip members are read across).
    """
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw


@contextlib.contextmanager
def open_input(url: str) -> Iterator[IO[bytes]]:
    """Open an input file for reading its decompressed bytes (compression told by magic bytes).

    Args:
        url: local path or fsspec URL.

    Yields:
        A binary stream.
    """
    with remote_errors(url):
        raw = fsspec.open(url, "rb").open()
    with raw:
        compression = compression_of(raw.read(6))
        raw.seek(0)
        with contextlib.closing(decompressed(raw, compression)) as stream:
            yield stream


def format_from_name(name: str) -> str | None:
    """Guess a format from a file name, ignoring a trailing compression suffix.

    Args:
        name: file name or path.

    Returns:
        One of FORMATS, or None for an unknown (or ambiguous, such as `.json`) name.
    """
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        lower = lower.removesuffix(suffix)
    return _NAME_FORMATS.get(Path(lower).suffix)


def sniff_format(head: bytes) -> str | None:
    """Recognise a format from the first decompressed bytes of a file.

    Args:
        head: up to a few KB from the start of the (decompressed) file.

    Returns:
        One of FORMATS, or None. JSON counts as JSONL only if its first line is a whole JSON object.
    """
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip()
    if stripped.startswith((b"WARC/", b"filedesc://")):
        return "warc"
    if stripped.startswith(b"{"):
        first_line = stripped.split(b"\n", 1)[0]
        try:
            return "jsonl" if isinstance(json.loads(first_line), dict) else None
        except ValueError:
            return None
    if stripped[:200].lower().startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in stripped[:1000]:
        return "html"
    return None


def _head(fs: fsspec.AbstractFileSystem, path: str, n: int = 65536) -> bytes:
    with fs.open(path, "rb") as raw:
        start = raw.read(n)
    if (compression := compression_of(start)) is None:
        return start
    try:
        with decompressed(io.BytesIO(start), compression) as stream:
            return stream.read(n)
    except STREAM_ERRORS:
        return b""


def _format_in_folder(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    """A folder member's format: by name, or by content for `.json` names (never sniffing other names)."""
    if fmt := format_from_name(path):
        return fmt
    lower = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        lower = lower.removesuffix(suffix)
    return sniff_format(_head(fs, path)) if lower.endswith(".json") else None


def _skipped(path: str, root: str, excluded: list[str]) -> bool:
    """Hidden names (`.`), work folders of other tools (a folder named `_...`, e.g. Spark's `_temporary/`) and
    excluded paths. A *file* may start with `_`: real page captures do (one of the trafilatura-eval pages)."""
    *folders, name = [part for part in path[len(root) :].split("/") if part]
    hidden = name.startswith(".") or any(part.startswith((".", "_")) for part in folders)
    return hidden or any(path == ex or path.startswith(ex.rstrip("/") + "/") for ex in excluded)


def _input_file(fs: fsspec.AbstractFileSystem, path: str, fmt: str, info: dict[str, Any]) -> InputFile:
    url = path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)
    stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("last_commit") or ""
    size = info.get("size")
    return InputFile(url=url, format=fmt, size=None if size is None else int(size), stamp=str(stamp))


def _curate_summary(fs: fsspec.AbstractFileSystem, root: str, spec: str) -> dict[str, Any] | None:
    """The summary.json of a curate output folder (summary.json beside data/), else None."""
    if not (fs.isfile(f"{root}/summary.json") and fs.isdir(f"{root}/data")):
        return None
    try:
        summary = json.loads(fs.cat_file(f"{root}/summary.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{spec}: summary.json is not valid JSON ({err})") from err
    if not isinstance(summary, dict):
        raise InputError(f"{spec}: summary.json is not a JSON object")
    return summary


def discover(spec: str, formats: tuple[str, ...] = FORMATS, exclude: Iterable[str | Path] = ()) -> DiscoveredInput:
    """Expand one input spec (file, folder, glob or fsspec URL) into its input files, sorted by URL.

    Args:
        spec: the input as the user gave it.
        formats: the formats this stage reads; others are skipped in folders and refused when named.
        exclude: local folders or URLs to leave out (a stage's own output).

    Returns:
        The discovered input.

    Raises:
        InputError: the input does not exist, has no file of a wanted format, or is a file of another format; or
            a URL whose filesystem package is missing or whose server cannot be reached.
    """
    excluded = [str(e) if "://" in str(e) else str(Path(e).resolve()) for e in exclude]
    with remote_errors(spec):
        fs, root = fsspec.core.url_to_fs(spec)
    with remote_errors(spec, fs):
        return _discover(spec, fs, root, formats, excluded)


def _discover(
    spec: str, fs: fsspec.AbstractFileSystem, root: str, formats: tuple[str, ...], excluded: list[str]
) -> DiscoveredInput:
    """`discover` once the filesystem of `spec` is known."""
    wanted = ", ".join(formats)
    local = isinstance(fs, LocalFileSystem)
    if local:
        root = str(Path(root).resolve())
    summary = None
    if any(ch in root for ch in "*?["):
        matches = sorted(fs.glob(root))
        if not matches:
            raise InputError(f"{spec}: no such file or folder")
        picked = [(p, fs.info(p), _format_in_folder(fs, p)) for p in matches if fs.isfile(p)]
    elif fs.isdir(root):
        root = root.rstrip("/")
        if (summary := _curate_summary(fs, root, spec)) is not None:
            picked = [(p, fs.info(p), "parquet") for p in sorted(fs.glob(f"{root}/data/*.parquet"))]
        else:
            found = fs.find(root, detail=True)
            picked = [
                (p, info, _format_in_folder(fs, p))
                for p, info in sorted(found.items())
                if not _skipped(p, root, excluded)
            ]
    elif fs.isfile(root):
        fmt = format_from_name(root) or sniff_format(_head(fs, root))
        if fmt not in formats:
            raise InputError(f"{spec}: cannot tell the format, or not one this stage reads ({wanted})")
        picked = [(root, fs.info(root), fmt)]
    else:
        raise InputError(f"{spec}: no such file or folder")
    files = [_input_file(fs, p, fmt, info) for p, info, fmt in picked if fmt in formats]
    if not files:
        raise InputError(f"{spec}: no input files found (formats: {wanted})")
    return DiscoveredInput(spec=spec, path=root if local else spec, files=files, summary=summary)


def discover_inputs(
    inputs: Iterable[str], formats: tuple[str, ...] = FORMATS, exclude: Iterable[str | Path] = ()
) -> list[InputFile]:
    """Expand every input spec and return the union of their files, sorted by URL, without duplicates.

    Args:
        inputs: paths or URLs as the user gave them.
        formats: the formats this stage reads.
        exclude: local folders or URLs to leave out.

    Returns:
        The input files.

    Raises:
        InputError: as `discover`, for the first input that fails.
    """
    exclude = list(exclude)
    found = {f.url: f for spec in inputs for f in discover(str(spec), formats, exclude).files}
    return [found[url] for url in sorted(found)]


def iter_json_lines(url: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line number, object)` for every non-blank line of a JSON Lines input, strictly.

    For inputs that must be read whole (text to tokenize, labelled examples, eval sets, FineForge's own records);
    curate's `read` stage, which quarantines a bad line and reads on, has its own loop.

    Args:
        url: local path or fsspec URL (any compression, told by magic bytes).

    Yields:
        1-based line numbers and the JSON objects.

    Raises:
        InputError: invalid JSON or a value that is not an object (naming the file and line), or damaged
            compression or invalid UTF-8 (naming the file and the last good line).
    """
    line_no = 0
    with open_input(url) as raw:
        try:
            for line_no, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{url}: line {line_no}: invalid JSON ({e})") from e
                if not isinstance(record, dict):
                    raise InputError(f"{url}: line {line_no}: a JSON {type(record).__name__}, not an object")
                yield line_no, record
        except InputError:
            raise
        except STREAM_ERRORS as e:  # gzip/zstd/bzip2/xz damage, bad UTF-8 (a ValueError)
            raise InputError(f"{url}: unreadable after line {line_no}: {e}") from e
