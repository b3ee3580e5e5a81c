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
  PIIFormatter, which FineWeb runs).

Rates are documents per CPU-second of this single process (`time.process_time`), i.e. per core: load from other
processes on this shared machine slows the wall clock of both sides but barely moves CPU time.

`--e2e N ...` adds end-to-end runs from WARC, one core each, on a WARC of N HTML responses cycled from the 1,333
real pages of the corpora (htmldate's WARC and trafilatura-eval), in the same run: FineForge's whole curate
(read, extract, filters, exact and MinHash dedup, PII, Parquet) with trafilatura and with resiliparse, and
datatrove's stock FineWeb pipeline (WarcReader, Trafilatura, the filters on spaCy, MinHash signatures only, so
it does less work than FineForge's run). Each prints documents per CPU-second of its whole process tree, the
ratio to stock, wall time and peak resident memory.
Run: `.venv/bin/python -m benchmarks.curate [--docs 580] [--pages 120] [--e2e 1425] [--no-stages]`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

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
from pipelines.curate import CurateConfig, run_curate
config = CurateConfig.model_validate({"extract": {"engine": sys.argv[3]}})
s = run_curate(config, [sys.argv[1]], Path(sys.argv[2]), workers=1)
stages = {stage["name"]: stage for stage in s["stages"]}
print(json.dumps({"docs": s["docs_in"], "filtered": stages["decontaminate"]["docs_out"], "kept": s["docs_out"]}))
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
from pipelines.curate.filters import _BundledFT176
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

    root = Path(__file__).resolve().parents[1]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    log = tempfile.TemporaryFile("w+")  # the run's log, shown if it fails
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=root, stdout=subprocess.PIPE, stderr=log, text=True
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


def bench_e2e(sizes: list[int]) -> None:
    """End-to-end curate from WARC, one core: FineForge with each extraction engine, and datatrove's stock
    FineWeb pipeline (up to MinHash signatures) on the same file, in one run."""
    runs = [
        ("fineforge (full curate)", "trafilatura", FINEFORGE_RUN, ["trafilatura"]),
        ("fineforge (full curate)", "resiliparse", FINEFORGE_RUN, ["resiliparse"]),
        ("datatrove stock FineWeb", "trafilatura", STOCK_RUN, []),
    ]
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


def main() -> None:
    """Parse arguments, run the per-stage comparison and the optional end-to-end runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="web texts to use (default: all 580)")
    parser.add_argument("--pages", type=int, default=120, help="HTML pages for the extraction rate (0: skip)")
    parser.add_argument("--e2e", type=int, nargs="*", default=[], help="WARC responses for end-to-end runs")
    parser.add_argument("--no-stages", action="store_true", help="only the end-to-end runs")
    args = parser.parse_args()
    if not args.no_stages:
        bench_stages(web_records(args.docs), args.pages)
    if args.e2e:
        bench_e2e(args.e2e)


if __name__ == "__main__":
    main()
