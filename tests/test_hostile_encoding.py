"""Character encodings of web pages (issue 11, case 4): decided as browsers decide them, never the detector's
low-confidence guess at a codepage no browser uses."""

from __future__ import annotations

import gzip
from pathlib import Path

from pipelines.common.inputs import discover_inputs
from pipelines.curate.read import SourceReader, decode_html

# cchardet calls this latin-1 page IBM852 (confidence 0.69), which made "très pâté" "trŔs pÔtÚ".
LATIN1_PAGE = "<html><body><p>our with très pâté with où</p></body></html>"


def test_undeclared_latin1_page_is_windows_1252_not_the_detector_guess() -> None:
    assert decode_html(LATIN1_PAGE.encode("latin-1")) == LATIN1_PAGE


def test_labels_mean_what_they_mean_in_browsers() -> None:
    quotes = "<p>“quoted” – and the dash</p>"
    assert decode_html(quotes.encode("cp1252"), "iso-8859-1") == quotes  # not C1 controls U+0093/U+0094
    meta = '<html><head><meta charset="latin1"></head><body>Ça “va”</body></html>'
    assert decode_html(meta.encode("cp1252")) == meta
    assert decode_html(b"<p>undefined \x81 byte \xe9</p>") == "<p>undefined \x81 byte é</p>"  # WHATWG windows-1252
    undefined = b"\x81\x8d\x8f\x90\x9d\x9d\x81"  # all five bytes Python's cp1252 leaves undefined, some twice
    assert decode_html(b"<p>" + undefined + b" \xe9</p>") == "<p>" + undefined.decode("latin-1") + " é</p>"
    russian = "<html><head><meta charset=windows-1251></head><body>Привет, мир</body></html>"
    assert decode_html(russian.encode("cp1251")) == russian
    assert decode_html("\ufeff<p>bom first</p>".encode(), "iso-8859-1") == "<p>bom first</p>"
    assert decode_html("<p>日本語のページ</p>".encode("shift_jis"), "shift_jis") == "<p>日本語のページ</p>"


def test_utf8_bytes_win_over_a_stale_single_byte_declaration() -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body>Aktien har fået en flyvende start</body></html>'
    assert decode_html(page.encode("utf-8")) == page  # not "fÃ¥et"
    assert decode_html(page.encode("utf-8"), "iso-8859-1") == page


def test_pages_through_the_reader(tmp_path: Path) -> None:
    (tmp_path / "latin1.html").write_bytes(LATIN1_PAGE.encode("latin-1"))
    (tmp_path / "stale.html.gz").write_bytes(
        gzip.compress('<meta charset="iso-8859-2"><p>Zürich – Genève</p>'.encode())
    )
    reader = SourceReader(discover_inputs([str(tmp_path)]), str(tmp_path / "q"))
    texts = {Path(d.id).name: d.text for d in reader.run(None)}
    assert texts["latin1.html"] == LATIN1_PAGE
    assert "Zürich – Genève" in texts["stale.html.gz"]
    assert not (tmp_path / "q").exists()


def test_htmldate_utf8_pages_decode_as_utf8(corpora: Path) -> None:
    """Every htmldate page whose bytes are UTF-8 decodes as UTF-8; 5 of them declare a single-byte charset."""
    stale = 0
    for path in sorted((corpora / "htmldate" / "html").rglob("*.html.gz")):
        body = gzip.decompress(path.read_bytes())
        try:
            expected = body.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
        text = decode_html(body)
        assert text == expected, path.name
        stale += b"charset=iso-8859" in body[:4096].lower() or b"charset=windows-1252" in body[:4096].lower()
    assert stale >= 5


def test_a_byte_order_mark_decides(tmp_path: Path) -> None:
    (tmp_path / "utf16.html").write_bytes("<p>déclaré UTF-16</p>".encode("utf-16"))
    (tmp_path / "bom.html").write_bytes(b"\xef\xbb\xbf" + '<meta charset="windows-1251"><p>café</p>'.encode())
    reader = SourceReader(discover_inputs([str(tmp_path)]), str(tmp_path / "q"))
    docs = {Path(d.id).name: d.text for d in reader.run(None)}
    assert docs == {"utf16.html": "<p>déclaré UTF-16</p>", "bom.html": '<meta charset="windows-1251"><p>café</p>'}
