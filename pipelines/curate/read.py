"""The `read` stage: every record of every input file is a document, a record that is not one, or quarantined.

Input files come from `pipelines.common.inputs` (paths, folders, globs, fsspec URLs; formats detected by name
or content, compression by magic bytes); task `rank` reads `files[rank::world_size]`.

Why not datatrove's own readers: `WarcReader` returns nothing, and counts nothing, for a response whose
`WARC-Identified-Payload-Type` header is absent and whose bytes libmagic does not call `text/html` (63 of the
435 responses of the shared htmldate WARC would vanish that way), and `JsonlReader` only logs a warning for a
broken line. Here the HTTP `Content-Type` of a response is the first signal (then the payload-type header, then
libmagic). WARC records are framed by `pipelines.curate.warc`, which resynchronises after a damaged record instead
of losing the rest of the file, and decoded as browsers decode them (`pipelines.curate.encoding`).

Every record ends up in exactly one place:
- a document, passed on;
- a document dropped at read under a reason (`warc_non_html`, `empty_payload`, `empty_text`);
- not a document at all (`NotDocument`: WARC `request`, `metadata`, `warcinfo`, `revisit` records), counted by
  record type as `skipped_<type>` and kept out of the document funnel (`records_skipped` in `summary.json`);
- unreadable (truncated gzip, damaged WARC bytes, broken JSON, invalid UTF-8, a missing text field, an empty file,
  a record over `read.max_record_mb`): `quarantine/<rank>.jsonl` gets the file, the line or byte offset (and the
  end of a damaged byte range), the error and a snippet (both anonymised by `pipelines.curate.pii` unless
  `pii.raw_rejects` or the stage is off). Good records before and after a bad one still come
  through.

Accounting (per task, summed by the curate summary): `records` = `quarantined` + `skipped` + `total`;
`skipped` = sum of `skipped_<type>`; `total` = `forwarded` + `dropped`; `dropped` = sum of `dropped_<reason>`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from pipelines.common.inputs import STREAM_ERRORS, InputFile, compression_of, decompressed
from pipelines.curate.encoding import decode_html
from pipelines.curate.warc import Damaged, WarcFramer, parse_record

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_DOCUMENT_RECORDS = ("response", "resource", "conversion")  # other WARC record types are never documents
_ARC_START = b"filedesc://"
DEFAULT_MAX_RECORD_BYTES = 16 * 2**20  # `read.max_record_mb` in pipelines.curate.config says why
_SNIPPET_CHARS = 200
_CANONICAL = (
    re.compile(r"""<link[^>]+rel=["']canonical["'][^>]*href=["']([^"']+)["']""", re.IGNORECASE),
    re.compile(r"""<meta[^>]+property=["']og:url["'][^>]*content=["']([^"']+)["']""", re.IGNORECASE),
)


@dataclass(frozen=True)
class Skip:
    """A document dropped at read, with its reason (`warc_non_html`: an image, `empty_text`, ...)."""

    reason: str


@dataclass(frozen=True)
class NotDocument:
    """A record that is not meant to be a document: a WARC `request`, `metadata`, `warcinfo` or `revisit` record.

    Counted as `records_skipped` by record type in `summary.json`, outside the document funnel.
    """

    record_type: str


@dataclass(frozen=True)
class Bad:
    """An unreadable record, bound for quarantine.

    `line` is 1-based (JSONL/Parquet); `offset` is bytes, and `end` ends a damaged byte range (None: not a range,
    or up to the end of the file).
    """

    error: str
    line: int | None = None
    offset: int | None = None
    snippet: str = ""
    end: int | None = None

    def to_dict(self, file: str) -> dict[str, Any]:
        """Return the quarantine record `{"file", "line"|"offset", ["end"], "error", "snippet"}`."""
        where = {"line": self.line} if self.line is not None else {"offset": self.offset or 0}
        if self.end is not None:
            where["end"] = self.end
        return {"file": file, **where, "error": self.error, "snippet": self.snippet}


Event = Document | Skip | NotDocument | Bad


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
        max_record_bytes: a record (WARC record, JSONL line, Parquet text, HTML file) larger than this is
            quarantined without being held in memory (a 50 MB JSONL line took 3.9 GB downstream).
        anonymize: applied to each quarantine record's error and snippet (`pipelines.curate.pii`; None: raw).
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
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        anonymize: Callable[[str], str] | None = None,
    ):
        super().__init__()
        self.files = list(files)
        self.quarantine_dir = quarantine_dir
        self.text_key = text_key
        self.id_key = id_key
        self.limit = limit
        self.max_record_bytes = max_record_bytes
        self.anonymize = anonymize

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
                        quarantine.write(json.dumps(self._quarantine_record(event, source), ensure_ascii=False) + "\n")
                        continue
                    if isinstance(event, NotDocument):
                        self.stat_update("skipped", f"skipped_{event.record_type or 'unknown'}")
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

    def _quarantine_record(self, bad: Bad, source: InputFile) -> dict[str, Any]:
        """The quarantine line of `bad`, its error and snippet anonymised (the file name is the user's own)."""
        record = bad.to_dict(source.url)
        if self.anonymize is not None:
            record |= {"error": self.anonymize(record["error"]), "snippet": self.anonymize(record["snippet"])}
        return record

    def read_file(self, source: InputFile) -> Iterator[Event]:
        """Yield one event per record of `source`; an empty or unopenable file gives one Bad event.

        Args:
            source: the file to read.

        Returns:
            Iterator of Document, Skip, NotDocument and Bad events.
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

    def _too_large(self, size: int, what: str, **where: int) -> Bad:
        mib = self.max_record_bytes / 2**20
        return Bad(f"{what} of {size:,} bytes is larger than read.max_record_mb ({mib:g} MiB)", **where)

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
        if len(text) > self.max_record_bytes // 4 and (size := len(text.encode("utf-8"))) > self.max_record_bytes:
            return self._too_large(size, f"text field '{self.text_key}'", line=line)
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

    def _lines(self, stream: IO[bytes]) -> Iterator[bytes | int]:
        """The lines of a stream; a line longer than the cap is read through and given as its length in bytes."""
        while data := stream.readline(self.max_record_bytes + 1):
            if len(data) <= self.max_record_bytes or data.endswith(b"\n"):
                yield data
                continue
            size = len(data)
            while (more := stream.readline(1 << 20)) and not more.endswith(b"\n"):
                size += len(more)
            yield size + len(more)

    def _read_jsonl(self, source: InputFile, compression: str | None) -> Iterator[Event]:
        import orjson

        line = 0
        with fsspec.open(source.url, "rb") as raw, decompressed(raw, compression) as stream:
            try:
                for line, data in enumerate(self._lines(stream), start=1):
                    if isinstance(data, int):
                        yield self._too_large(data, "line", line=line)
                        continue
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
                body = stream.read(self.max_record_bytes + 1)
                if len(body) > self.max_record_bytes:
                    size = len(body) + sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))
                    yield self._too_large(size, "HTML file", offset=0)
                    return
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
        with fsspec.open(source.url, "rb") as raw:
            is_arc = _decompressed_head(raw, compression, len(_ARC_START)) == _ARC_START
            raw.seek(0)
            if is_arc:
                yield from _arc_events(raw, source)
            elif compression in (None, "gzip"):
                yield from _framed_events(WarcFramer(raw, compression == "gzip", self.max_record_bytes), source)
            else:
                with decompressed(raw, compression) as stream:
                    framer = WarcFramer(stream, False, self.max_record_bytes)
                    try:
                        yield from _framed_events(framer, source)
                    except STREAM_ERRORS as err:
                        yield Bad(f"truncated or corrupt {compression} stream: {err}", offset=framer.stream.pos)


def _decompressed_head(raw: IO[bytes], compression: str | None, n: int) -> bytes:
    """The first `n` decompressed bytes of a file (b"" when they cannot be decompressed)."""
    start = raw.read(1 << 16)
    if compression is None:
        return start[:n]
    try:
        with decompressed(io.BytesIO(start), compression) as stream:
            return stream.read(n)
    except STREAM_ERRORS:
        return b""


def _framed_events(framer: WarcFramer, source: InputFile) -> Iterator[Event]:
    """Events for the framed records and damaged ranges of one WARC file."""
    from warcio.exceptions import ArchiveLoadFailed

    for item in framer.records():
        if isinstance(item, Damaged):
            yield Bad(item.reason, offset=item.offset, end=item.end, snippet=_snippet(item.snippet))
            continue
        if item.rec_type not in _DOCUMENT_RECORDS:
            yield NotDocument(item.rec_type)
            continue
        try:
            record, body = parse_record(item)
        except (ArchiveLoadFailed, *STREAM_ERRORS) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            yield Bad(f"malformed WARC record: {message}", offset=item.offset, snippet=_snippet(item.data))
            continue
        yield _warc_record_event(record, body, source, item.offset)


def _arc_events(raw: IO[bytes], source: InputFile) -> Iterator[Event]:
    """Events for the records of an ARC file (warcio's framing); a stream error ends the file with one Bad event."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    iterator = ArchiveIterator(raw, arc2warc=True)
    end = 0
    records = iter(iterator)
    while True:
        try:
            record = next(records)
            body = record.content_stream().read()
            offset = iterator.get_record_offset()
            end = offset + iterator.get_record_length()
        except StopIteration:
            return
        except (ArchiveLoadFailed, *STREAM_ERRORS) as err:
            yield Bad(f"malformed ARC record: {' '.join(str(err).split())}", offset=end)
            return
        yield _warc_record_event(record, body, source, offset)


def _warc_record_event(record: Any, body: bytes, source: InputFile, offset: int) -> Event:
    """Classify one WARC record: an HTML (or WET text) document, a counted skip, or a quarantined error."""
    import magic

    rec_type = record.rec_type
    if rec_type not in _DOCUMENT_RECORDS:
        return NotDocument(rec_type)
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
