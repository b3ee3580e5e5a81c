"""Decode a web page as a browser would, choosing its character encoding in (nearly) the order browsers do.

The order of the HTML standard's encoding sniffing (https://html.spec.whatwg.org/#encoding-sniffing), with one
measured exception:

1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE) decides;
2. UTF-8, when the bytes decode as UTF-8 without an error (the exception: browsers check this after the
   declarations);
3. the charset of the HTTP `Content-Type` header;
4. a `<meta charset>` (or `http-equiv` Content-Type) in the first 4 KB; a UTF-16 label there means UTF-8;
5. the detector's guess (cchardet) when it names an encoding browsers support with confidence >= 0.5, else
   windows-1252, the fallback browsers use for Western locales.

Labels go through the WHATWG label table (`webencodings`), as in every browser: `iso-8859-1`, `latin1` and `ascii`
mean windows-1252 (bytes 0x80-0x9F are its curly quotes and dashes, not invisible C1 controls), and a label that is
no web encoding is ignored. A declared encoding that does not decode the bytes gives way to the next step; when no
step decodes them cleanly, the first candidate decodes with U+FFFD replacements, kept if at most 1% of the
characters need one.

Why UTF-8 comes before the declarations: a stored page has lost the HTTP header its server sent, and its `<meta>`
is often stale. In the shared htmldate corpus 5 of 448 pages declare iso-8859-1, iso-8859-2 or windows-1252 in
`<meta>` but are UTF-8 ("fÃ¥et" for "fået"); text in a single-byte encoding that also decodes as UTF-8 would need
sequences such as "Ã©" in the original, i.e. mojibake already. `python -m benchmarks.encodings` measures it: pages
whose extracted text shows mojibake went from 7 of 441 (1.6%) to 2 of 441 (0.5%); both left carry U+FFFD in their
source bytes.

Why step 5 is not "trust the detector": on a latin-1 page without any declaration cchardet guessed IBM852 with
confidence 0.62, turning "café" into "cafÚ". On 1,216 pages built from the shared lingua-sentences corpus and
encoded in 41 legacy (language, encoding) pairs without a declaration (`benchmarks.encodings`), taking any guess
decoded 86.7% of them exactly, a web-encoding guess 91.7%, a web-encoding guess at confidence >= 0.5 92.1% (98.1%
of the windows-1252 pages), at >= 0.9 only 39.1%.
"""

from __future__ import annotations

import re

import webencodings

DETECTOR_MIN_CONFIDENCE = 0.5  # see the module docstring for the measurement
MAX_REPLACED_FRACTION = 0.01  # above 1% replaced characters the page is not text we can trust
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Names cchardet gives that the WHATWG label table spells otherwise (WHATWG's euc-kr is UHC / windows-949).
_DETECTOR_ALIASES = {"uhc": "euc-kr"}
# windows-1252 as WHATWG defines it maps the 5 bytes Python's cp1252 leaves undefined to the same code points.
_CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)


def web_encoding(label: str | None) -> str | None:
    """The Python codec of a WHATWG encoding label (`latin1` -> `cp1252`), or None when it names no web encoding."""
    if not label:
        return None
    encoding = webencodings.lookup(label)
    return None if encoding is None else encoding.codec_info.name


def meta_charset(body: bytes) -> str | None:
    """The codec declared by a `<meta>` in the first 4 KB of `body` (UTF-16 labels mean UTF-8 there), or None."""
    match = _META_CHARSET.search(body[:4096])
    codec = web_encoding(match.group(1).decode("ascii", "ignore")) if match else None
    return "utf-8" if codec is not None and codec.startswith("utf-16") else codec


def detected_encoding(body: bytes, min_confidence: float = DETECTOR_MIN_CONFIDENCE) -> str:
    """The codec of cchardet's guess when it names a web encoding with enough confidence, else `cp1252`.

    Args:
        body: the page's bytes.
        min_confidence: the least confidence (0-1) for which the guess is taken.

    Returns:
        A Python codec name.
    """
    import cchardet

    guess = cchardet.detect(body)
    name = (guess.get("encoding") or "").lower()
    codec = web_encoding(_DETECTOR_ALIASES.get(name, name))
    return codec if codec and (guess.get("confidence") or 0) >= min_confidence else "cp1252"


def _decode(body: bytes, codec: str, errors: str = "strict") -> str:
    if codec == "cp1252":  # never fails, as in browsers
        text = body.decode(codec, "surrogateescape")
        for byte in _CP1252_UNDEFINED:  # a byte search and a replace per byte present: str.translate with a dict
            if byte in body:  # costs a dict look-up per character (0.16 CPU-s for 1 MB of random bytes, now 0.016)
                text = text.replace(chr(0xDC00 + byte), chr(byte))
        return text
    return body.decode(codec, errors)


def decode_html(body: bytes, charset: str | None = None) -> str | None:
    """Decode a web page in the encoding a browser would choose (see the module docstring).

    Args:
        body: raw payload bytes.
        charset: the charset the HTTP header declared, if any.

    Returns:
        The text, or None when no candidate decodes it with at most 1% of the characters replaced.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    candidates = ["utf-8", web_encoding(charset), meta_charset(body)]
    for codec in filter(None, candidates):
        try:
            return _decode(body, codec)
        except UnicodeDecodeError:
            continue
    fallback = detected_encoding(body)
    try:
        return _decode(body, fallback)
    except UnicodeDecodeError:
        pass
    # Real pages often mix in a few stray bytes; browsers replace them, and so do we, but only a few.
    declared = next(filter(None, candidates[1:]), "utf-8")
    text = _decode(body, declared, "replace")
    return text if text.count("\ufffd") <= MAX_REPLACED_FRACTION * len(text) else None
