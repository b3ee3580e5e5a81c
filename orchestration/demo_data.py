"""A small, deterministic demo crawl with planted problems and a ground truth naming each of them.

`write_demo_crawl(DIR)` writes, from text generated here (no network, no corpora needed; the same bytes on
every machine and every call):

- `crawl.warc.gz`: one gzip member per record, Common Crawl style; a `warcinfo` record, then a `request` and a
  `response` per page. HTML pages carry navigation, cookie banners and footers around the article (planted
  boilerplate, which extraction must remove), plus pages that are only boilerplate, keyword spam, lorem ipsum
  placeholders, German/French/Spanish pages, a page on a blocked URL, an image response, exact copies (same
  HTML at another URL) and near copies (a few words changed: 5-gram Jaccard about 0.9).
- `docs.jsonl`: already-extracted texts (`{"id", "url", "text"}`) with more good documents, spam, exact and
  near copies, and one broken line (a quarantine case).
- `ground_truth.json`: every planted case with its id, URL, kind, whether it should survive curation and the
  stage expected to drop it.

Sizes: about 140 documents, 0.2 MB; `fineforge curate` runs on it in well under a minute on one core.
The English text comes from sentence templates over a fixed vocabulary, varied enough to pass the FineWeb
quality filters (no repeated n-grams, stop words, punctuation), and identified as English by fastText.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from pathlib import Path
from typing import Any

from pipelines.common.files import write_json_atomic

DEMO_SEED = 20240604
N_GOOD_WARC = 60
N_GOOD_JSONL = 40
_WARC_DATE = "2024-06-04T12:00:00Z"
_NS = uuid.UUID("6f1c5a2e-8a43-4c52-9d4e-6a0b7f6a2d11")

_NOUNS = (
    "garden river village engineer teacher library market bridge harbor festival orchard museum kitchen "
    "bicycle valley council student farmer painter journal recipe mountain forest island railway theater "
    "workshop hospital neighbor century museum canal lighthouse bakery vineyard meadow castle glacier "
    "telescope notebook journey harvest tradition election archive sculpture laboratory volunteer musician "
    "carpenter tourist island orchestra stadium factory cathedral monastery fisherman shepherd merchant "
    "architect historian botanist librarian pilot sailor gardener village school ferry compass lantern"
).split()
_ADJECTIVES = (
    "quiet ancient busy narrow generous careful modern wooden local bright patient famous rural coastal "
    "northern southern curious steady gentle detailed practical seasonal historic remote crowded spacious "
    "reliable humble colorful sturdy elegant fragile cheerful thoughtful"
).split()
_VERBS_PAST = (
    "visited repaired described painted restored measured studied opened explored planted organized "
    "photographed recorded designed celebrated protected rebuilt mapped collected welcomed discovered "
    "inspected improved supported followed"
).split()
_ADVERBS = "slowly carefully often quietly finally recently gradually warmly proudly eagerly".split()
_DETERMINERS = "the a one every that our their this another each".split()
_PREPOSITIONS = "near behind beside across along under inside above around beyond toward without from".split()
_CONJUNCTIONS = "because while after before since although when until".split()
_INTROS = (
    "In the spring|Last summer|During the winter|Every autumn|Early that morning|Late one evening|After the storm|"
    "Before the festival|For many years|In the next decade|Even so|Over time|As a result|In addition|Later"
).split("|")
_SUBJECT_VERBS = "said noticed explained wrote believed agreed remembered argued suggested admitted".split()

_FOREIGN = {
    "de": (
        "Der {a} {n} hat im {t} den {a2} {n2} besucht, weil die Menschen aus dem Dorf mehr über die "
        "Geschichte wissen wollten. Danach haben wir gemeinsam über die Zukunft der Stadt gesprochen.",
        "alte ruhige kleine neue schöne freundliche lange grüne".split(),
        "Garten Fluss Lehrer Markt Bahnhof Bäcker Wald Hafen Rathaus Nachbar".split(),
        "Frühling Sommer Herbst Winter Morgen Abend".split(),
    ),
    "fr": (
        "Le {n} {a} a visité le {n2} {a2} au {t}, parce que les habitants du village voulaient mieux "
        "connaître leur histoire. Ensuite, nous avons parlé ensemble de l'avenir de la ville.",
        "ancien calme petit nouveau beau vieux grand vert".split(),
        "jardin fleuve professeur marché boulanger port voisin musée village pont".split(),
        "printemps matin soir mois".split(),
    ),
    "es": (
        "El {n} {a} visitó el {n2} {a2} en {t}, porque los vecinos del pueblo querían conocer mejor su "
        "historia. Después hablamos juntos sobre el futuro de la ciudad y de sus calles.",
        "antiguo tranquilo pequeño nuevo hermoso viejo grande verde".split(),
        "jardín río maestro mercado panadero puerto vecino museo pueblo puente".split(),
        "primavera verano otoño invierno".split(),
    ),
}
BOILERPLATE_PHRASES = (
    "Subscribe to our newsletter",
    "Accept all cookies",
    "All rights reserved",
    "Follow us on social media",
)
_SPAM_WORDS = "cheap watches buy now discount best price free shipping replica watches sale".split()
_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua."
)


def _noun_phrase(rng: random.Random) -> str:
    adjective = f"{rng.choice(_ADJECTIVES)} " if rng.random() < 0.6 else ""
    return f"{rng.choice(_DETERMINERS)} {adjective}{rng.choice(_NOUNS)}"


def _clause(rng: random.Random) -> str:
    adverb = f"{rng.choice(_ADVERBS)} " if rng.random() < 0.3 else ""
    clause = f"{_noun_phrase(rng)} {adverb}{rng.choice(_VERBS_PAST)} {_noun_phrase(rng)}"
    if rng.random() < 0.5:
        clause += f" {rng.choice(_PREPOSITIONS)} {_noun_phrase(rng)}"
    return clause


def _sentence(rng: random.Random) -> str:
    """One grammatical sentence from short random slots (no fixed run of 5 words, so no repeated 5-grams)."""
    form = rng.randrange(4)
    if form == 0:
        text = f"{rng.choice(_INTROS)}, {_clause(rng)}"
    elif form == 1:
        text = f"{_clause(rng)} {rng.choice(_CONJUNCTIONS)} {_clause(rng)}"
    elif form == 2:
        text = f"{_noun_phrase(rng)} {rng.choice(_SUBJECT_VERBS)} that {_clause(rng)}"
    else:
        text = f"{_clause(rng)}, and {_clause(rng)}"
    return text[0].upper() + text[1:] + "."


def _article(rng: random.Random) -> tuple[str, list[str]]:
    title = f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} of the {rng.choice(_NOUNS)}".title()
    paragraphs = [" ".join(_sentence(rng) for _ in range(rng.randint(4, 6))) for _ in range(rng.randint(4, 6))]
    return title, paragraphs


def _foreign(rng: random.Random, lang: str) -> list[str]:
    template, adjectives, nouns, times = _FOREIGN[lang]
    return [
        template.format(
            a=rng.choice(adjectives),
            a2=rng.choice(adjectives),
            n=rng.choice(nouns),
            n2=rng.choice(nouns),
            t=rng.choice(times),
        )
        for _ in range(12)
    ]


def _near_copy(rng: random.Random, paragraphs: list[str], edits: int = 3) -> list[str]:
    words = "\n".join(paragraphs).split(" ")
    for index in rng.sample(range(len(words)), edits):
        words[index] = rng.choice(_NOUNS) if not words[index].endswith((".", ",")) else words[index]
    return " ".join(words).split("\n")


def _html(title: str, paragraphs: list[str], lang: str = "en", chrome: bool = True) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    nav = (
        '<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/about">About</a>'
        '</li><li><a href="/contact">Contact</a></li></ul></nav>\n'
        f'<div class="cookie-banner">We use cookies. <button>{BOILERPLATE_PHRASES[1]}</button></div>\n'
    )
    footer = (
        f'<footer><div class="newsletter">{BOILERPLATE_PHRASES[0]}: <input type="email"></div>'
        f"<p>{BOILERPLATE_PHRASES[3]}.</p><p>Copyright 2024 Example Media. {BOILERPLATE_PHRASES[2]}.</p>"
        "</footer>\n"
    )
    article = f"<article><h1>{title}</h1>\n{body}\n</article>\n" if paragraphs else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{nav if chrome else ''}<main>{article}</main>\n{footer if chrome else ''}</body></html>\n"
    )


def _warc_bytes(pages: list[dict[str, Any]]) -> bytes:
    """Serialise pages as a WARC with fixed record ids and dates (byte-identical on every run)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    info = writer.create_warcinfo_record(
        "crawl.warc.gz", {"software": "fineforge demo-data", "format": "WARC File Format 1.0"}
    )
    info.rec_headers.replace_header("WARC-Date", _WARC_DATE)
    info.rec_headers.replace_header("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(_NS, 'warcinfo')}>")
    writer.write_record(info)
    for page in pages:
        url = page["url"]
        request = writer.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", "demo")], is_http_request=True),
            warc_headers_dict={"WARC-Date": _WARC_DATE, "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(_NS, 'q' + url)}>"},
        )
        writer.write_record(request)
        body = page["body"]
        http = StatusAndHeaders(
            "200 OK", [("Content-Type", page["content_type"]), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
        )
        response = writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            http_headers=http,
            warc_headers_dict={"WARC-Date": _WARC_DATE, "WARC-Record-ID": page["id"]},
        )
        writer.write_record(response)
    return out.getvalue()


def _case(kind: str, doc_id: str, url: str, file: str, expected_stage: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "url": url,
        "file": file,
        "kind": kind,
        "expect": "kept" if expected_stage is None else "dropped",
        "expected_stage": expected_stage,
        **extra,
    }


def _warc_pages(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pages, cases = [], []

    def add(kind: str, url: str, html: str, stage: str | None, content_type: str = "text/html; charset=utf-8", **kw):
        record_id = f"<urn:uuid:{uuid.uuid5(_NS, url)}>"
        pages.append({"url": url, "id": record_id, "body": html.encode("utf-8"), "content_type": content_type})
        cases.append(_case(kind, record_id, url, "crawl.warc.gz", stage, **kw))

    articles = []
    for i in range(N_GOOD_WARC):
        title, paragraphs = _article(rng)
        articles.append((title, paragraphs))
        add("good", f"https://news.example.org/{i:03d}/story.html", _html(title, paragraphs), None)
    for i in range(6):
        title, paragraphs = articles[i]
        add(
            "exact_duplicate",
            f"https://mirror.example.net/copy/{i:03d}.html",
            _html(title, paragraphs),
            "exact_dedup",
            duplicate_of=f"https://news.example.org/{i:03d}/story.html",
        )
    for i in range(6, 12):
        title, paragraphs = articles[i]
        add(
            "near_duplicate",
            f"https://syndicate.example.com/item/{i:03d}",
            _html(title, _near_copy(rng, paragraphs)),
            "minhash_dedup",
            duplicate_of=f"https://news.example.org/{i:03d}/story.html",
        )
    for i in range(4):
        add("boilerplate_only", f"https://portal.example.org/section/{i}", _html("Portal", []), "gopher_repetition")
    for i in range(3):
        spam = " ".join(rng.choice(_SPAM_WORDS) for _ in range(300))
        add("spam", f"https://deals.example.biz/offer/{i}", _html("Best deals", [spam]), "gopher_quality")
    for i in range(3):
        title, paragraphs = _article(rng)
        paragraphs[1] = f"{_LOREM} {paragraphs[1]}"
        add("lorem_ipsum", f"https://draft.example.org/page/{i}", _html(title, paragraphs), "c4_quality")
    for i, lang in enumerate(("de", "fr", "es", "de", "fr", "es")):
        add(
            "non_english",
            f"https://{lang}.example.eu/artikel/{i}",
            _html("Dorf", _foreign(rng, lang), lang=lang),
            "language_filter",
            language=lang,
        )
    title, paragraphs = _article(rng)
    add("blocked_url", "https://free-porn-videos.example.com/watch/1", _html(title, paragraphs), "url_filter")
    pages.append(
        {
            "url": "https://news.example.org/logo.png",
            "id": f"<urn:uuid:{uuid.uuid5(_NS, 'logo')}>",
            "body": b"\x89PNG\r\n\x1a\n" + bytes(range(64)),
            "content_type": "image/png",
        }
    )
    cases.append(_case("image", pages[-1]["id"], pages[-1]["url"], "crawl.warc.gz", "read"))
    return pages, cases


def _jsonl_lines(rng: random.Random) -> tuple[list[str], list[dict[str, Any]]]:
    lines, cases = [], []

    def add(kind: str, doc_id: str, text: str, stage: str | None, **kw: Any) -> None:
        url = f"https://blog.example.com/{doc_id}"
        lines.append(json.dumps({"id": doc_id, "url": url, "text": text}, ensure_ascii=False))
        cases.append(_case(kind, doc_id, url, "docs.jsonl", stage, **kw))

    texts = []
    for i in range(N_GOOD_JSONL):
        title, paragraphs = _article(rng)
        texts.append("\n".join([title, *paragraphs]))
        add("good", f"post-{i:03d}", texts[-1], None)
    for i in range(4):
        add("exact_duplicate", f"repost-{i:03d}", texts[i], "exact_dedup", duplicate_of=f"post-{i:03d}")
    for i in range(4, 8):
        near = "\n".join(_near_copy(rng, texts[i].split("\n")))
        add("near_duplicate", f"edited-{i:03d}", near, "minhash_dedup", duplicate_of=f"post-{i:03d}")
    for i in range(2):
        spam = " ".join(rng.choice(_SPAM_WORDS) for _ in range(250))
        add("spam", f"spam-{i}", spam, "gopher_quality")
    broken_at = len(lines) // 2
    lines.insert(broken_at, '{"id": "broken-001", "url": "https://blog.example.com/broken", "text": "cut')
    cases.append(_case("broken_line", "broken-001", "https://blog.example.com/broken", "docs.jsonl", None))
    cases[-1] |= {"expect": "quarantined", "line": broken_at + 1}
    return lines, cases


def demo_texts(count: int, seed: int = DEMO_SEED) -> list[str]:
    """Distinct English articles in the demo crawl's style, the same for a seed on every machine.

    For tests and benchmarks that need plenty of clean, varied prose without the shared corpora: each article
    is 4-6 paragraphs of 4-6 sentences (about 350 words), paragraphs separated by blank lines.

    Args:
        count: number of articles.
        seed: the generator's seed.

    Returns:
        The articles.
    """
    rng = random.Random(seed)
    return ["\n\n".join(_article(rng)[1]) for _ in range(count)]


def write_demo_crawl(out_dir: Path) -> dict[str, Any]:
    """Write the demo crawl (WARC + JSONL) and its ground truth into `out_dir`.

    Args:
        out_dir: folder to write into (created if needed; the three files are overwritten).

    Returns:
        The ground-truth dict (also written as `ground_truth.json`): `files`, `cases` (one per planted
        document: id, url, file, kind, expect, expected_stage), `boilerplate_phrases` and `counts` per kind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(DEMO_SEED)
    pages, warc_cases = _warc_pages(rng)
    lines, jsonl_cases = _jsonl_lines(rng)
    (out_dir / "crawl.warc.gz").write_bytes(_warc_bytes(pages))
    (out_dir / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cases = warc_cases + jsonl_cases
    counts: dict[str, int] = {}
    for case in cases:
        counts[case["kind"]] = counts.get(case["kind"], 0) + 1
    truth = {
        "seed": DEMO_SEED,
        "files": ["crawl.warc.gz", "docs.jsonl"],
        "boilerplate_phrases": list(BOILERPLATE_PHRASES),
        "counts": counts,
        "cases": cases,
    }
    write_json_atomic(out_dir / "ground_truth.json", truth)  # last: its presence marks a complete crawl
    return truth
