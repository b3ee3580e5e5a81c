"""Benchmark decontamination: the index of eval sets, the `decontaminate` stage, and their errors.

Eval sets are written by the tests: HellaSwag-format items (`ctx`, `endings`, `label`, with WikiHow markers as in
the real file) and plain text sets in JSONL and Parquet, made from built-in prose (and from real C4 documents
where the shared corpora exist). Eval passages are planted into otherwise clean crawl documents; every planted
document must be caught with the right set's reason, no other document may be, and a document that shares
only a run of 12 words (shorter than the 13-gram) must pass.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from datatrove.data import Document
from typer.testing import CliRunner

from cli import app
from orchestration.demo_data import demo_texts
from pipelines.curate import CurateConfig, CurateStage, run_curate
from pipelines.curate.decontam import DecontamConfig, Decontaminator, shared_ngrams
from pipelines.curate.decontam_index import (
    DecontamIndexError,
    EvalSet,
    build_index,
    hellaswag_passages,
    load_index,
    parse_eval_arg,
    words,
)

MARKERS = ("[header]", "[title]", "[step]", "[substeps]")


def sentences(text: str) -> list[str]:
    """The sentences of a demo article (they end in '. ')."""
    return [s.strip() + "." for s in text.replace("\n", " ").split(". ") if s.strip()]


def hellaswag_items(sources: list[str], rng: random.Random) -> tuple[list[dict], list[str]]:
    """HellaSwag-format items from prose, and each item's clean passage (context + gold ending) as on the web."""
    items, passages = [], []
    for i, text in enumerate(sources):
        sents = sentences(text)
        start = rng.randrange(0, len(sents) - 4)
        ctx_sents, gold = sents[start : start + 2], sents[start + 2]
        wrong = [rng.choice(sentences(sources[(i + k) % len(sources)])) for k in (1, 2, 3)]
        label = rng.randrange(4)
        endings = wrong[:label] + [gold] + wrong[label:]
        marker = MARKERS[i % len(MARKERS)]
        items.append(
            {"ind": i, "ctx": f"{marker} {' '.join(ctx_sents)}", "endings": endings, "label": label, "split": "val"}
        )
        passages.append(" ".join(ctx_sents + [gold]))
    return items, passages


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def insert_middle(text: str, passage: str) -> str:
    """Put `passage` between two paragraphs of `text` (or in the middle of a single one)."""
    paragraphs = text.split("\n\n")
    if len(paragraphs) > 1:
        return "\n\n".join(paragraphs[:1] + [passage] + paragraphs[1:])
    middle = text.find(" ", len(text) // 2)
    return text[:middle] + " " + passage + text[middle:]


@pytest.fixture(scope="module")
def builtin(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An index over a HellaSwag set and a text set (JSONL and Parquet) and crawl documents with plants."""
    root = tmp_path_factory.mktemp("decontam")
    rng = random.Random(7)
    items, hs_passages = hellaswag_items(demo_texts(40, seed=31), rng)
    hellaswag = write_jsonl(root / "hellaswag_val.jsonl", items)
    wiki = [{"id": i, "text": p} for i, p in enumerate(t.split("\n\n")[1] for t in demo_texts(30, seed=32))]
    wiki_jsonl = write_jsonl(root / "wiki.jsonl", wiki)
    pl.DataFrame(wiki).write_parquet(root / "wiki.parquet")
    index = root / "eval.idx"
    meta = build_index(
        [
            parse_eval_arg(str(hellaswag)),
            parse_eval_arg(f"wikitext={wiki_jsonl}"),
            parse_eval_arg(f"wikitext_parquet={root / 'wiki.parquet'}"),
        ],
        index,
    )
    crawl = demo_texts(90, seed=33)
    docs, truth = [], {}
    for i, text in enumerate(crawl):
        doc_id = f"crawl-{i:03d}"
        if i < 20:
            text = insert_middle(text, hs_passages[i])
            truth[doc_id] = "hellaswag_val"
        elif i < 30:
            text = insert_middle(text, wiki[i]["text"])
            truth[doc_id] = "wikitext"  # wikitext and wikitext_parquet hold the same passages: ties go by name
        elif i < 40:
            twelve = " ".join(hs_passages[i].split()[:12])  # a shared run of 12 words: below the 13-gram
            text = insert_middle(text, twelve)
        docs.append({"id": doc_id, "url": f"https://news.example.org/{i}", "text": text})
    return {"root": root, "index": index, "meta": meta, "docs": docs, "truth": truth, "items": items}


def test_index_metadata_and_format(builtin: dict) -> None:
    meta = builtin["meta"]
    assert [s["name"] for s in meta["sets"]] == ["hellaswag_val", "wikitext", "wikitext_parquet"]
    hs = meta["sets"][0]
    assert hs["kind"] == "hellaswag" and hs["records"] == 40 and hs["passages"] == 40 * 5
    assert hs["too_short"] > 0  # single endings are often under 13 words
    assert meta["sets"][1]["kind"] == meta["sets"][2]["kind"] == "text"
    index = load_index(builtin["index"])
    assert index.ngram == 13 and index.meta == meta
    assert np.array_equal(index.keys["wikitext"], index.keys["wikitext_parquet"])  # JSONL and Parquet read alike
    sizes = {s["name"]: s["ngrams"] for s in meta["sets"]}
    assert {name: keys.size for name, keys in index.keys.items()} == sizes
    assert all(keys.dtype == np.uint64 for keys in index.keys.values())


def test_hellaswag_markers_are_removed() -> None:
    item = {"ctx": "[header] How to bake bread. [title] Mix flour", "endings": ["and water.", "[step] x"], "label": 0}
    assert hellaswag_passages(item) == ["How to bake bread.. Mix flour and water.", "and water.", "x"]
    assert words("Don't stop—the END_of it, 3.5%!") == ["don", "t", "stop", "the", "end", "of", "it", "3", "5"]


def test_planted_passages_are_caught_and_nothing_else(builtin: dict) -> None:
    step = Decontaminator(builtin["index"], "drop")
    caught = {}
    for record in builtin["docs"]:
        result = step.filter(Document(text=record["text"], id=record["id"]))
        if result is not True:
            keep, reason = result
            caught[record["id"]] = reason.removeprefix("contaminated:")
    assert caught == builtin["truth"]


def test_real_text_planted_and_distinct(corpora: Path, tmp_path: Path) -> None:
    # Eval items from the C4 samples; crawl documents from the shared web texts of the other sources.
    rng = random.Random(3)
    with gzip.open(corpora / "c4-samples" / "c4-sample.01.json.gz", "rt") as f:
        c4 = [json.loads(line)["text"] for line in f]
    sources = [t for t in c4 if len(sentences(t)) >= 6]
    items, passages = hellaswag_items(sources, rng)
    index = tmp_path / "c4.idx"
    build_index([EvalSet("c4_hellaswag", write_jsonl(tmp_path / "c4.jsonl", items))], index)
    with gzip.open(corpora / "web-text.jsonl.gz", "rt") as f:
        crawl = [r["text"] for r in map(json.loads, f) if r["source"] != "olmo-c4"]
    step = Decontaminator(index, "drop")
    planted = [insert_middle(crawl[i], passages[i % len(passages)]) for i in range(len(passages))]
    reasons = [step.filter(Document(text=t, id=str(i))) for i, t in enumerate(planted)]
    assert reasons == [(False, "contaminated:c4_hellaswag")] * len(planted)
    clean = [t for t in crawl if step.filter(Document(text=t, id="x")) is True]
    assert len(clean) == len(crawl), "a distinct real document shares a 13-gram with C4 eval items"


def test_curate_drops_and_counts_per_eval_set(builtin: dict, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "crawl.jsonl", builtin["docs"])
    cfg = CurateConfig(decontaminate=DecontamConfig(enabled=True, index=str(builtin["index"])))
    summary = run_curate(cfg, [str(corpus)], tmp_path / "out")
    stage = next(s for s in summary["stages"] if s["name"] == "decontaminate")
    assert stage["dropped"] == {"contaminated:hellaswag_val": 20, "contaminated:wikitext": 10}
    assert stage["contaminated"] == {"hellaswag_val": 20, "wikitext": 10, "wikitext_parquet": 10}
    assert stage["action"] == "drop" and stage["index"] == str(builtin["index"].resolve())
    top = stage["matched_ngrams"]["hellaswag_val"]
    assert 0 < len(top) <= 10 and all(len(row["ngram"].split()) == 13 for row in top)
    assert all(row["ngram"] in " ".join(words(" ".join(d["text"] for d in builtin["docs"][:20]))) for row in top)

    data = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    assert set(data["id"]).isdisjoint(builtin["truth"]) and data.height == 60
    rejects = pl.read_parquet(sorted((tmp_path / "out" / "rejects" / "decontaminate").glob("*.parquet")))
    assert dict(zip(rejects["id"], rejects["reason"], strict=True)) == {
        doc_id: f"contaminated:{name}" for doc_id, name in builtin["truth"].items()
    }
    assert all("contamination" in json.loads(m) for m in rejects["metadata"])

    from pipelines.report import build_report, report_data

    tables = report_data(tmp_path / "out")
    assert {r["eval_set"]: r["dropped"] for r in tables["decontamination"]["sets"]} == {
        "hellaswag_val": 20,
        "wikitext": 10,
        "wikitext_parquet": 0,
    }
    html = build_report(tmp_path / "out").read_text()
    assert 'id="decontamination-ngrams"' in html and top[0]["ngram"] in html


def test_flag_keeps_documents_and_marks_them(builtin: dict, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "crawl.jsonl", builtin["docs"][:35])
    cfg = CurateConfig(decontaminate=DecontamConfig(enabled=True, index=str(builtin["index"]), action="flag"))
    summary = run_curate(cfg, [str(corpus)], tmp_path / "out")
    stage = next(s for s in summary["stages"] if s["name"] == "decontaminate")
    assert stage["dropped"] == {} and stage["docs_out"] == 35 and stage["contaminated"]["hellaswag_val"] == 20
    data = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    flagged = {i for i, m in zip(data["id"], data["metadata"], strict=True) if "contamination" in json.loads(m)}
    assert flagged == set(builtin["truth"])


def test_index_is_checked_before_any_document_is_read(builtin: dict, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "crawl.jsonl", builtin["docs"][:5])
    garbage = tmp_path / "garbage.idx"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    npz_without_meta = tmp_path / "plain.npz"
    np.savez(npz_without_meta, keys=np.arange(3, dtype=np.uint64))
    for index, message in (
        (tmp_path / "missing.idx", "not found"),
        (garbage, "damaged or not a decontamination index"),
        (npz_without_meta, "damaged or not a decontamination index"),
    ):
        cfg = CurateConfig(decontaminate=DecontamConfig(enabled=True, index=str(index)))
        with pytest.raises(DecontamIndexError, match=message):
            run_curate(cfg, [str(corpus)], tmp_path / "out")
        assert not (tmp_path / "out" / ".work").exists()
    with pytest.raises(ValueError, match="decontaminate.index"):
        DecontamConfig(enabled=True)


def test_a_changed_index_is_a_new_run(builtin: dict, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "crawl.jsonl", builtin["docs"][:5])
    index = tmp_path / "copy.idx"
    index.write_bytes(builtin["index"].read_bytes())
    cfg = CurateConfig(decontaminate=DecontamConfig(enabled=True, index=str(index)))

    def run_id() -> str:
        stage = CurateStage(cfg, [str(corpus)], tmp_path / "out")
        stage.plan()
        return stage.run_id

    first = run_id()
    build_index([EvalSet("other", write_jsonl(tmp_path / "o.jsonl", [{"text": "one two " * 20}]))], index)
    assert run_id() != first


def test_bad_eval_sets_and_outputs_give_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine line of text"}\n{"text": oops}\n')
    with pytest.raises(DecontamIndexError, match=r"broken.jsonl: line 2: invalid JSON"):
        build_index([parse_eval_arg(str(broken))], tmp_path / "a.idx")
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"question": "what?"}])
    with pytest.raises(DecontamIndexError, match=r"odd.jsonl:1: neither a HellaSwag item"):
        build_index([parse_eval_arg(str(odd))], tmp_path / "a.idx")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DecontamIndexError, match="no records"):
        build_index([parse_eval_arg(str(empty))], tmp_path / "a.idx")
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "a b c d e f g h i j k l m n o"}])
    with pytest.raises(DecontamIndexError, match="repeated"):
        build_index([parse_eval_arg(str(good)), parse_eval_arg(str(good))], tmp_path / "a.idx")
    with pytest.raises(DecontamIndexError, match="eval set name"):
        parse_eval_arg(f"bad name={good}")
    someone_elses = tmp_path / "notes.txt"
    someone_elses.write_text("my notes")
    with pytest.raises(DecontamIndexError, match="not a decontamination index; choose another --out"):
        build_index([parse_eval_arg(str(good))], someone_elses)
    assert someone_elses.read_text() == "my notes"
    build_index([parse_eval_arg(str(good))], tmp_path / "a.idx")
    build_index([parse_eval_arg(f"again={good}")], tmp_path / "a.idx")  # an index may be replaced
    assert load_index(tmp_path / "a.idx").meta["sets"][0]["name"] == "again"


def test_cli_builds_an_index_and_reports_errors(builtin: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.idx"
    hellaswag = builtin["root"] / "hellaswag_val.jsonl"
    result = runner.invoke(app, ["decontam", "index", "--eval", f"hs={hellaswag}", "--out", str(out), "--ngram", "8"])
    assert result.exit_code == 0, result.output
    assert "hs: 40 hellaswag records, 200 passages" in result.output and load_index(out).ngram == 8
    result = runner.invoke(app, ["decontam", "index", "--eval", str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert result.exit_code == 2 and "nope.jsonl: eval set file not found" in result.output
    assert "Traceback" not in result.output


def test_shared_ngrams_names_the_text(builtin: dict) -> None:
    index = load_index(builtin["index"])
    doc = builtin["docs"][0]["text"]
    found = shared_ngrams(index, doc)
    assert set(found) == {"hellaswag_val"}
    assert all(gram in " ".join(words(doc)) for gram in found["hellaswag_val"])
