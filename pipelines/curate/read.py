"""The `read` stage: every record of every input file is a document, a counted skip or a quarantined error.

Input files come from `pipelines.common.inputs` (paths, folders, globs, fsspec URLs; formats detected by name
or content, compression by magic bytes); task `rank` reads `files[rank::world_size]`.

Why not datatrove's own readers: `WarcReader` returns nothing, and counts nothing, for a response whose
`WARC-Identified-Payload-Type` header is absent and whose bytes libmagic does not call `text/html` (63 of the
435 responses of the shared htmldate WARC would vanish that way), and `JsonlReader` only logs a warning for a
broken line. Here the HTTP `Content-Type` of a response is the first signal (then the payload-type header, then
libmagic), every record that does not become a document is counted under a reason (`warc_request`,
`warc_non_html`, `empty_text`, ...), and unreadable records (truncated gzip, broken JSON, invalid UTF-8, a
missing text field, an empty file, a malformed WARC record) go to `quarantine/<rank>.jsonl` with the file, the
line or byte offset, the error and a snippet. Good records before and after a bad one still come through.

Accounting (per task, summed by the curate summary): `records` = `quarantined` + `total`;
`total` = `forwarded` + `dropped`; `dropped` = sum of `dropped_<reason>`.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from pipelines.common.inputs import STREAM_ERRORS, InputFile, compression_of, decompressed

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_SNIPPET_CHARS = 200
_MAX_REPLACED_FRACTION = 0.01  # above 1% replaced characters the page is not text we can trust
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CANONICAL = (
    re.compile(r"""<link[^>]+rel=["']canonical["'][^>]*href=["']([^"']+)["']""", re.IGNORECASE),
    re.compile(r"""<meta[^>]+property=["']og:url["'][^>]*content=["']([^"']+)["']""", re.IGNORECASE),
)


@dataclass(frozen=True)
class Skip:
    """A record that is readable but not a document (a WARC request, an image, an empty text)."""

    reason: str


@dataclass(frozen=True)
class Bad:
    """An unreadable record, bound for quarantine. `line` is 1-based (JSONL/Parquet); `offset` is bytes."""

    error: str
    line: int | None = None
    offset: int | None = None
    snippet: str = ""

    def to_dict(self, file: str) -> dict[str, Any]:
        """Return the quarantine record `{"file", "line"|"offset", "error", "snippet"}`."""
        where = {"line": self.line} if self.line is not None else {"offset": self.offset or 0}
        return {"file": file, **where, "error": self.error, "snippet": self.snippet}


Event = Document | Skip | Bad


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (media type, charset), both lowercased.

    Args:
        value: e.g. `text/html; charset=UTF-8`.

    Returns:
        `("text/html", "utf-8")`; None for missing parts.
    """
    if not value:
        return None, None
    parts = [p.strip() for p in value.split(";")]
    charset = next(
        (p.split("=", 1)[1].strip("\"' ").lower() for p in parts[1:] if p.lower().startswith("charset=")), None
    )
    return (parts[0].lower() or None), charset


def decode_html(body: bytes, charset: str | None = None) -> str | None:
    """Decode a web payload: the declared charset, then a `<meta charset>`, then UTF-8, then cchardet's guess.

    Args:
        body: raw payload bytes.
        charset: the charset the HTTP header declared, if any.

    Returns:
        The text (as UTF-8 with replacement characters if no candidate decodes it strictly and at most 1% of
        the characters need replacing), or None.
    """
    import cchardet

    meta = _META_CHARSET.search(body[:4096])
    candidates = [charset, meta.group(1).decode("ascii", "ignore").lower() if meta else None, "utf-8"]
    candidates.append(cchardet.detect(body).get("encoding"))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            codecs.lookup(candidate)
            return body.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    # Real pages often mix in a few stray bytes; browsers replace them, and so do we, but only a few.
    text = body.decode("utf-8", "replace")
    return text if text.count("\ufffd") <= _MAX_REPLACED_FRACTION * len(text) else None


def _snippet(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:_SNIPPET_CHARS]


class SourceReader(PipelineStep):
    """The `read` stage: reads this task's share of the input files (split by rank) in any supported format.

    Args:
        files: all input files; task `rank` of `world_size` reads `files[rank::world_size]`.
        quarantine_dir: folder (local path or URL) for `<rank>.jsonl` quarantine files.
        text_key: field holding the text in JSONL/Parquet records.
        id_key: field holding the document id in JSONL/Parquet records (a file/line id is made if absent).
        limit: read at most this many documents over all tasks (None: no limit); task `rank` reads its share,
            `limit // world_size` plus one for the first `limit % world_size` tasks.
    """

    name = "read"
    type = "📖 - READER"

    def __init__(
        self,
        files: list[InputFile],
        quarantine_dir: str,
        text_key: str = "text",
        id_key: str = "id",
        limit: int | None = None,
    ):
        super().__init__()
        self.files = list(files)
        self.quarantine_dir = quarantine_dir
        self.text_key = text_key
        self.id_key = id_key
        self.limit = limit

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield this task's documents; count skips; write unreadable records to quarantine."""
        if data:
            yield from data
        emitted = 0
        share = None if self.limit is None else self.limit // world_size + (rank < self.limit % world_size)
        quarantine: IO[str] | None = None
        if share == 0:
            return
        try:
            for source in self.files[rank::world_size]:
                self.stat_update("input_files")
                for event in self.read_file(source):
                    self.stat_update("records")
                    if isinstance(event, Bad):
                        self.stat_update("quarantined")
                        if quarantine is None:
                            quarantine = get_datafolder(self.quarantine_dir).open(f"{rank:05d}.jsonl", "w")
                        quarantine.write(json.dumps(event.to_dict(source.url), ensure_ascii=False) + "\n")
                        continue
                    self.stat_update("total")
                    if isinstance(event, Skip):
                        self.stat_update("dropped", f"dropped_{event.reason}")
                        continue
                    self.stat_update("forwarded")
                    self.update_doc_stats(event)
                    yield event
                    emitted += 1
                    if share is not None and emitted >= share:
                        return
        finally:
            if quarantine is not None:
                quarantine.close()

    def read_file(self, source: InputFile) -> Iterator[Event]:
        """Yield one event per record of `source`; an empty or unopenable file gives one Bad event.

        Args:
            source: the file to read.

        Returns:
            Iterator of Document, Skip and Bad events.
        """
        try:
            with fsspec.open(source.url, "rb") as raw:
                head = raw.read(6)
        except OSError as err:
            yield Bad(f"cannot open file: {err}", offset=0)
            return
        if not head:
            yield Bad("empty file", offset=0)
            return
        reader = {"warc": self._read_warc, "jsonl": self._read_jsonl, "parquet": self._read_parquet}
        with self.track_time("file"):
            yield from reader.get(source.format, self._read_html)(source, compression_of(head))

    def _record_to_event(self, record: Any, source: InputFile, line: int, raw: str) -> Event:
        if not isinstance(record, dict):
            return Bad(f"record is a JSON {type(record).__name__}, not an object", line=line, snippet=_snippet(raw))
        if self.text_key not in record:
            keys = ", ".join(sorted(record)[:10])
            return Bad(f"missing text field '{self.text_key}' (keys: {keys})", line=line, snippet=_snippet(raw))
        text = record.pop(self.text_key)
        if not isinstance(text, str):
            error = f"text field '{self.text_key}' is {type(text).__name__}, not a string"
            return Bad(error, line=line, snippet=_snippet(raw))
        if not text.strip():
            return Skip("empty_text")
        doc_id = record.pop(self.id_key, None)
        metadata = record.pop("metadata", None)
        metadata = (
            dict(metadata) if isinstance(metadata, dict) else ({} if metadata is None else {"metadata": metadata})
        )
        metadata |= record
        metadata |= {"source_file": source.url, "content_type": "text"}
        return Document(text=text, id=str(doc_id) if doc_id is not None else f"{source.url}#{line}", metadata=metadata)

    def _read_jsonl(self, source: InputFile, compression: str | None) -> Iterator[Event]:
        import orjson

        line = 0
        with fsspec.open(source.url, "rb") as raw, decompressed(raw, compression) as stream:
            try:
                for line, data in enumerate(stream, start=1):
                    if not data.strip():
                        continue
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError as err:
                        yield Bad(
                            f"invalid UTF-8 at byte {err.start}: {err.reason}", line=line, snippet=_snippet(data)
                        )
                        continue
                    try:
                        record = orjson.loads(text)
                    except orjson.JSONDecodeError as err:
                        yield Bad(f"broken JSON line: {err}", line=line, snippet=_snippet(text))
                        continue
                    yield self._record_to_event(record, source, line, text)
            except STREAM_ERRORS as err:
                yield Bad(f"truncated or corrupt {compression or 'file'} stream: {err}", line=line + 1)
        if line == 0:
            yield Bad("empty file", offset=0)

    def _read_parquet(self, source: InputFile, compression: str | None) -> Iterator[Event]:
        import pyarrow.parquet as pq

        row = 0
        try:
            with fsspec.open(source.url, "rb") as raw:
                table = pq.ParquetFile(raw)
                for batch in table.iter_batches(batch_size=1024):
                    for record in batch.to_pylist():
                        row += 1
                        yield self._record_to_event(record, source, row, str(record)[:_SNIPPET_CHARS])
        except (OSError, ValueError) as err:
            yield Bad(f"unreadable Parquet: {err}", line=row + 1)

    def _read_html(self, source: InputFile, compression: str | None) -> Iterator[Event]:
        try:
            with fsspec.open(source.url, "rb") as raw, decompressed(raw, compression) as stream:
                body = stream.read()
        except STREAM_ERRORS as err:
            yield Bad(f"truncated or corrupt {compression or 'file'} stream: {err}", offset=0)
            return
        if not body.strip():
            yield Bad("empty file", offset=0)
            return
        html = decode_html(body)
        if html is None:
            yield Bad("undecodable HTML (no charset decodes it)", offset=0, snippet=_snippet(body))
            return
        head = html[:20000]
        url = next((m.group(1) for pattern in _CANONICAL if (m := pattern.search(head))), source.url)
        metadata = {"url": url, "source_file": source.url, "content_type": "html"}
        yield Document(text=html, id=source.url, metadata=metadata)

    def _read_warc(self, source: InputFile, compression: str | None) -> Iterator[Event]:
        from warcio.exceptions import ArchiveLoadFailed

        seen = 0
        with fsspec.open(source.url, "rb") as raw:
            try:
                for event in _warc_events(raw, source, skip=0):
                    seen += 1
                    yield event
                return
            except ArchiveLoadFailed as err:
                if "non-chunked gzip" not in str(err):
                    raise
        # A WARC gzipped as one stream instead of one member per record: still valid, only not seekable per
        # record, so read it through a single decompressor (offsets are then into the decompressed stream).
        with fsspec.open(source.url, "rb") as raw:
            yield from _warc_events(gzip.GzipFile(fileobj=raw), source, skip=seen)


def _warc_events(stream: IO[bytes], source: InputFile, skip: int) -> Iterator[Event]:
    """Events for the records of one WARC/ARC stream; a stream error ends the file with one Bad event.

    Raises ArchiveLoadFailed for a whole-file gzip (the caller retries through one decompressor).
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    iterator = ArchiveIterator(stream, arc2warc=True)
    index, end = 0, 0
    records = iter(iterator)
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except ArchiveLoadFailed as err:
            if "non-chunked gzip" in str(err):
                raise
            yield Bad(f"malformed WARC: {' '.join(str(err).split())}", offset=end)
            return
        except STREAM_ERRORS as err:
            yield Bad(f"truncated or corrupt WARC stream: {err}", offset=end)
            return
        try:
            body = record.content_stream().read()
            offset = iterator.get_record_offset()
            end = offset + iterator.get_record_length()
        except STREAM_ERRORS as err:
            yield Bad(f"unreadable WARC record payload: {err}", offset=end)
            return
        index += 1
        if index <= skip:
            continue
        yield _warc_record_event(record, body, source, offset)


def _warc_record_event(record: Any, body: bytes, source: InputFile, offset: int) -> Event:
    """Classify one WARC record: an HTML (or WET text) document, a counted skip, or a quarantined error."""
    import magic

    rec_type = record.rec_type
    if rec_type not in ("response", "resource", "conversion"):
        return Skip(f"warc_{rec_type}")
    headers = record.rec_headers
    length = headers.get_header("Content-Length") or ""
    if not length.isdigit():
        return Bad(f"invalid Content-Length {length!r} in {rec_type} record", offset=offset)
    warc_type, _ = parse_content_type(headers.get_header("Content-Type"))
    charset = None
    if rec_type == "response" and warc_type and warc_type.startswith("application/http"):
        if record.http_headers is None or not record.http_headers.statusline:
            return Bad("HTTP response record without a status line", offset=offset, snippet=_snippet(body))
        mime, charset = parse_content_type(record.http_headers.get_header("Content-Type"))
    else:
        mime = warc_type
    mime = mime or parse_content_type(headers.get_header("WARC-Identified-Payload-Type"))[0]
    if mime is None and body:
        mime = magic.from_buffer(body[:4096], mime=True)
    if mime not in _HTML_TYPES and not (rec_type == "conversion" and mime == "text/plain"):
        return Skip("warc_non_html")
    if not body.strip():
        return Skip("empty_payload")
    text = decode_html(body, charset)
    if text is None:
        return Bad("undecodable payload (no charset decodes it)", offset=offset, snippet=_snippet(body))
    url = headers.get_header("WARC-Target-URI") or headers.get_header("uri")
    metadata = {
        "url": url,
        "date": headers.get_header("WARC-Date"),
        "source_file": source.url,
        "content_type": "text" if rec_type == "conversion" else "html",
    }
    doc_id = headers.get_header("WARC-Record-ID") or f"{source.url}@{offset}"
    return Document(text=text, id=doc_id, metadata=metadata)
