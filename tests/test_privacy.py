"""Privacy: no raw email or public IP address leaves `fineforge curate` or `fineforge report` (issue 20).

Addresses are planted in every place a document's content can reach: the text, the url and an extra JSONL field
(nested too, which lands in `metadata`) of kept documents; documents the filters drop; an exact and a near
duplicate of a kept document whose kept copy is anonymised; and a damaged JSONL line that is quarantined. After a
real `fineforge curate` and `fineforge report`, every file under the output folder (`.work/` and `report.html`
included) is read back: Parquet decompressed by pyarrow, cell by cell, JSON strings in cells parsed; gzip
decompressed; everything else as text. No planted address may appear anywhere, while the look-alikes (a
documentation range, a private address, `user@localhost`) stay. With `pii.raw_rejects: true` the rejects keep
their raw text, and the run says so loudly in the terminal, in summary.json and in the report.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from orchestration.demo_data import demo_texts
from pipelines.curate.stages import FILTER_STAGES

REPO_ROOT = Path(__file__).resolve().parents[1]
FINEFORGE = [sys.executable, "-m", "cli"]

# Where each planted address goes: every one must be gone from every file of the output.
PLANTED = {
    "kept_text_email": "kept.text@gmail.com",
    "kept_text_ipv4": "93.184.216.34",
    "kept_text_ipv6": "2606:4700:4700::1111",
    "kept_url_email": "url.mail@yahoo.com",
    "kept_url_ip": "151.101.1.69",
    "meta_email": "meta.author@web.de",
    "meta_nested_ip": "8.8.4.4",
    "filtered_email": "filtered.out@gmail.com",
    "filtered_ip": "104.16.132.229",
    "exact_dup_url_email": "exact.dup@outlook.com",
    "near_dup_email": "near.dup@gmail.com",
    "near_dup_ip": "2a00:1450:4001:82a::200e",
    "quarantine_email": "broken.line@gmail.com",
    "quarantine_ip": "1.1.1.1",
}
# Look-alikes: a documentation range, a private address, a documentation IPv6 and an address without a domain.
LOOK_ALIKES = ["192.0.2.33", "10.0.0.7", "2001:db8::8a2e:370:7334", "user@localhost"]


def _with(text: str, sentence: str) -> str:
    """`text` with `sentence` added after its first paragraph."""
    head, _, tail = text.partition("\n\n")
    return f"{head} {sentence}\n\n{tail}"


def write_input(folder: Path) -> Path:
    """The planted corpus: kept, filtered, duplicate and damaged records, one JSONL file."""
    p = PLANTED
    texts = demo_texts(8, seed=20)
    planted = _with(
        texts[0],
        f"Write to {p['kept_text_email']} or reach the host {p['kept_text_ipv4']} or {p['kept_text_ipv6']}; "
        f"the lab uses {LOOK_ALIKES[0]}, {LOOK_ALIKES[1]}, {LOOK_ALIKES[2]} and {LOOK_ALIKES[3]}.",
    )
    near = planted.replace("Write to", f"Mail {p['near_dup_email']} from {p['near_dup_ip']} or write to", 1)
    records = [
        {
            "id": "kept-planted",
            "text": planted,
            "url": f"http://{p['kept_url_ip']}/contact?mail={p['kept_url_email']}",
            "author": p["meta_email"],
            "extra": {"hosts": [p["meta_nested_ip"], LOOK_ALIKES[0]]},
        },
        *({"id": f"kept-{i}", "text": t, "url": f"https://blog.example.com/{i}"} for i, t in enumerate(texts[1:])),
        {
            "id": "filtered-short",  # too short for the language and Gopher filters
            "text": f"Contact {p['filtered_email']} at {p['filtered_ip']} ({LOOK_ALIKES[0]}).",
            "url": "https://blog.example.com/short",
        },
        {"id": "exact-dup", "text": planted, "url": f"https://blog.example.com/dup?from={p['exact_dup_url_email']}"},
        {"id": "near-dup", "text": near, "url": "https://blog.example.com/near"},
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, f'{{"id": "broken", "text": "mail {p["quarantine_email"]} from {p["quarantine_ip"]}')
    path = folder / "crawl.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def fineforge(*args: str) -> subprocess.CompletedProcess:
    """Run the real `fineforge` command line."""
    return subprocess.run([*FINEFORGE, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a cell, JSON strings parsed and walked too (metadata is a JSON string column)."""
    if isinstance(value, str):
        yield value
        if value[:1] in "{[":
            try:
                yield from _strings(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def file_strings(path: Path) -> Iterator[str]:
    """The content of one output file as strings: Parquet cell by cell, gzip decompressed, else the bytes as text."""
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        for row in pq.read_table(path).to_pylist():
            yield from _strings(row)
        return
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    assert data[:4] != b"\x28\xb5\x2f\xfd", f"{path}: zstd data the test cannot read"
    yield data.decode("utf-8", "replace")


def find_addresses(out: Path, addresses: list[str]) -> dict[str, list[str]]:
    """Which of `addresses` occur in which files under `out` (relative paths)."""
    found: dict[str, list[str]] = {}
    files = [f for f in sorted(out.rglob("*")) if f.is_file()]
    assert any(f.suffix == ".parquet" for f in files) and (out / "report.html").is_file()
    for path in files:
        content = "\n".join(file_strings(path))
        for address in addresses:
            if address in content:
                found.setdefault(address, []).append(str(path.relative_to(out)))
    return found


def curate_and_report(tmp_path: Path, config: str | None = None) -> tuple[Path, str]:
    """Curate the planted corpus into `tmp_path/out`, write its report; return the folder and the terminal output."""
    corpus = write_input(tmp_path)
    out = tmp_path / "out"
    args = ["curate", "-i", str(corpus), "-o", str(out)]
    if config is not None:
        (tmp_path / "pii.yaml").write_text(config)
        args += ["-c", str(tmp_path / "pii.yaml")]
    curate = fineforge(*args)
    assert curate.returncode == 0, curate.stdout + curate.stderr
    report = fineforge("report", str(out))
    assert report.returncode == 0, report.stdout + report.stderr
    return out, curate.stdout + curate.stderr


def _stage(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["stages"] if s["name"] == name)


@pytest.fixture(scope="module")
def anonymised(tmp_path_factory) -> tuple[Path, str]:
    """A default run (pii on, raw rejects off) over the planted corpus, with its report."""
    return curate_and_report(tmp_path_factory.mktemp("privacy"))


def test_the_planted_records_reach_every_place(anonymised) -> None:
    out, _ = anonymised
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quarantined"] == 1
    assert sum(sum(s["dropped"].values()) for s in summary["stages"] if s["name"] in FILTER_STAGES) == 1
    assert _stage(summary, "exact_dedup")["dropped"] == {"exact_duplicate": 1}
    assert _stage(summary, "minhash_dedup")["dropped"] == {"minhash_duplicate": 1}
    assert summary["docs_out"] == 8
    rejects = {p.parent.name for p in (out / "rejects").glob("*/*.parquet")}
    assert {"exact_dedup", "minhash_dedup"} <= rejects and rejects & set(FILTER_STAGES)
    assert list((out / ".work").glob("filter-*/quarantine/*.jsonl")), "the quarantine's work copy is checked too"


def test_no_planted_address_in_any_file_of_the_output_or_report(anonymised) -> None:
    out, terminal = anonymised
    assert find_addresses(out, list(PLANTED.values())) == {}
    assert not [a for a in PLANTED.values() if a in terminal]
    kept = find_addresses(out, LOOK_ALIKES)
    for look_alike in LOOK_ALIKES:  # look-alikes stay, in the kept text and in the filter's rejects
        assert any(path.startswith("data/") for path in kept.get(look_alike, [])), look_alike
    assert any(path.split("/")[1] in FILTER_STAGES for path in kept[LOOK_ALIKES[0]] if path.startswith("rejects/"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["raw_rejects"] is False and summary["privacy"]["raw"] == []
    pii = _stage(summary, "pii")  # counts of kept documents' text, as before
    assert pii["modified"] == 1 and pii["replacements"] == {"emails": 1, "ip_addresses": 2}


def test_raw_rejects_opt_in_keeps_rejects_raw_and_says_so(tmp_path: Path) -> None:
    out, terminal = curate_and_report(tmp_path, "pii:\n  raw_rejects: true\n")
    assert "WARNING" in terminal and "raw_rejects" in terminal and "rejects/" in terminal
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["raw_rejects"] is True
    assert set(summary["privacy"]["raw"]) == {"rejects/", "quarantine/", ".work/"}
    found = find_addresses(out, list(PLANTED.values()))
    assert any(p.split("/")[1] in FILTER_STAGES for p in found[PLANTED["filtered_email"]] if p.startswith("rejects/"))
    assert any(p.startswith("rejects/minhash_dedup/") for p in found[PLANTED["near_dup_email"]])
    assert "quarantine/00000.jsonl" in found[PLANTED["quarantine_email"]]
    for address, paths in found.items():  # kept documents and the report stay anonymised
        assert not [p for p in paths if p.startswith("data/") or p == "report.html"], (address, paths)
    html = (out / "report.html").read_text()
    assert "pii.raw_rejects" in html and "raw" in html


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    """Kept rows by id, without `source_file` (the input's path differs between runs)."""
    rows = pq.read_table(sorted((out / "data").glob("*.parquet"))).to_pylist()
    return {row.pop("id"): row for row in rows if row.pop("source_file")}


def test_pii_off_replaces_nothing_anywhere_and_documents_without_pii_are_unchanged(anonymised, tmp_path) -> None:
    out, terminal = curate_and_report(tmp_path, "pii:\n  enabled: false\n")
    assert "pii.enabled is false" in terminal
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["pii"] is False and "data/" in summary["privacy"]["raw"]
    found = find_addresses(out, list(PLANTED.values()))
    for key in ("kept_text_email", "kept_url_email", "meta_email", "meta_nested_ip"):
        assert any(p.startswith("data/") for p in found[PLANTED[key]]), key
    assert "PII replacement is off" in (out / "report.html").read_text()
    clean, raw = _rows(anonymised[0]), _rows(out)
    assert clean.keys() == raw.keys() and len(clean) == 8
    for doc_id in clean.keys() - {"kept-planted"}:  # byte-identical whether or not the policy ran
        assert clean[doc_id] == raw[doc_id], doc_id
    assert clean["kept-planted"] != raw["kept-planted"]


def test_one_policy_for_strings_nested_metadata_and_an_input_field_named_pii() -> None:
    from datatrove.data import Document

    from pipelines.curate.pii import PiiAnonymizer, PiiStep, PiiTally

    scrub = PiiAnonymizer()
    url = f"http://{PLANTED['kept_url_ip']}/contact?mail={PLANTED['kept_url_email']}"
    assert scrub.scrub(url) == "http://email@example.com"  # the longer match (the email) wins over the IP in it
    meta = {"url": url, "source_file": "/in/8.8.8.8.jsonl", PLANTED["meta_email"]: [{"ip": "8.8.4.4"}, 3, None]}
    assert scrub.scrub_metadata(meta) == {
        "url": "http://email@example.com",
        "source_file": "/in/8.8.8.8.jsonl",  # the input's own path stays
        "email@example.com": [{"ip": "22.214.171.124"}, 3, None],
    }
    docs = [Document(text="no address", id="a", metadata={"pii": "an input field"}), Document(text="x", id="b")]
    tally = PiiTally()
    assert [d.metadata for d in tally.run(PiiStep().run(iter(docs)))] == [{"pii": "an input field"}, {}]
    assert "modified" not in tally.stats.stats  # the input's own `pii` field is not counted as a replacement
