"""WARC framing that survives damage: every byte of a file is a record, or a quarantined range with its reason.

warcio parses a record well but trusts each `Content-Length` to find the next one, so one wrong length loses every
intact record after it (seen here: a length 500 bytes too short or too long ended the file at that record, and
the rest was never counted); it keeps a record cut short by a truncated `.warc.gz` as if it were whole; and it
reads a text file named `.warc.gz` as a hundred ARC records with "invalid Content-Length" each. So the framing is
done here, and warcio parses one framed record at a time (HTTP headers, chunked and compressed payloads):

- a record is a `WARC/1.x` header block, `Content-Length` bytes, then `\\r\\n\\r\\n`; a record that does not end
  there (a wrong length either way, a header without a valid length, bytes that are not a record) is damaged;
- after damage the reader resynchronises at the next `WARC/1.` line (or the next gzip member that starts with
  one) and quarantines the skipped byte range, so intact records after it still come through;
- gzip members are decompressed here, one by one (Common Crawl writes one per record), with ISA-L's inflate
  (`isal`, zlib's interface at twice its speed: 0.47 against 1.0 CPU-s for the 208 MB of the shared corpora's
  1,333-page WARC), the largest cost of reading a WARC; a corrupt member is
  skipped up to the next member that starts a WARC record, a member cut off by the end of the file ends it, each
  with one quarantine line; a whole-file gzip is one member read as a stream;
- a record whose `Content-Length` exceeds the size cap is skipped without being read into memory;
- a file in which no `WARC/1.` header is ever found gets a single quarantine line saying so.

Offsets: in an uncompressed file, byte offsets of the file; in a gzip file, the compressed offset of the member a
record or damaged range starts with (Common Crawl's index uses the same), or, inside a member holding several
records (a whole-file gzip), the offset in the decompressed stream, which the message then says.
ARC files (`filedesc://`) keep warcio's own framing (`pipelines.curate.read`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from isal import isal_zlib

CHUNK_BYTES = 1 << 20  # compressed or plain bytes read at a time, and the most decompressed bytes per step
MAX_HEADER_BYTES = 1 << 16  # a WARC header block longer than this is not a header (real ones are under 2 KB)
RECORD_START = b"WARC/1."
RECORD_END = b"\r\n\r\n"
# A record whose terminator comes up to this many bytes after its Content-Length says is read, not quarantined: its
# length undercounts a whole record. Common Crawl's August 2018 WARCs (CC-MAIN-2018-34) hold an extra CRLF per record
# with a Content-Length off by 2; warcio's example-trunc.warc is 6 bytes off.
LATE_END_BYTES = 16
_GZIP_MAGIC = b"\x1f\x8b\x08"
_SNIPPET_BYTES = 200
_ALL = 1 << 62


@dataclass(frozen=True)
class Framed:
    """One whole WARC record: its bytes (header block, content, terminator), where it starts and its type."""

    data: bytes
    offset: int
    rec_type: str


@dataclass(frozen=True)
class Damaged:
    """A byte range that is not a readable record: why, where it starts and ends (`end` None: end of file)."""

    reason: str
    offset: int
    end: int | None
    snippet: bytes = b""


@dataclass(frozen=True)
class _Member:
    """A gzip member starts here (its compressed offset)."""

    offset: int


@dataclass(frozen=True)
class _Gap:
    """Decompressed bytes are missing here: a corrupt or truncated member, or bytes between members."""

    reason: str
    offset: int
    end: int | None


_Item = bytes | _Member | _Gap


def _plain_items(raw: IO[bytes]) -> Iterator[_Item]:
    while chunk := raw.read(CHUNK_BYTES):
        yield chunk


def _starts_warc_member(raw: IO[bytes], offset: int) -> bool:
    """Whether a gzip member starting at `offset` decompresses to the start of a WARC record."""
    raw.seek(offset)
    head = raw.read(1 << 14)
    try:
        return isal_zlib.decompressobj(31).decompress(head, len(RECORD_START)) == RECORD_START
    except isal_zlib.error:
        return False


def _next_member(raw: IO[bytes], after: int) -> int | None:
    """The compressed offset of the next gzip member after `after` that starts a WARC record, or None."""
    position, tail = after, b""
    while True:
        raw.seek(position)
        chunk = raw.read(CHUNK_BYTES)
        if not chunk:
            return None
        data = tail + chunk
        base = position - len(tail)
        index = data.find(_GZIP_MAGIC)
        while index != -1:
            candidate = base + index
            if candidate > after and _starts_warc_member(raw, candidate):
                return candidate
            index = data.find(_GZIP_MAGIC, index + 1)
        tail = data[-(len(_GZIP_MAGIC) - 1) :]
        position += len(chunk)


def _gzip_items(raw: IO[bytes]) -> Iterator[_Item]:
    """Decompressed bytes of a multi-member gzip file, with member starts and the gaps of damaged members."""
    offset, pending = 0, b""
    while True:
        if len(pending) < len(_GZIP_MAGIC):
            raw.seek(offset + len(pending))
            pending += raw.read(CHUNK_BYTES)
        if not pending:
            return
        if not pending.startswith(_GZIP_MAGIC):
            resume = _next_member(raw, offset)
            yield _Gap("bytes that are not a gzip member", offset, resume)
            if resume is None:
                return
            offset, pending = resume, b""
            continue
        start = offset
        yield _Member(start)
        inflater = isal_zlib.decompressobj(31)
        try:
            while not inflater.eof:
                if not pending:
                    raw.seek(offset)
                    pending = raw.read(CHUNK_BYTES)
                    if not pending:
                        yield _Gap("gzip member cut short: the file ends inside it (truncated file)", start, None)
                        return
                out = inflater.decompress(pending, CHUNK_BYTES)
                rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                offset += len(pending) - len(rest)
                pending = rest
                if out:
                    yield out
        except isal_zlib.error as err:
            resume = _next_member(raw, start)
            yield _Gap(f"corrupt gzip member ({err})", start, resume)
            if resume is None:
                return
            offset, pending = resume, b""


class _Stream:
    """Decompressed bytes with look-ahead, positions, the member starts seen and a pending gap."""

    def __init__(self, items: Iterator[_Item]):
        self._items = items
        self._buf = bytearray()
        self.pos = 0  # decompressed position of _buf[0]
        self.members: dict[int, int] = {}  # decompressed position -> compressed offset of the member starting there
        self.gap: _Gap | None = None
        self._eof = False

    def _fill(self) -> bool:
        """Append the next decompressed bytes; False at the end of the file or at a gap."""
        if self.gap is not None or self._eof:
            return False
        for item in self._items:
            if isinstance(item, _Member):
                self.members[self.pos + len(self._buf)] = item.offset
            elif isinstance(item, _Gap):
                self.gap = item
                return False
            elif item:
                self._buf += item
                return True
        self._eof = True
        return False

    def peek(self, n: int) -> bytes:
        """Up to `n` bytes from the current position, without consuming them (fewer at a gap or the end)."""
        while len(self._buf) < n and self._fill():
            pass
        return bytes(self._buf[:n])

    def find(self, needle: bytes, start: int, limit: int) -> int:
        """Index (from the current position) of `needle` at or after `start` within `limit` bytes, or -1."""
        while True:
            index = self._buf.find(needle, start, limit)
            if index != -1 or len(self._buf) >= limit or not self._fill():
                return index

    def consume(self, n: int) -> None:
        """Drop `n` bytes (they must have been peeked)."""
        del self._buf[:n]
        self.pos += n

    def skip(self, n: int) -> int:
        """Drop up to `n` bytes without holding more than one chunk of them; return how many were dropped."""
        dropped = 0
        while dropped < n and (self._buf or self._fill()):
            step = min(n - dropped, len(self._buf))
            self.consume(step)
            dropped += step
        return dropped

    def at_end(self) -> bool:
        """True when no byte is left before the end of the file or a gap."""
        return not self._buf and not self._fill()

    def take_gap(self) -> _Gap | None:
        """Return the pending gap and read on after it (the buffered bytes before it are dropped)."""
        gap, self.gap = self.gap, None
        self.consume(len(self._buf))
        return gap

    def offset_of(self, position: int) -> int:
        """The offset reported for a decompressed position: its member's compressed offset when it starts one."""
        return self.members.get(position, position)

    def here(self) -> int:
        """The reported offset of the current position (looking ahead first, so a member starting here is known)."""
        self.peek(1)
        return self.offset_of(self.pos)

    def start_in_buffer(self, begin: int = 1) -> int:
        """Index (>= begin) in the buffered bytes of a `WARC/1.` that starts a line or a member, or -1."""
        index = self._buf.find(RECORD_START, begin)
        while index != -1 and self._buf[index - 1 : index] != b"\n" and self.pos + index not in self.members:
            index = self._buf.find(RECORD_START, index + 1)
        return index

    def resync(self) -> bool:
        """Drop bytes up to the next `WARC/1.` line or member start after the current position.

        Scanned bytes leave the buffer as the scan goes, so a long damaged stretch costs no memory.

        Returns:
            True when positioned at a record start; False when a gap or the end of the file came first (everything
            before it is dropped).
        """
        while (found := self.start_in_buffer()) == -1:
            self.consume(max(0, len(self._buf) - len(RECORD_START)))  # a header may straddle the next chunk
            if not self._fill():
                self.consume(len(self._buf))
                return False
        self.consume(found)
        return True


def _late_end(data: bytes, total: int) -> int | None:
    """How many bytes late the record terminator of a record `total` bytes long comes (0: on time), or None.

    A terminator up to `LATE_END_BYTES` late counts when the next record (or the end of the data) follows it.
    """
    for late in range(LATE_END_BYTES + 1):
        end = total + late
        if data[end - len(RECORD_END) : end] == RECORD_END and (
            late == 0 or data[end:].startswith(RECORD_START) or end == len(data)
        ):
            return late
    return None


def _header_fields(block: bytes) -> dict[str, str]:
    """The WARC header fields (lowercased names) of a header block."""
    fields = {}
    for line in block.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return fields


class WarcFramer:
    """Frames the records of one WARC stream (see the module docstring).

    Args:
        raw: the file, opened binary and seekable.
        gzip: whether it is gzip-compressed (any other compression: pass the decompressed stream).
        max_record_bytes: records with a larger `Content-Length` are skipped unread.
    """

    def __init__(self, raw: IO[bytes], gzip: bool, max_record_bytes: int):
        self.stream = _Stream(_gzip_items(raw) if gzip else _plain_items(raw))
        self.gzip = gzip
        self.max_record_bytes = max_record_bytes

    def _span(self, start: int, end: int | None) -> str:
        """Describe a damaged range in the file's own offsets."""
        members = self.stream.members
        if not self.gzip or (start in members and (end is None or end in members)):
            unit = "gzip members at bytes" if self.gzip else "bytes"
            first, last = self.stream.offset_of(start), None if end is None else self.stream.offset_of(end)
        else:
            unit, first, last = "decompressed bytes", start, end
        return f"{unit} {first}-{'end of file' if last is None else last}"

    def records(self) -> Iterator[Framed | Damaged]:
        """Yield every record and every damaged range of the stream, in order."""
        s = self.stream
        while True:
            if s.at_end():
                if s.gap is None:
                    return
                gap = s.take_gap()
                yield Damaged(f"{gap.reason} ({_gap_span(gap)})", gap.offset, gap.end)
                continue
            if s.peek(2) == b"\r\n" or s.peek(1) == b"\n":  # blank lines between records are tolerated
                s.consume(2 if s.peek(2) == b"\r\n" else 1)
                continue
            yield self._record()

    def _record(self) -> Framed | Damaged:
        s = self.stream
        start = s.pos
        if s.peek(len(RECORD_START)) != RECORD_START:
            return self._damaged(start, "bytes that are not a WARC record header")
        header_end = s.find(RECORD_END, 0, MAX_HEADER_BYTES)
        if header_end == -1:
            return self._cut_or_damaged(start, "a WARC header without its end")
        fields = _header_fields(s.peek(header_end))
        length_text = fields.get("content-length", "")
        if not length_text.isdigit():
            return self._damaged(start, f"invalid Content-Length {length_text!r}")
        length = int(length_text)
        head = header_end + len(RECORD_END)
        rec_type = fields.get("warc-type", "")
        if length > self.max_record_bytes:
            return self._oversized(start, head, length, rec_type)
        total = head + length + len(RECORD_END)
        data = s.peek(total + LATE_END_BYTES + len(RECORD_START))
        if len(data) < total:
            return self._cut_or_damaged(start, f"Content-Length {length} runs past the end of the data")
        late = _late_end(data, total)
        if late is None:
            return self._damaged(start, f"Content-Length {length} does not end at a record boundary")
        s.consume(total + late)
        return Framed(data[: total + late], s.offset_of(start), rec_type)

    def _damaged(self, start: int, why: str) -> Damaged:
        """Skip from the record at `start` to the next record start and describe the skipped range."""
        s = self.stream
        snippet = s.peek(_SNIPPET_BYTES)
        if s.resync():
            return Damaged(
                f"damaged WARC data ({why}); skipped {self._span(start, s.pos)}, read on at the next WARC/1. header",
                s.offset_of(start),
                s.here(),
                snippet,
            )
        if s.gap is not None:  # the damaged gzip member that ends this stretch is reported next
            span = self._span(start, s.pos)
            reason = f"damaged WARC data ({why}) up to a damaged gzip member ({span})"
            return Damaged(reason, s.offset_of(start), s.offset_of(s.pos), snippet)
        if start == 0:
            return Damaged(f"not a WARC file: no WARC/1.x record header in its {s.pos:,} bytes", 0, None, snippet)
        span = self._span(start, None)
        return Damaged(
            f"damaged WARC data ({why}) and no record header after it ({span})", s.offset_of(start), None, snippet
        )

    def _cut_or_damaged(self, start: int, why: str) -> Damaged:
        """A record whose bytes stop early: damaged if a record starts in what is left, else cut short."""
        s = self.stream
        if s.start_in_buffer() != -1:
            return self._damaged(start, why)
        snippet = s.peek(_SNIPPET_BYTES)
        if s.gap is not None:
            gap = s.take_gap()
            reason = f"WARC record cut short by a {gap.reason} ({_gap_span(gap)})"
            return Damaged(reason, s.offset_of(start), gap.end, snippet)
        s.skip(_ALL)
        return Damaged(f"WARC record cut short: {why} (truncated file)", s.offset_of(start), None, snippet)

    def _oversized(self, start: int, head: int, length: int, rec_type: str) -> Damaged:
        """Skip a record larger than the cap without holding it."""
        s = self.stream
        s.consume(head)
        skipped = s.skip(length)
        mib = self.max_record_bytes / 2**20
        reason = f"{rec_type or 'WARC'} record of {length:,} bytes is larger than read.max_record_mb ({mib:g} MiB)"
        if skipped < length:
            return Damaged(f"{reason}, and cut short", s.offset_of(start), None)
        if s.peek(len(RECORD_END)) == RECORD_END:
            s.consume(len(RECORD_END))
        return Damaged(f"{reason}; skipped unread", s.offset_of(start), s.here())


def _gap_span(gap: _Gap) -> str:
    return f"gzip members at bytes {gap.offset}-{'end of file' if gap.end is None else gap.end}"


def parse_record(framed: Framed) -> tuple[Any, bytes]:
    """Parse one framed record with warcio.

    Args:
        framed: the record's bytes.

    Returns:
        `(record, payload)`: warcio's record (headers, HTTP headers) and its decoded payload bytes.

    Raises:
        warcio's ArchiveLoadFailed, or a stream error (a bad chunked or compressed payload).
    """
    from warcio.archiveiterator import ArchiveIterator

    record = next(iter(ArchiveIterator(io.BytesIO(framed.data))))
    return record, record.content_stream().read()
