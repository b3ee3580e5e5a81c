"""PII anonymisation: planted emails and public IPs are replaced, look-alikes are not, the rest is byte-identical.

Planted cases go into real prose (the built-in demo articles; the shared web texts where present) at random word
boundaries, some wrapped in punctuation. The expected output is built independently, from the same pieces with
each planted address swapped for the replacement it must get (replacements cycle per document), so a single
changed byte anywhere fails the test. The curate test runs the stage end to end and checks summary.json, the
published data and the report, which must show replacements and never an original address.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import polars as pl
import pytest

from orchestration.demo_data import demo_texts
from pipelines.curate import CurateConfig, run_curate
from pipelines.curate.pii import EMAIL_REPLACEMENTS, IP_REPLACEMENTS, PiiAnonymizer, PiiConfig, is_public_ip

PUBLIC_EMAILS = [
    "jane.doe@gmail.com",
    "j.smith+news@mail.example.co.uk",
    "PETER_99@web.de",
    "info@wikipedia.org",
    "o'brien@company.ie",
]
PUBLIC_IPS = [
    "8.8.8.8",
    "93.184.216.34",
    "151.101.1.69",
    "2a00:1450:4001:82a::200e",
    "2606:4700:4700::1111",
    "2001:4860:4860:0:0:0:0:8888",
]
LOOK_ALIKES = [
    "user@localhost",
    "name@2x.png",
    "icon@2x.jpg",
    "@handle",
    "v1.2.3.4",
    "1.2.3.4.5",
    "version-2.10.4.1.3",
    "192.168.1.20",
    "10.0.0.1",
    "172.16.5.4",
    "127.0.0.1",
    "169.254.10.1",
    "100.64.1.1",
    "192.0.2.33",
    "198.51.100.7",
    "203.0.113.250",
    "224.0.0.251",
    "0.0.0.0",
    "255.255.255.255",
    "::1",
    "fe80::1ff:fe23:4567:890a",
    "fd12:3456:789a::1",
    "2001:db8::8a2e:370:7334",
    "12:30:45",
    "std::vector",
    "00:1a:2b:3c:4d:5e",
    "999.1.1.1",
]
WRAPPERS = ["{}", "({})", "{}.", "<{}>", "{},", '"{}"']
_LOOKS_LIKE_PII = re.compile(r"@|\d+\.\d+\.\d+\.\d+|[0-9a-fA-F]*:[0-9a-fA-F]*:")


def plant(text: str, rng: random.Random, items: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """Insert `items` at random word boundaries, each wrapped in punctuation.

    Returns:
        (text with the items, [(kind, item)] in text order) where kind is email, ip or lookalike.
    """
    bounds = [m.start() for m in re.finditer(r" ", text)]
    spots = sorted(rng.sample(bounds, len(items)))
    pieces, planted, cursor = [], [], 0
    for spot, item in zip(spots, items, strict=True):
        wrapped = rng.choice(WRAPPERS).format(item)
        pieces += [text[cursor:spot], " ", wrapped]
        planted.append(item)
        cursor = spot
    pieces.append(text[cursor:])
    return "".join(pieces), planted


def expected_output(text: str, rng_state: object, items: list[str]) -> str:
    """The same planting with each public address swapped for the replacement it must get."""
    rng = random.Random()
    rng.setstate(rng_state)
    counters = {"email": 0, "ip": 0}

    def replacement(item: str) -> str:
        if item in PUBLIC_EMAILS:
            counters["email"] += 1
            return EMAIL_REPLACEMENTS[(counters["email"] - 1) % len(EMAIL_REPLACEMENTS)]
        if item in PUBLIC_IPS:
            counters["ip"] += 1
            return IP_REPLACEMENTS[(counters["ip"] - 1) % len(IP_REPLACEMENTS)]
        return item

    bounds = [m.start() for m in re.finditer(r" ", text)]
    spots = sorted(rng.sample(bounds, len(items)))
    pieces, cursor = [], 0
    for spot, item in zip(spots, items, strict=True):
        pieces += [text[cursor:spot], " ", rng.choice(WRAPPERS).format(replacement(item))]
        cursor = spot
    pieces.append(text[cursor:])
    return "".join(pieces)


def clean_texts(texts: list[str]) -> list[str]:
    """Texts in which neither the anonymiser nor a crude independent pattern sees anything address-like."""
    anonymize = PiiAnonymizer()
    return [t for t in texts if not _LOOKS_LIKE_PII.search(t) and anonymize(t)[0] == t and t.count(" ") > 60]


def check_planted(texts: list[str], seed: int) -> int:
    """Plant public addresses and look-alikes into each text; assert the exact expected output. Returns cases."""
    anonymize = PiiAnonymizer()
    rng = random.Random(seed)
    cases = 0
    for text in texts:
        items = rng.sample(PUBLIC_EMAILS, 2) + rng.sample(PUBLIC_IPS, 2) + rng.sample(LOOK_ALIKES, 6)
        rng.shuffle(items)
        state = rng.getstate()
        planted_text, planted = plant(text, rng, items)
        out, found = anonymize(planted_text)
        assert out == expected_output(text, state, items), (planted, out)
        assert found["emails"] == 2 and found["ip_addresses"] == 2
        for start, end, kind in found["spans"]:
            pool = EMAIL_REPLACEMENTS if kind == "email" else IP_REPLACEMENTS
            assert out[start:end] in pool
        cases += len(items)
    return cases


def test_planted_cases_in_builtin_prose() -> None:
    texts = clean_texts(demo_texts(80, seed=11))
    assert len(texts) == 80
    assert check_planted(texts, seed=1) == 800


def test_planted_cases_in_real_web_text(corpora: Path) -> None:
    with gzip.open(corpora / "web-text.jsonl.gz", "rt") as f:
        texts = clean_texts([json.loads(line)["text"] for line in f])
    assert len(texts) > 300  # most real texts hold no address; those that do are left out of the planting
    assert check_planted(texts, seed=2) == 10 * len(texts)


def test_every_look_alike_alone_is_left_alone() -> None:
    anonymize = PiiAnonymizer()
    for item in LOOK_ALIKES:
        for wrapper in WRAPPERS:
            text = f"See {wrapper.format(item)} for details."
            assert anonymize(text)[0] == text, item


def test_public_ip_rules() -> None:
    assert all(is_public_ip(ip) for ip in PUBLIC_IPS)
    assert not any(is_public_ip(ip) for ip in ("10.1.2.3", "::1", "2001:db8::1", "fe80::1", "224.0.0.1", "1.2.3"))


def test_settings_switch_kinds_and_replacements() -> None:
    text = "Mail jane.doe@gmail.com and a.b@web.de from 8.8.8.8 or 2606:4700:4700::1111 today."
    only_ips = PiiAnonymizer(PiiConfig(emails=False, ip_replacement="0.0.0.1"))
    assert only_ips(text)[0] == "Mail jane.doe@gmail.com and a.b@web.de from 0.0.0.1 or 0.0.0.1 today."
    only_emails = PiiAnonymizer(PiiConfig(ip_addresses=False, email_replacement=["x@example.com"]))
    assert only_emails(text)[0] == "Mail x@example.com and x@example.com from 8.8.8.8 or 2606:4700:4700::1111 today."
    with pytest.raises(ValueError, match="email_replacement"):
        PiiConfig(email_replacement=[])


def test_replacements_depend_only_on_the_document() -> None:
    # Datatrove's formatter cycles replacements across a task's documents; here each document starts afresh,
    # so a document's output does not depend on its neighbours (and hence not on the task split).
    anonymize = PiiAnonymizer()
    doc = "Write to jane.doe@gmail.com today."
    first = anonymize(doc)[0]
    anonymize("a@gmail.com b@gmail.com c@gmail.com")
    assert anonymize(doc)[0] == first == "Write to email@example.com today."


def test_curate_counts_modified_documents_and_report_hides_originals(tmp_path: Path) -> None:
    rng = random.Random(5)
    texts = demo_texts(60, seed=12)
    records, planted_total = [], {"emails": 0, "ip_addresses": 0}
    for i, text in enumerate(texts):
        if i % 3 == 0:
            items = [PUBLIC_EMAILS[i % 5], PUBLIC_IPS[i % 6], LOOK_ALIKES[i % len(LOOK_ALIKES)]]
            text, _ = plant(text, rng, items)
            planted_total["emails"] += 1
            planted_total["ip_addresses"] += 1
        records.append({"id": f"doc-{i:03d}", "url": f"https://blog.example.com/{i}", "text": text})
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "curated"
    summary = run_curate(CurateConfig(), [str(corpus)], out)

    pii = next(s for s in summary["stages"] if s["name"] == "pii")
    assert pii["docs_in"] == pii["docs_out"] == summary["docs_out"] == 60 and pii["dropped"] == {}
    assert pii["modified"] == 20
    assert pii["replacements"] == planted_total
    data = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    joined = "\n".join(data["text"])
    assert not any(address in joined for address in PUBLIC_EMAILS + PUBLIC_IPS)
    assert "user@localhost" in joined  # a look-alike planted into doc-000 stays
    modified = data.filter(pl.col("metadata").str.contains('"pii"'))
    assert modified.height == 20

    from pipelines.report import build_report, report_data

    tables = report_data(out)
    assert tables["pii"]["modified"] == 20 and tables["pii"]["replacements"] == planted_total
    assert 0 < len(tables["pii"]["samples"]) <= 5
    for sample in tables["pii"]["samples"]:
        assert any(r in sample["after"] for r in EMAIL_REPLACEMENTS + IP_REPLACEMENTS)
        assert "⟨email⟩" in sample["before"] or "⟨IP address⟩" in sample["before"]
    html = build_report(out).read_text()
    assert 'id="pii"' in html
    assert not any(address in html for address in PUBLIC_EMAILS + PUBLIC_IPS)


def test_disabled_stage_passes_text_through(tmp_path: Path) -> None:
    texts = [t.replace(". ", ". Mail jane.doe@gmail.com today. ", 1) for t in demo_texts(8, seed=13)]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    summary = run_curate(CurateConfig(pii=PiiConfig(enabled=False)), [str(corpus)], tmp_path / "out")
    assert summary["stages"][-1] == {"name": "pii", "docs_in": 8, "docs_out": 8, "dropped": {}, "status": "off"}
    data = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    assert data["text"].str.contains("jane.doe@gmail.com", literal=True).all()

    from pipelines.report import report_data

    assert report_data(tmp_path / "out")["pii"] is None


def test_email_search_around_each_at_finds_what_the_regex_finds() -> None:
    """`_email_matches` gives the spans of `_EMAIL.finditer` over the whole text: seeded random strings of the
    characters the regex cares about, and HTML-like runs of local-part characters (where the whole-text scan is
    quadratic); a local part longer than EMAIL_LOCAL_MAX is matched by its last EMAIL_LOCAL_MAX characters."""
    from pipelines.curate.pii import _EMAIL, EMAIL_LOCAL_MAX, _email_matches

    def spans(matches) -> list[tuple[int, int]]:
        return [m[:2] if isinstance(m, tuple) else m.span() for m in matches]

    rng = random.Random(0)
    alphabet = "ab.-@_[]:19x/=+ \n"
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        assert spans(_email_matches(text)) == spans(_EMAIL.finditer(text)), repr(text)
    html = '<img src="data:image/png;base64,' + "iVBO/w0K+GgoA=" * 300 + '"> write to jane.doe@example.org or '
    html += "x@[10.0.0.1], not a@b, " + "q-" * 500 + "@mail.example.com a@b.c@d.e."
    assert spans(_email_matches(html)) == spans(_EMAIL.finditer(html)) and len(spans(_email_matches(html))) == 4
    long_local = "k" * (EMAIL_LOCAL_MAX + 50) + "@example.org"
    assert spans(_email_matches(long_local)) == [(50, len(long_local))]
