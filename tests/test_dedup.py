"""Exact and MinHash dedup on a test set with planted copies (issue 2, acceptance 3), plus resume.

The natural documents: the built-in English articles (`demo_texts`, 400 distinct documents) and, as a second
case of each test where the shared corpora exist, the 580 web texts of web-text.jsonl.gz and pages of
trafilatura-eval and htmldate extracted with datatrove's Trafilatura settings (FineWeb's). Natural
near-duplicates among them (the htmldate/trafilatura-eval same-URL pairs, the dolma dedup fixtures, anything at
5-gram Jaccard >= 0.5) are grouped and reported; the other texts are the distinct documents. Planted on top,
from distinct documents: exact copies, and near-copies made by word substitutions, deletions, sentence moves
and boilerplate headers/footers. Every pair's 5-gram Jaccard is computed with the exact shingling the MinHash
stage uses and labels the pair (>= 0.8: must be caught).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.text import DEF_TEXT_NORM_CONFIG, simplify_text

from orchestration.demo_data import demo_texts
from pipelines.curate.dedup import (
    EXACT_REASON,
    MINHASH_REASON,
    DedupConfig,
    minhash_folders,
    minhash_signature_step,
    normalize_for_shingles,
    run_dedup,
)
from pipelines.curate.dedup_index import DocumentKeys, IndexRecorder
from pipelines.curate.words import get_word_tokenizer
from tests.conftest import SOURCES

TASKS = 2
BUILTIN_DOCS = 400  # demo articles: enough distinct sources for the planted copies below
EXTRA_PAGES = 100  # trafilatura-eval pages beyond the same-URL pairs (extraction ~20 ms each)
MIN_WORDS = 50  # Gopher's minimum document length (Rae et al. 2021): shorter texts never reach dedup
NATURAL_JACCARD = 0.5  # pairs above this are near-duplicates already; LSH catches a 0.5 pair with p = 0.054
NEAR_THRESHOLD = 0.8  # issue 2, acceptance 3
EXACT_GROUPS = 80
NEAR_PAIRS = 260
BOILERPLATE = [
    "Home | About us | Contact | Privacy policy",
    "Share this article on Facebook Twitter LinkedIn Email",
    "We use cookies to give you the best experience on our website. By continuing you agree to our cookie policy.",
    "Copyright 2020 Example Media Group. All rights reserved.",
    "Subscribe to our newsletter for the latest news and updates.",
    "Related posts: you may also like these stories from our archive",
]


@dataclass
class PlantedSet:
    docs: list[dict]  # datatrove JSONL records
    distinct: list[str]  # ids of documents with no natural near-duplicate
    exact_groups: list[list[str]]  # [source id, copy ids...]
    near_pairs: list[tuple[str, str, float, str]]  # (source id, copy id, 5-gram Jaccard, edit kind)
    natural_groups: list[tuple[list[str], float, str]]  # (ids, max pairwise Jaccard, origin)


@dataclass
class DedupRun:
    root: Path
    stats: list
    kept: set[str]
    rejects: dict[str, dict]  # id -> metadata, all stages


def _extracted_pages(corpora: Path) -> list[tuple[str, str, str]]:
    """(id, origin, text) of the same-URL pair pages and EXTRA_PAGES other trafilatura-eval pages."""
    extractor = Trafilatura(favour_precision=True)
    pairs = json.loads((corpora / "htmldate" / "same_url_pairs_with_trafilatura-eval.json").read_text())
    paths = [
        (f"pair{i}-{side}", "same-url", p[side]) for i, p in enumerate(pairs) for side in ("htmldate", "trafilatura")
    ]
    in_pairs = {p["trafilatura"] for p in pairs}
    extra = sorted(str(p.relative_to(corpora)) for p in (corpora / "trafilatura-eval" / "html").rglob("*.html.gz"))
    paths += [(f"teval-{Path(p).name}", "trafilatura-eval", p) for p in extra if p not in in_pairs][:EXTRA_PAGES]
    out = []
    for doc_id, origin, rel in paths:
        html = gzip.decompress((corpora / rel).read_bytes()).decode("utf-8", errors="replace")
        text = extractor.extract(html)
        if text:
            out.append((doc_id, origin, text))
    return out


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _pairwise_above(shingles: dict[str, set[int]], threshold: float) -> list[tuple[str, str, float]]:
    """All pairs with Jaccard >= threshold. Candidates share a shingle that fewer than 100 documents have
    (a pair at Jaccard >= 0.5 shares hundreds of shingles, not only boilerplate ones); their Jaccard is exact."""
    index: dict[int, list[str]] = defaultdict(list)
    for doc_id, sh in shingles.items():
        for s in sh:
            index[s].append(doc_id)
    candidates = {
        (a, b) for ids in index.values() if 1 < len(ids) < 100 for i, a in enumerate(ids) for b in ids[i + 1 :]
    }
    scored = ((a, b, _jaccard(shingles[a], shingles[b])) for a, b in sorted(candidates))
    return [pair for pair in scored if pair[2] >= threshold]


def _groups(ids: list[str], pairs: list[tuple[str, str, float]]) -> list[list[str]]:
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        parent[find(a)] = find(b)
    members: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        members[find(i)].append(i)
    return list(members.values())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _other_word(word: str, rng: random.Random, vocab: list[str]) -> str:
    while (new := rng.choice(vocab)) == word:
        pass
    return new


def _edit(text: str, kind: str, rng: random.Random, vocab: list[str]) -> str:
    """A near-copy of `text`: `kind` is substitute, delete, reorder, boilerplate or a '+'-joined mix."""
    for part in kind.split("+"):
        words = text.split(" ")
        k = max(1, int(len(words) * rng.uniform(0.003, 0.03)))
        sents = _sentences(text)
        if part == "reorder" and len(sents) < 3:
            part = "substitute"
        if part == "substitute":
            for i in rng.sample(range(len(words)), k):
                words[i] = _other_word(words[i], rng, vocab)
            text = " ".join(words)
        elif part == "delete":
            drop = set(rng.sample(range(len(words)), k))
            text = " ".join(w for i, w in enumerate(words) if i not in drop)
        elif part == "reorder":
            for _ in range(rng.randint(1, 3)):
                sents.insert(rng.randrange(len(sents) + 1), sents.pop(rng.randrange(len(sents))))
            text = "\n".join(sents)
        elif part == "boilerplate":
            header, footer = rng.sample(BOILERPLATE, 2)
            text = "\n".join(([header] if rng.random() < 0.7 else []) + [text] + [footer])
        else:
            raise ValueError(kind)
    return text


def natural_documents(source: str, request: pytest.FixtureRequest) -> list[tuple[str, str, str]]:
    """(id, origin, text) of the built-in articles, or of the shared corpora's texts and pages."""
    if source == "builtin":
        return [(f"demo-{i:04d}", "builtin", text) for i, text in enumerate(demo_texts(BUILTIN_DOCS))]
    corpora = request.getfixturevalue("corpora")
    records = [json.loads(line) for line in gzip.open(corpora / "web-text.jsonl.gz", "rt")]
    return [(r["id"], r["source"], r["text"]) for r in records] + _extracted_pages(corpora)


def build_test_set(natural: list[tuple[str, str, str]], shingle) -> PlantedSet:
    """Natural documents, their near-duplicate groups, and planted exact and near copies (seeded)."""
    natural = [(i, o, t) for i, o, t in natural if len(t.split()) >= MIN_WORDS]
    origin = {i: o for i, o, _ in natural}
    texts = {i: t for i, _, t in natural}
    shingles = {i: shingle(t) for i, t in texts.items()}
    pairs = _pairwise_above(shingles, NATURAL_JACCARD)
    groups = _groups(list(texts), pairs)
    best = defaultdict(float)
    for a, b, j in pairs:
        best[a], best[b] = max(best[a], j), max(best[b], j)
    natural_groups = [
        (g, max(best[i] for i in g), "/".join(sorted({origin[i] for i in g}))) for g in groups if len(g) > 1
    ]
    distinct = sorted(g[0] for g in groups if len(g) == 1)

    rng = random.Random(20240601)
    vocab = sorted({w for t in texts.values() for w in t.split() if w.isalpha()})
    sources = rng.sample(distinct, EXACT_GROUPS + NEAR_PAIRS)
    docs = [{"id": i, "text": t, "metadata": {"origin": origin[i]}} for i, t in texts.items()]
    exact_groups = []
    for src in sources[:EXACT_GROUPS]:
        copies = [f"{src}#copy{c}" for c in range(rng.randint(1, 3))]
        docs += [{"id": c, "text": texts[src], "metadata": {"origin": "planted-exact"}} for c in copies]
        exact_groups.append([src, *copies])
    kinds = ["substitute", "delete", "reorder", "boilerplate", "substitute+reorder", "delete+boilerplate"]
    near_pairs = []
    for n, src in enumerate(sources[EXACT_GROUPS:]):
        kind = kinds[n % len(kinds)]
        copy_id, text = f"{src}#near", _edit(texts[src], kind, rng, vocab)
        shingles[copy_id] = shingle(text)
        docs.append({"id": copy_id, "text": text, "metadata": {"origin": f"planted-{kind}"}})
        near_pairs.append((src, copy_id, _jaccard(shingles[src], shingles[copy_id]), kind))
    rng.shuffle(docs)
    return PlantedSet(docs, distinct, exact_groups, near_pairs, natural_groups)


def write_input(docs: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True)
    for f in range(TASKS):
        with gzip.open(folder / f"{f:05d}.jsonl.gz", "wt") as out:
            out.writelines(json.dumps(d) + "\n" for d in docs[f::TASKS])


def dedup(input_dir: Path, root: Path, cfg: DedupConfig | None = None, tasks: int = TASKS) -> DedupRun:
    """Run run_dedup like curate does: one local executor per sub-stage, logging dirs fixed under `root`."""

    def make_executor(pipeline: list, name: str, tasks: int) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(root / "logs" / name))

    stats = run_dedup(
        input_dir,
        root / "work",
        cfg or DedupConfig(),
        [JsonlWriter(str(root / "out"), compression=None)],
        make_executor,
        tasks,
        lambda stage: JsonlWriter(str(root / "rejects" / stage), compression=None),
    ).stages
    kept = {json.loads(line)["id"] for f in (root / "out").glob("*.jsonl") for line in f.read_text().splitlines()}
    rejects = {}
    for f in sorted((root / "rejects").glob("*/*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            rejects[rec["id"]] = rec["metadata"] | {"stage": f.parent.name}
    return DedupRun(root, stats, kept, rejects)


@pytest.fixture(scope="module", params=SOURCES)
def source(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def testset(source, request, tmp_path_factory) -> tuple[PlantedSet, Path]:
    step = minhash_signature_step(DedupConfig(), tmp_path_factory.mktemp("unused"))
    ts = build_test_set(natural_documents(source, request), lambda text: set(step.get_shingles(text).ravel().tolist()))
    input_dir = tmp_path_factory.mktemp("dedup") / "input"
    write_input(ts.docs, input_dir)
    return ts, input_dir


@pytest.fixture(scope="module")
def run(testset, tmp_path_factory) -> DedupRun:
    return dedup(testset[1], tmp_path_factory.mktemp("run"))


def _survivors(group: list[str], run: DedupRun) -> int:
    return sum(i in run.kept for i in group)


def test_planted_exact_copies_all_removed(testset, run):
    ts, _ = testset
    copies = sum(len(g) - 1 for g in ts.exact_groups)
    removed = sum(len(g) - _survivors(g, run) for g in ts.exact_groups if _survivors(g, run) >= 1)
    print(f"\nexact copies: {removed}/{copies} removed ({removed / copies:.1%}) in {len(ts.exact_groups)} groups")
    assert removed == copies
    for group in ts.exact_groups:
        for doc_id in group:
            if doc_id not in run.kept:
                meta = run.rejects[doc_id]
                assert meta["filter_reason"] == EXACT_REASON and meta["stage"] == "exact_dedup"
                assert meta["dedup_cluster_size"] == len(group) and meta["dedup_cluster_id"].startswith("exact-")


def test_planted_near_copies_removed(testset, run):
    ts, _ = testset
    labelled = [p for p in ts.near_pairs if p[2] >= NEAR_THRESHOLD]
    caught = [p for p in labelled if _survivors(p[:2], run) == 1]
    print(f"\nnear copies at Jaccard >= {NEAR_THRESHOLD}: {len(caught)}/{len(labelled)} removed")
    for lo, hi in [(0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01), (0.0, 0.8)]:
        in_bin = [p for p in ts.near_pairs if lo <= p[2] < hi]
        hit = sum(_survivors(p[:2], run) == 1 for p in in_bin)
        print(f"  Jaccard [{lo:.2f}, {min(hi, 1):.2f}): {hit}/{len(in_bin)} removed")
    for kind in sorted({p[3] for p in labelled}):
        of_kind = [p for p in labelled if p[3] == kind]
        print(f"  {kind}: {sum(p in caught for p in of_kind)}/{len(of_kind)}")
    assert len(labelled) >= 150, "the edits should give enough pairs at Jaccard >= 0.8 to measure a rate"
    assert len(caught) >= 0.9 * len(labelled)
    for src, copy, _, _ in caught:
        dropped = src if src in run.rejects else copy
        meta = run.rejects[dropped]
        assert meta["filter_reason"] == MINHASH_REASON and meta["stage"] == "minhash_dedup"
        assert meta["dedup_cluster_size"] >= 2 and meta["dedup_cluster_id"].startswith("minhash-")


def test_distinct_documents_kept(testset, run):
    ts, _ = testset
    planted = {g[0]: g for g in ts.exact_groups} | {p[0]: list(p[:2]) for p in ts.near_pairs}
    lost = [i for i in ts.distinct if (_survivors(planted[i], run) == 0 if i in planted else i not in run.kept)]
    print(f"\ndistinct documents removed: {len(lost)}/{len(ts.distinct)} ({len(lost) / len(ts.distinct):.2%})")
    assert len(lost) <= 0.01 * len(ts.distinct)


@pytest.mark.parametrize("source", ["corpora"], indirect=True)  # built-in articles have no natural near-copies
def test_natural_near_duplicates_reported(testset, run):
    ts, _ = testset
    print(f"\nnatural near-duplicate groups (5-gram Jaccard >= {NATURAL_JACCARD}): {len(ts.natural_groups)}")
    by_origin: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for ids, best, origin in ts.natural_groups:
        row = by_origin[f"{origin} (max J {'>= 0.8' if best >= NEAR_THRESHOLD else '< 0.8'})"]
        row[0] += 1
        row[1] += len(ids) - 1
        row[2] += len(ids) - _survivors(ids, run)
    for key, (groups, dups, removed) in sorted(by_origin.items()):
        print(f"  {key}: {groups} groups, {removed}/{dups} duplicates removed")
    # At Jaccard >= 0.9 LSH misses a pair with probability (1 - 0.9**8)**14 = 4e-4.
    close = [ids for ids, best, _ in ts.natural_groups if best >= 0.9]
    assert {"dolma-documents", "same-url"} <= {origin for _, best, origin in ts.natural_groups if best >= 0.9}
    assert all(_survivors(ids, run) == 1 for ids in close)


def test_stage_accounting(testset, run):
    ts, _ = testset
    exact, minhash = run.stats
    assert [exact.name, minhash.name] == ["exact_dedup", "minhash_dedup"]
    assert exact.docs_in == len(ts.docs) and minhash.docs_in == exact.docs_out
    assert minhash.docs_out == len(run.kept)
    for s in run.stats:
        assert s.docs_in == s.docs_out + sum(s.dropped.values())
    reasons = Counter((m["stage"], m["filter_reason"]) for m in run.rejects.values())
    assert exact.dropped == {EXACT_REASON: reasons["exact_dedup", EXACT_REASON]}
    assert minhash.dropped == {MINHASH_REASON: reasons["minhash_dedup", MINHASH_REASON]}


def _output_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(root.glob("out/*.jsonl")) + sorted(root.glob("rejects/*/*.jsonl"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_rerun_resumes_and_is_byte_identical(testset, run, tmp_path):
    _, input_dir = testset
    first = _output_bytes(run.root)
    # A crash in the last sub-stage: rank 1's marker and outputs are gone; the rerun redoes only that task.
    (run.root / "logs" / "minhash_filter" / "completions" / "00001").unlink()
    for path in [run.root / "out" / "00001.jsonl", run.root / "rejects" / "minhash_dedup" / "00001.jsonl"]:
        path.unlink()
    signature_marker = run.root / "logs" / "minhash_signature" / "completions" / "00000"
    mtime = signature_marker.stat().st_mtime_ns
    again = dedup(input_dir, run.root)
    assert signature_marker.stat().st_mtime_ns == mtime, "finished sub-stages must not run again"
    assert _output_bytes(run.root) == first and again.stats == run.stats

    fresh = dedup(input_dir, tmp_path / "fresh")
    assert _output_bytes(fresh.root) == first and fresh.stats == run.stats


def test_other_settings_refuse_the_work_dir(testset, run):
    with pytest.raises(ValueError, match="other settings"):
        dedup(testset[1], run.root, DedupConfig(num_buckets=20))


def test_minhash_alone_and_pass_through(testset, tmp_path):
    ts, input_dir = testset
    minhash_only = dedup(input_dir, tmp_path / "minhash", DedupConfig(exact=False), tasks=1)
    assert minhash_only.stats[0].dropped == {} and minhash_only.stats[0].docs_out == len(ts.docs)
    assert all(_survivors(g, minhash_only) == 1 for g in ts.exact_groups)  # Jaccard 1.0: MinHash finds them too
    nothing = dedup(input_dir, tmp_path / "none", DedupConfig(exact=False, minhash=False))
    assert len(nothing.kept) == len(ts.docs) and not nothing.rejects
    assert [(s.docs_in, s.docs_out) for s in nothing.stats] == [(len(ts.docs), len(ts.docs))] * 2


def test_fast_signatures_equal_datatrove(testset, tmp_path):
    ts, _ = testset
    cfg = DedupConfig()
    ours = minhash_signature_step(cfg, tmp_path)
    stock = MinhashDedupSignature(str(tmp_path), cfg.minhash_config(), language=get_word_tokenizer(cfg.word_tokenizer))
    for doc in ts.docs:
        shingles = ours.get_shingles(doc["text"])
        assert shingles.tolist() == stock.get_shingles(doc["text"]).tolist(), doc["id"]
        if shingles.size:
            assert ours.get_signature(shingles) == stock.get_signature(shingles), doc["id"]
    # Odd characters: combining marks, no-break and other Unicode spaces, control separators, CJK.
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x3100)] + list(" \t\n\u00a0\u2028\x1c\x85\u0301\u0308e1,.") * 40
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert normalize_for_shingles(text, DEF_TEXT_NORM_CONFIG) == simplify_text(text, DEF_TEXT_NORM_CONFIG)


def _index_rows_and_texts(docs: list[dict], root: Path) -> tuple[list[dict], dict[str, str], list]:
    """Dedup `docs` (TASKS input files) as curate does, the dedup index reading stage 1's keys; return the
    recorded index rows, the kept texts by id and the stage stats."""
    input_dir = root / "input"
    write_input(docs, input_dir)
    cfg = DedupConfig()
    parts = root / "index_parts"

    def make_executor(pipeline: list, name: str, tasks: int) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(root / "logs" / name))

    recorder = IndexRecorder(parts, cfg, minhash_folders(root / "work"))
    final = [recorder, JsonlWriter(str(root / "out"), compression=None)]
    result = run_dedup(input_dir, root / "work", cfg, final, make_executor, TASKS, lambda stage: None)
    texts = {}
    for f in sorted((root / "out").glob("*.jsonl")):
        texts |= {rec["id"]: rec["text"] for rec in map(json.loads, f.read_text().splitlines())}
    rows = [row for f in sorted(parts.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert sorted(row["id"] for row in rows) == sorted(texts)
    keys_of = DocumentKeys(cfg)
    for row in rows:
        own = keys_of.buckets(texts[row["id"]])
        assert row["keys"] == (None if own is None else own.tolist()), row["id"]
        assert row["exact"] == keys_of.exact(texts[row["id"]])
    return rows, texts, result.stages


def test_index_keys_read_from_the_signature_files_equal_each_texts_own(testset, tmp_path):
    """The dedup index of the kept documents, with its MinHash keys read from stage 1's files (as curate writes it),
    holds for every document the keys its text gives when signed alone: over 2 tasks, with exact and near copies
    dropped in between and texts too short to sign (no key); and where MinHash drops nothing (no removal list)."""
    ts, _ = testset
    short = [{"id": f"short-{i}", "text": f"too short {i}"} for i in range(6)]
    rows, _, stages = _index_rows_and_texts([*short[:3], *ts.docs, *short[3:]], tmp_path / "planted")
    assert all(sum(stage.dropped.values()) > 0 for stage in stages)  # exact and near copies dropped
    assert sum(row["keys"] is None for row in rows) == len(short)
    distinct = [{"id": f"d{i}", "text": text} for i, text in enumerate(demo_texts(20, seed=3))]
    rows, texts, stages = _index_rows_and_texts(distinct, tmp_path / "distinct")
    assert len(rows) == len(distinct) and not any(stage.dropped for stage in stages)
