"""Curate throughput per core, stage by stage, side by side with datatrove's stock filters on spaCy; peak memory.

Per stage, in one process, on the shared corpora (web-text.jsonl.gz; trafilatura-eval HTML for extraction):

- extraction (trafilatura with datatrove's options), URL filter, language filter: the same datatrove steps on
  both sides (stock URLFilter would fetch the public suffix list and the stock LanguageFilter would download
  lid.176.bin; ours use the bundled copies), so one number;
- each heuristic filter alone, and the four together as a pipeline (Gopher repetition -> Gopher quality ->
  C4 -> FineWeb, through `step.run`, stats included): FineForge's filters with the fast spaCy-compatible
  tokenizer against datatrove's stock classes with `spacy.blank("en")`, and the ratio. "cold" is a first pass
  with an empty chunk memo (what a 580-document corpus sees), "warm" a second pass (a long run's steady state);
- MinHash signatures (5-grams, 14 x 8): `pipelines.curate.dedup` against datatrove's MinhashDedupSignature on spaCy;
- decontaminate (13-gram lookups in an index of 10,000 passages; FineForge only) and pii (against datatrove's
  PIIFormatter, which FineWeb runs);
- the live-progress probe that rides after every reader (`pipelines.curate.progress.ProgressProbe`), alone, to
  show what it adds per document next to the stages above.

Rates are documents per CPU-second of this single process (`time.process_time`), i.e. per core: load from other
processes on this shared machine slows the wall clock of both sides but barely moves CPU time.

`--e2e N ...` adds end-to-end `fineforge curate` runs (text input: N documents replicated from the corpora with
edits, in `--files` gzip JSONL files in a temporary folder), each with its wall time and the peak resident
memory of its whole process tree (sampled every 0.2 s; with Ray, the head's processes too), then the growth
factors per 10x documents of the one-worker runs (targets: memory <= 1.5x, time ~10x, i.e. linear), and the
speed-up of `--workers 2 ...` and of a local Ray cluster (`--ray N`, a head of its own with N CPUs,
`tests.ray_head`) over one worker on the same input, with the CPU seconds of each run (the whole tree and the Ray
head's processes). Read the wall-clock speed-ups with the machine's load in mind: with Linux's
`sched_autogroup_enabled=1` (on here) the CPU is shared between sessions, not processes, so while other sessions
keep the cores busy a run's second worker gets no extra CPU (a Ray head, a session of its own, does); the CPU
seconds say how much extra work the parallel run did.

`--e2e-warc N ...` adds end-to-end runs from WARC, one core each, on a WARC of N HTML responses cycled from the 1,333
real pages of the corpora (htmldate's WARC and trafilatura-eval), in the same run: FineForge's whole curate
(read, extract, filters, exact and MinHash dedup, PII, Parquet) with trafilatura and with resiliparse, and
datatrove's stock FineWeb pipeline (WarcReader, Trafilatura, the filters on spaCy, MinHash signatures only, so
it does less work than FineForge's run), and each FineForge run once more without the language pre-check
(`extract.language_precheck`). Each prints documents per CPU-second of its whole process tree, the ratio to stock,
wall time and peak resident memory; then, per engine, how many of the documents the run without the pre-check keeps
the run with it keeps too (the issue's parity: at least 99.5%), the pages it skipped and the CPU it saved.
Run: `.venv/bin/python -m benchmarks.curate [--docs 580] [--pages 120] [--no-stages]
[--e2e 10000 100000 1000000] [--workers 1 2] [--ray 2] [--files 8] [--e2e-warc 1425]`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from pipelines.curate.decontam import Decontaminator
from pipelines.curate.filters import FilterConfig, build_filter_steps
from pipelines.curate.pii import PiiAnonymizer
from pipelines.curate.words import SpacyCompatTokenizer
from tests.conftest import corpora_path

HEURISTICS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
ROOT = Path(__file__).resolve().parents[1]


def web_records(limit: int | None = None) -> list[dict]:
    """The shared web texts (id, url, text)."""
    with gzip.open(corpora_path() / "web-text.jsonl.gz", "rt") as f:
        records = [json.loads(line) for line in f]
    return records[:limit] if limit else records


def html_pages(limit: int) -> list[bytes]:
    """Raw HTML of the first `limit` trafilatura-eval pages (sorted by path)."""
    paths = sorted((corpora_path() / "trafilatura-eval" / "html").rglob("*.html.gz"))[:limit]
    return [gzip.decompress(p.read_bytes()) for p in paths]


def eval_urls() -> list[str]:
    """The real page URLs of trafilatura-eval (evaldata.json keys)."""
    return list(json.loads((corpora_path() / "trafilatura-eval" / "evaldata.json").read_text()))


def docs_of(records: list[dict]) -> list[Document]:
    """Fresh documents (filters may rewrite text and metadata)."""
    return [Document(text=r["text"], id=str(r["id"]), metadata={"url": r["url"]}) for r in records]


def cpu_rate(n_docs: int, work: Callable[[], None]) -> float:
    """Documents per CPU-second of this process for one call of `work`."""
    start = time.process_time()
    work()
    return n_docs / max(time.process_time() - start, 1e-9)


def drain(steps: list, docs: Iterable[Document]) -> int:
    """Run documents through datatrove steps chained as a pipeline; return how many come out."""
    data = iter(docs)
    for step in steps:
        data = step.run(data)
    return sum(1 for _ in data)


def stock_heuristics() -> dict:
    """datatrove's own classes on a fresh (cold) `SpaCyTokenizer("en")`, datatrove's English default."""
    spacy_tok = SpaCyTokenizer("en")
    return {
        "gopher_repetition": GopherRepetitionFilter(language=spacy_tok),
        "gopher_quality": GopherQualityFilter(language=spacy_tok),
        "c4_quality": C4QualityFilter(filter_no_terminal_punct=False, language=spacy_tok),
        "fineweb_quality": FineWebQualityFilter(language=spacy_tok),
    }


def fast_heuristics() -> dict:
    """FineForge's filters with a fresh (cold) fast tokenizer."""
    steps = dict(build_filter_steps(FilterConfig(), lambda name: None))
    tok = SpacyCompatTokenizer()
    for name in HEURISTICS:
        steps[name].language = tok
    return {name: steps[name] for name in HEURISTICS}


def row(stage: str, ours: float, stock: float | None = None, note: str = "", no_stock: str = "(same)") -> None:
    """Print one table row (docs/s per core); without a stock rate the stock column says `no_stock`."""
    ratio = f"{ours / stock:7.1f}x" if stock else "       -"
    stock_s = f"{stock:10.0f}" if stock else f"{no_stock:>10}"
    print(f"{stage:<34}{ours:10.0f}{stock_s}{ratio}  {note}", flush=True)


def bench_stages(records: list[dict], pages: int) -> None:
    """Per-stage docs/s per core, ours against datatrove's stock filters on spaCy."""
    n = len(records)
    print(f"{'stage (docs/s per core)':<34}{'fineforge':>10}{'stock':>10}{'ratio':>8}")
    if pages:
        from trafilatura import extract

        html = html_pages(pages)
        rate = cpu_rate(len(html), lambda: [extract(h, favor_precision=True, include_comments=False) for h in html])
        row("extraction (trafilatura)", rate, note=f"{len(html)} trafilatura-eval pages")
    steps = dict(build_filter_steps(FilterConfig(), lambda name: None))
    url_docs = [Document(text="", id=str(i), metadata={"url": u}) for i, u in enumerate(eval_urls())]
    drain([steps["url_filter"]], url_docs[:20])  # extract the block lists untimed
    rate = cpu_rate(len(url_docs), lambda: drain([steps["url_filter"]], url_docs))
    row("url_filter", rate, note=f"same datatrove step; {len(url_docs)} trafilatura-eval URLs")
    drain([steps["language_filter"]], docs_of(records[:20]))  # load the fastText model untimed
    rate = cpu_rate(n, lambda: drain([steps["language_filter"]], docs_of(records)))
    row("language_filter", rate, note="same datatrove step")

    def compare(label: str, ours: list, stock: list, note: str = "") -> None:
        kept = {}

        def timed(side: str, steps: list) -> float:
            return cpu_rate(n, lambda: kept.__setitem__(side, drain(steps, docs_of(records))))

        ours_cold, ours_warm = timed("ours", ours), timed("ours", ours)
        stock_cold, stock_warm = timed("stock", stock), timed("stock", stock)
        same = f"kept {kept['ours']} vs stock {kept['stock']} of {n}"
        row(f"{label} (cold)", ours_cold, stock_cold, note=same)
        row(f"{label} (warm)", ours_warm, stock_warm, note=note)

    for name in HEURISTICS:
        compare(name, [fast_heuristics()[name]], [stock_heuristics()[name]])
    ours, stock = list(fast_heuristics().values()), list(stock_heuristics().values())
    compare("four heuristic filters", ours, stock, note="target: >= 10x stock")
    bench_minhash([r["text"] for r in records])
    bench_recipe_stages(records)
    bench_probe(records)


def bench_probe(records: list[dict], copies: int = 200) -> None:
    """Documents per CPU-second through the live-progress probe alone (it writes its counters once a second)."""
    from collections import deque

    from pipelines.curate.progress import ProgressProbe

    docs = docs_of(records) * copies
    with tempfile.TemporaryDirectory(prefix="ff-probe-") as tmp:
        steps = [step for _, step in build_filter_steps(FilterConfig(), lambda name: None)]
        probe = ProgressProbe(tmp, [1] * 8).watch(steps)  # the counters of a filter pass, as in a real run
        rate = cpu_rate(len(docs), lambda: deque(probe(iter(docs), 0, 1), maxlen=0))
    row("progress probe (pass-through)", rate, note=f"{len(docs)} documents; what live progress adds per document")


def bench_minhash(texts: list[str]) -> None:
    """MinHash signatures per core: pipelines.curate.dedup against datatrove's step on spaCy (skipped if absent)."""
    try:
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        from pipelines.curate.dedup import minhash_signature_rate
    except ImportError as err:
        print(f"minhash signatures: skipped ({err})")
        return
    ours = minhash_signature_rate(texts)
    stock_step = MinhashDedupSignature(os.devnull, config=MinhashConfig(), language=SpaCyTokenizer("en"))

    def sign() -> None:
        for text in texts:
            shingles = stock_step.get_shingles(text)
            if shingles.size:
                stock_step.get_signature(shingles)

    sign()  # warm, like minhash_signature_rate
    row("minhash signatures (warm)", ours, cpu_rate(len(texts), sign), note="target >= 1,000 docs/s")


def bench_recipe_stages(records: list[dict]) -> None:
    """decontaminate (against an index of 10,000 built-in passages) and pii, per core; no stock counterpart."""
    from orchestration.demo_data import demo_texts
    from pipelines.curate.decontam_index import EvalSet, build_index

    docs = docs_of(records)
    with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
        passages = [{"text": p} for t in demo_texts(2000, seed=9) for p in t.split("\n\n")][:10_000]
        (Path(tmp) / "eval.jsonl").write_text("".join(json.dumps(p) + "\n" for p in passages))
        meta = build_index([EvalSet("eval", Path(tmp) / "eval.jsonl")], Path(tmp) / "eval.idx")
        step = Decontaminator(Path(tmp) / "eval.idx")
        step.filter(docs[0])  # load the index untimed
        rate = cpu_rate(len(docs), lambda: [step.filter(d) for d in docs])
    row("decontaminate (13-grams)", rate, note=f"index of {meta['sets'][0]['ngrams']:,} n-grams", no_stock="-")
    anonymize = PiiAnonymizer()
    anonymize("warm up the public suffix list: a@example.com")
    rate = cpu_rate(len(docs), lambda: [anonymize(d.text) for d in docs])
    formatter = PIIFormatter()
    stock = cpu_rate(len(docs), lambda: [formatter.format(d.text) for d in docs])
    row("pii (emails, IPv4, IPv6)", rate, stock, note="stock: datatrove's PIIFormatter (emails, IPv4)")


def bench_pages() -> list[tuple[str, bytes]]:
    """(URL, raw HTML bytes) of the real pages in the corpora with an http(s) URL: the htmldate WARC's responses
    and the annotated trafilatura-eval pages, sorted by URL."""
    from warcio.archiveiterator import ArchiveIterator

    pages = {}
    with open(corpora_path() / "htmldate" / "htmldate-multilingual.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                pages[record.rec_headers.get_header("WARC-Target-URI")] = record.content_stream().read()
    root = corpora_path() / "trafilatura-eval"
    files = {p.name.removesuffix(".gz"): p for p in (root / "html").rglob("*.html.gz")}
    for url, entry in json.loads((root / "evaldata.json").read_text()).items():
        pages.setdefault(url, gzip.decompress(files[entry["file"]].read_bytes()))
    return sorted((url, body) for url, body in pages.items() if url.startswith(("http://", "https://")))


def write_bench_warc(path: Path, n_docs: int) -> None:
    """Write a WARC of `n_docs` HTML responses cycled from `bench_pages`, Common Crawl style.

    Each response carries `WARC-Identified-Payload-Type: text/html`, so datatrove's stock WarcReader (which
    sniffs with libmagic where that header is absent and silently skips what libmagic does not call HTML)
    reads every record, as FineForge's reader does. Copies beyond the first cycle get `?copy=k` URLs: a crawl's
    revisits, which exact dedup removes after extraction.
    """
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    pages = bench_pages()
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i in range(n_docs):
            url, body = pages[i % len(pages)]
            copy = i // len(pages)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url + (f"?copy={copy}" if copy else ""),
                "response",
                payload=io.BytesIO(body),
                http_headers=http,
                warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"},
            )
            writer.write_record(record)


FINEFORGE_RUN = """
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
from pipelines.curate import CurateConfig, run_curate
config = CurateConfig.model_validate({"extract": json.loads(sys.argv[3])})
s = run_curate(config, [sys.argv[1]], Path(sys.argv[2]), workers=1)
stages = {stage["name"]: stage for stage in s["stages"]}
files = sorted(Path(sys.argv[2], "data").glob("*.parquet"))
ids = sorted(i for f in files for i in pq.read_table(f)["id"].to_pylist())
skipped = stages.get("language_filter", {}).get("dropped", {}).get("language_precheck", 0)
print(json.dumps({"docs": s["docs_in"], "filtered": stages["decontaminate"]["docs_out"], "kept": s["docs_out"],
    "ids": ids, "skipped": skipped}))
"""

# datatrove's FineWeb pipeline (examples/fineweb.py: WarcReader, URLFilter, Trafilatura(favour_precision=True),
# LanguageFilter, Gopher repetition and quality, C4 (no terminal-punctuation rule), FineWeb quality, filters on
# spaCy) and the first MinHash stage (signatures), all datatrove's stock classes and defaults, but for English
# only: datatrove 0.10.1's LanguageFilter keeps every language unless given `languages` (FineWeb is English).
# Two offline substitutions, as FineForge makes them: the URL filter's public suffix list and the language
# filter's fastText lid.176 model come from bundled copies instead of downloads.
STOCK_RUN = """
import json, sys
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
    GopherRepetitionFilter, LanguageFilter, URLFilter)
from datatrove.pipeline.readers import JsonlReader, WarcReader
from datatrove.pipeline.writers import JsonlWriter
from tldextract import TLDExtract
from pipelines.curate.lid import _BundledFT176
warc, out = Path(sys.argv[1]), Path(sys.argv[2])
url_filter = URLFilter()
url_filter.tldextractor = TLDExtract(suffix_list_urls=())
language_filter = LanguageFilter(languages=["en"])
language_filter.model = _BundledFT176(["en"])
steps = [WarcReader(str(warc.parent), glob_pattern=warc.name), url_filter, Trafilatura(favour_precision=True),
    language_filter, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
    FineWebQualityFilter(), JsonlWriter(str(out / "filtered"))]
LocalPipelineExecutor(steps, tasks=1, workers=1, logging_dir=str(out / "logs" / "filter")).run()
signatures = [JsonlReader(str(out / "filtered")),
    MinhashDedupSignature(str(out / "signatures"), config=MinhashConfig())]
LocalPipelineExecutor(signatures, tasks=1, workers=1, logging_dir=str(out / "logs" / "signatures")).run()
stats = json.loads((out / "logs" / "filter" / "stats.json").read_text())
docs = stats[0]["stats"]["documents"]["total"]
kept = stats[-1]["stats"]["total"]
print(json.dumps({"docs": docs, "filtered": kept, "kept": kept}))
"""


def run_measured(script: str, args: list[str]) -> dict | None:
    """Run `python -c script args` and measure it: CPU seconds of its whole process tree, wall seconds, peak RSS.

    CPU time comes from `getrusage(RUSAGE_CHILDREN)` around the run, which counts the child and every process
    it waited for (the extraction sandbox included), so it is a per-core cost that load from other processes
    on this shared machine barely moves.
    """
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    log = tempfile.TemporaryFile("w+")  # the run's log, shown if it fails
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
    )
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout.read().strip().splitlines()
    if proc.returncode != 0 or not out:
        log.seek(0)
        print(f"run failed with exit code {proc.returncode}:\n" + "".join(log.readlines()[-20:]), flush=True)
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**json.loads(out[-1]), "cpu": cpu, "wall": wall, "peak_mb": peak / 2**20}


def bench_e2e_warc(sizes: list[int]) -> None:
    """End-to-end curate from WARC, one core: FineForge with each extraction engine, and datatrove's stock
    FineWeb pipeline (up to MinHash signatures) on the same file, in one run."""
    runs = [
        (label, engine, FINEFORGE_RUN, [json.dumps({"engine": engine, "language_precheck": {"enabled": checked}})])
        for engine in ("trafilatura", "resiliparse")
        for label, checked in (("fineforge (full curate)", True), ("fineforge, no pre-check", False))
    ]
    runs.append(("datatrove stock FineWeb", "trafilatura", STOCK_RUN, []))
    print(
        f"\n{'end-to-end from WARC':<26}{'engine':<13}{'docs':>7}{'filtered':>9}{'kept':>7}{'CPU s':>8}"
        f"{'docs/s/core':>12}{'vs stock':>9}{'wall s':>8}{'peak MB':>9}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
            warc = Path(tmp) / "crawl.warc.gz"
            write_bench_warc(warc, n)
            results = []
            for i, (label, engine, script, extra) in enumerate(runs):
                result = run_measured(script, [str(warc), str(Path(tmp) / f"out{i}"), *extra])
                results.append((label, engine, result))
            stock = results[-1][2]
            stock_rate = stock["docs"] / stock["cpu"] if stock else None
            for label, engine, r in results:
                if r is None:
                    print(f"{label:<26}{engine:<13}{n:>7}  failed")
                    continue
                rate = r["docs"] / r["cpu"]
                ratio = f"{rate / stock_rate:8.1f}x" if stock_rate else "       -"
                print(
                    f"{label:<26}{engine:<13}{r['docs']:>7}{r['filtered']:>9}{r['kept']:>7}{r['cpu']:>8.0f}"
                    f"{rate:>12.1f}{ratio}{r['wall']:>8.0f}{r['peak_mb']:>9.0f}",
                    flush=True,
                )
            for engine, (checked, full) in (("trafilatura", results[0:2]), ("resiliparse", results[2:4])):
                print_precheck_parity(engine, checked[2], full[2])


def print_precheck_parity(engine: str, checked: dict | None, full: dict | None) -> None:
    """How many of the documents the full path (no language pre-check) keeps the pre-checked run keeps too."""
    if not (checked and full and full["ids"]):
        return
    kept = set(full["ids"])
    same = len(kept & set(checked["ids"]))
    print(
        f"language pre-check, {engine}: {checked['skipped']} pages skipped; {same} of the {len(kept)} documents "
        f"the full path keeps are kept ({same / max(len(kept), 1):.2%}), {len(set(checked['ids']) - kept)} others; "
        f"CPU {checked['cpu']:.0f} s against {full['cpu']:.0f} s ({full['cpu'] / checked['cpu']:.2f}x)",
        flush=True,
    )


def replicated_records(n_docs: int, seed: int = 0, start: int = 0) -> Iterable[dict]:
    """Documents `start` to `n_docs - 1` of the web texts cycled, each copy edited (see write_replicated_corpus)."""
    rng = random.Random(seed)
    base = web_records()
    vocab = [w for r in base[:50] for w in r["text"].split()]
    for i in range(start, n_docs):
        rec = base[i % len(base)]
        copy = i // len(base)
        text = rec["text"]
        if copy:
            words = text.split(" ")
            for _ in range(max(1, len(words) // 20)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            sentences = " ".join(words).split(". ")
            if len(sentences) > 2:
                del sentences[rng.randrange(len(sentences))]
            text = ". ".join(sentences)
        yield {"id": f"{rec['id']}-{copy}", "url": f"{rec['url']}#{copy}", "text": text}


def write_replicated_corpus(folder: Path, n_docs: int, files: int = 8, seed: int = 0) -> None:
    """Write `n_docs` JSONL documents in `files` gzip files: the web texts cycled, each copy edited.

    Copy k of a text swaps ~5% of its words for words of other texts and drops one sentence at random, so the
    corpus keeps web-like statistics while exact dedup sees distinct documents (MinHash still clusters some).
    Several files let several tasks share the input (one task reads whole files).
    """
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-n_docs // files)
    records = iter(replicated_records(n_docs, seed))
    for start in range(0, n_docs, per_file):
        with gzip.open(folder / f"part-{start // per_file:03d}.jsonl.gz", "wt") as f:
            for _ in range(start, min(start + per_file, n_docs)):
                f.write(json.dumps(next(records)) + "\n")


@dataclass
class E2eRun:
    """One end-to-end curate run: its size, where it ran, and what it cost."""

    docs: int
    workers: int
    executor: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    docs_out: int
    filter_share: float


def filter_share(out: Path) -> float:
    """Share of a finished run's time spent in the filter pass (the rest is dedup and publishing), from the
    modification times of its work files: job.json (start), the filter pass's last completion marker, summary.json.
    """
    work = out / ".work"
    start = (work / "job.json").stat().st_mtime
    step = next(work.glob("filter-*"))  # the filter step's folder (pipelines.curate.work)
    filtered = max(p.stat().st_mtime for p in (step / "logs" / "filter" / "completions").iterdir())
    return (filtered - start) / ((out / "summary.json").stat().st_mtime - start)


def _group(pgid: int) -> list[Any]:
    """The live processes of process group `pgid` (a Ray head) and all their descendants (the workers its raylet
    started, which may sit in process groups of their own)."""
    import psutil

    found: dict[int, Any] = {}
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) == pgid:
                found[p.pid] = p
                found.update({child.pid: child for child in p.children(recursive=True)})
    return list(found.values())


class TreeSampler:
    """Samples a process tree (and a Ray head's process group): peak resident memory and CPU seconds.

    CPU time is the last value seen for every process, sampled every 0.2 s, so it also covers workers that exit
    before the run ends (pool workers are not children of the run's root after their forkserver dies, so
    `RUSAGE_CHILDREN` misses them); a process of the head that existed before the run counts from its start value.
    """

    def __init__(self, root: Any, extra_pgid: int | None):
        self.root, self.extra_pgid = root, extra_pgid
        self.peak = 0
        self.cpu: dict[tuple[int, float], float] = {}
        self.before = {key: cpu for key, cpu, _ in self._sample()}

    def _sample(self) -> list[tuple[tuple[int, float], float, int]]:
        import psutil

        procs = {self.root.pid: self.root}
        with contextlib.suppress(psutil.Error):
            procs.update({p.pid: p for p in self.root.children(recursive=True)})
        if self.extra_pgid is not None:
            procs.update({p.pid: p for p in _group(self.extra_pgid)})
        found = []
        for p in procs.values():
            with contextlib.suppress(psutil.Error):
                with p.oneshot():
                    times = p.cpu_times()
                    found.append(((p.pid, p.create_time()), times.user + times.system, p.memory_info().rss))
        return found

    def sample(self) -> None:
        """Take one sample."""
        found = self._sample()
        self.peak = max(self.peak, sum(rss for _, _, rss in found))
        self.cpu.update({key: cpu for key, cpu, _ in found})

    def cpu_seconds(self) -> float:
        """CPU seconds used by the tree since the sampler was made."""
        return sum(cpu - self.before.get(key, 0.0) for key, cpu in self.cpu.items())


def run_e2e(corpus: Path, out: Path, workers: int, ray: Any = None) -> E2eRun:
    """Run `fineforge curate` on `corpus` in a subprocess, sampling the process tree's RSS every 0.2 s.

    Args:
        corpus: folder of JSONL files.
        out: output folder (must not exist).
        workers: `--workers`.
        ray: a `tests.ray_head.RayHead` to run on (`--executor ray --ray-address`), or None for local.

    Returns:
        The measurement.
    """
    import psutil

    cmd = [sys.executable, "-m", "cli", "curate", "--input", str(corpus), "--output", str(out),
           "--workers", str(workers)]  # fmt: skip
    env = dict(os.environ)
    extra_pgid = None
    if ray is not None:
        cmd += ["--executor", "ray", "--ray-address", ray.address]
        env.update(ray.env)
        extra_pgid = ray.pgid
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = TreeSampler(psutil.Process(proc.pid), extra_pgid)
    while proc.poll() is None:
        sampler.sample()
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not (out / "summary.json").exists():
        raise RuntimeError(f"curate of {corpus} failed with exit code {proc.returncode}")
    summary = json.loads((out / "summary.json").read_text())
    executor = "ray" if ray else "local"
    share = filter_share(out)
    peak_mb, cpu = sampler.peak / 2**20, sampler.cpu_seconds()
    return E2eRun(summary["docs_in"], workers, executor, wall, cpu, peak_mb, summary["docs_out"], share)


def growth_per_decade(small: E2eRun, large: E2eRun) -> tuple[float, float]:
    """(time, memory) growth factors per 10x documents between two runs of different sizes."""
    decades = math.log10(large.docs / small.docs)
    return (large.wall_s / small.wall_s) ** (1 / decades), (large.peak_mb / small.peak_mb) ** (1 / decades)


def bench_e2e(sizes: list[int], workers: list[int], ray_workers: int | None, files: int) -> list[E2eRun]:
    """End-to-end curate on replicated corpora of each size: wall time, docs/s and peak RSS of the process tree;
    growth per 10x documents (1 worker); speed-up of more workers, locally and on a local Ray cluster."""
    runs: list[E2eRun] = []
    print(f"\n{'end-to-end curate':<20}{'docs':>9}{'kept':>9}{'workers':>8}{'wall s':>9}{'CPU s':>8}{'docs/s':>8}"
          f"{'peak MB':>9}{'filter %':>9}")  # fmt: skip

    def show(run: E2eRun) -> None:
        runs.append(run)
        label, rate = f"curate ({run.executor})", run.docs / run.wall_s
        print(f"{label:<20}{run.docs:>9}{run.docs_out:>9}{run.workers:>8}{run.wall_s:>9.0f}{run.cpu_s:>8.0f}"
              f"{rate:>8.0f}{run.peak_mb:>9.0f}{100 * run.filter_share:>9.0f}", flush=True)  # fmt: skip

    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
            corpus = Path(tmp) / "corpus"
            write_replicated_corpus(corpus, n, files)
            for w in workers:
                show(run_e2e(corpus, Path(tmp) / f"out-local-{w}", w))
            if ray_workers:
                from tests.ray_head import local_ray_head

                with local_ray_head(cpus=ray_workers) as head:
                    show(run_e2e(corpus, Path(tmp) / "out-ray", ray_workers, head))
    single = sorted((r for r in runs if r.workers == 1 and r.executor == "local"), key=lambda r: r.docs)
    for small, large in zip(single, single[1:], strict=False):
        t, m = growth_per_decade(small, large)
        print(f"growth per 10x documents, {small.docs} -> {large.docs}: time {t:.2f}x, peak memory {m:.2f}x "
              "(targets: time ~10x, memory <= 1.5x)")  # fmt: skip
    for run in runs:
        one = next((r for r in single if r.docs == run.docs), None)
        if one and run is not one:
            print(f"speed-up of {run.workers} workers ({run.executor}) over 1 on {run.docs} docs: "
                  f"{one.wall_s / run.wall_s:.2f}x wall; CPU seconds {one.cpu_s:.0f} -> {run.cpu_s:.0f} "
                  f"({run.cpu_s / one.cpu_s:.2f}x the work)")  # fmt: skip
    return runs


def main() -> None:
    """Parse arguments, run the per-stage comparison and the optional end-to-end runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="web texts to use (default: all 580)")
    parser.add_argument("--pages", type=int, default=120, help="HTML pages for the extraction rate (0: skip)")
    parser.add_argument("--e2e", type=int, nargs="*", default=[], help="document counts for end-to-end runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="local worker counts of the e2e runs")
    parser.add_argument("--ray", type=int, default=None, metavar="N", help="also run on a local Ray cluster, N CPUs")
    parser.add_argument("--files", type=int, default=8, help="input files per e2e corpus")
    parser.add_argument("--e2e-warc", type=int, nargs="*", default=[], help="WARC responses for end-to-end runs")
    parser.add_argument("--no-stages", action="store_true", help="only the end-to-end runs")
    args = parser.parse_args()
    if not args.no_stages:
        bench_stages(web_records(args.docs), args.pages)
    if args.e2e:
        bench_e2e(args.e2e, args.workers, args.ray, args.files)
    if args.e2e_warc:
        bench_e2e_warc(args.e2e_warc)


if __name__ == "__main__":
    main()
