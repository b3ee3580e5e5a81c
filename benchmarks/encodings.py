"""Character encodings: how often decoded web text is mojibake, and how far a charset detector can be trusted.

Two measurements, both printed as tables:

1. `mojibake`: every page of the shared htmldate corpus (`html/**/*.html.gz`, the most multilingual set here, 448
   pages) is decoded by `pipelines.curate.read.decode_html` (no HTTP charset, as in the htmldate WARC) and its main
   text extracted with trafilatura as the `extract` stage does (`favor_precision=True`, `deduplicate=True`). A page
   counts as mojibake when its extracted text contains U+FFFD (undecodable bytes), a C1 control character
   U+0080-U+009F (windows-1252 quotes and dashes decoded as latin-1), or what `ftfy.badness.is_bad` calls
   mojibake (UTF-8 read as a Windows-125x codepage: "Ã©", "â€™"). The import path is the same before and after
   the browser-like decoder (pipelines.curate.encoding), so the same script measures both: run it with an older
   checkout first on `PYTHONPATH`.
2. `detector`: pages built from the shared lingua-sentences corpus (3-15 random sentences in `<p>`, seeded) are
   encoded in 41 legacy (language, encoding) pairs (windows-1252 for 13 Western languages, windows-1250/1251/
   1253-1258, iso-8859-2/7/16, koi8-r, shift_jis, euc-jp, gb18030, big5, euc-kr, windows-874), with no charset
   declared, and decoded by the rule "the detector's guess if it names a web encoding with confidence >= t, else
   windows-1252" for several t; the table gives the share decoded exactly. It sets
   `pipelines.curate.encoding.DETECTOR_MIN_CONFIDENCE`.

Run: `.venv/bin/python -m benchmarks.encodings [--only mojibake|detector]`.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re

from tests.conftest import corpora_path

C1_CONTROLS = re.compile("[\u0080-\u009f]")
LEGACY = {
    **{lang: ["windows-1252"] for lang in "de fr es it pt nl sv da fi nb en is ca".split()},
    "ru": ["windows-1251", "koi8-r"],
    "uk": ["windows-1251"],
    "bg": ["windows-1251"],
    "pl": ["windows-1250", "iso-8859-2"],
    "cs": ["windows-1250", "iso-8859-2"],
    "hu": ["windows-1250"],
    "sk": ["windows-1250"],
    "sl": ["windows-1250"],
    "hr": ["windows-1250"],
    "ro": ["iso-8859-16"],
    "el": ["windows-1253", "iso-8859-7"],
    "tr": ["windows-1254"],
    "he": ["windows-1255"],
    "ar": ["windows-1256"],
    "lt": ["windows-1257"],
    "lv": ["windows-1257"],
    "et": ["windows-1257"],
    "ja": ["shift_jis", "euc-jp"],
    "zh": ["gb18030", "big5"],
    "ko": ["euc-kr"],
    "th": ["windows-874"],
    "vi": ["windows-1258"],
}
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)


def mojibake_signs(text: str) -> list[str]:
    """The kinds of mojibake found in `text`: `U+FFFD`, `C1 control`, `ftfy` (empty when it looks clean)."""
    import ftfy.badness

    signs = []
    if "\ufffd" in text:
        signs.append("U+FFFD")
    if C1_CONTROLS.search(text):
        signs.append("C1 control")
    if ftfy.badness.is_bad(text):
        signs.append("ftfy")
    return signs


def measure_mojibake() -> None:
    """Print the share of htmldate pages whose extracted text shows mojibake (see the module docstring)."""
    import trafilatura

    from pipelines.curate.read import decode_html

    pages = sorted((corpora_path() / "htmldate" / "html").rglob("*.html.gz"))
    bad: dict[str, list[str]] = {}
    extracted = 0
    for path in pages:
        html = decode_html(gzip.decompress(path.read_bytes()))
        text = trafilatura.extract(html, favor_precision=True, deduplicate=True) if html else None
        if not text:
            continue
        extracted += 1
        if signs := mojibake_signs(text):
            bad[path.name] = signs
    print(f"htmldate: {len(pages)} pages, {extracted} with extracted text")
    print(f"mojibake: {len(bad)} of {extracted} pages ({100 * len(bad) / max(1, extracted):.1f}%)")
    for name, signs in sorted(bad.items()):
        print(f"  {name}: {', '.join(signs)}")


def legacy_pages(per_pair: int = 40, seed: int = 0) -> list[tuple[str, bytes, str]]:
    """(encoding label, bytes, text) of pages in legacy encodings, skipping ASCII-only and unencodable ones."""
    import webencodings

    rng = random.Random(seed)
    pages = []
    for lang, labels in LEGACY.items():
        path = corpora_path() / "lingua-sentences" / "sentences" / f"{lang}.txt.gz"
        sentences = gzip.decompress(path.read_bytes()).decode().splitlines()
        for label in labels:
            codec = webencodings.lookup(label).codec_info.name
            for _ in range(per_pair):
                text = " ".join(rng.sample(sentences, rng.randint(3, 15)))
                html = f"<html><head><title>t</title></head><body><p>{text}</p></body></html>"
                try:
                    data = html.encode(codec)
                except UnicodeEncodeError:
                    continue
                if not data.isascii():
                    pages.append((label, data, html))
    return pages


def _exact(data: bytes, html: str, codec: str) -> bool:
    try:
        return data.decode(codec) == html
    except (LookupError, UnicodeDecodeError):
        return False


def measure_detector() -> None:
    """Print the share of undeclared legacy-encoded pages decoded exactly, per detector confidence threshold."""
    import cchardet

    from pipelines.curate.encoding import detected_encoding

    pages = legacy_pages()
    guesses = [cchardet.detect(data) for _, data, _ in pages]
    western = sum(label == "windows-1252" for label, _, _ in pages)
    print(f"detector: {len(pages)} pages in {sum(map(len, LEGACY.values()))} (language, encoding) pairs")
    print("threshold  any guess  web-encoding guess  (windows-1252 pages / others)")
    for t in THRESHOLDS:
        anyguess = webguess = west = 0
        for (label, data, html), guess in zip(pages, guesses, strict=True):
            confident = (guess.get("confidence") or 0) >= t
            anyguess += _exact(data, html, (guess.get("encoding") or "") if confident else "cp1252")
            ok = _exact(data, html, detected_encoding(data, t))
            webguess += ok
            west += ok and label == "windows-1252"
        n = len(pages)
        print(
            f"{t:>9.1f}  {100 * anyguess / n:>8.1f}%  {100 * webguess / n:>17.1f}%  "
            f"({100 * west / western:.1f}% / {100 * (webguess - west) / (n - western):.1f}%)"
        )


def main() -> None:
    """Parse the flags and print the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("mojibake", "detector"), help="run one measurement")
    args = parser.parse_args()
    if args.only in (None, "mojibake"):
        measure_mojibake()
    if args.only in (None, "detector"):
        measure_detector()


if __name__ == "__main__":
    main()
