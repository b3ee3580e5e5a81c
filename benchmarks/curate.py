"""Curate throughput per core, stage by stage, side by side with datatrove's stock filters on spaCy; peak memory.

Per stage, in one process, on the shared corpora (web-text.jsonl.gz; trafilatura-eval HTML for extraction):

- extraction (trafilatura with datatrove's options), URL filter, language filter: the same datatrove steps on
  both sides (stock URLFilter would fetch the public suffix list and the stock LanguageFilter would download
  lid.176.bin; ours use the bundled copies), so one number;
- each heuristic filter alone, and the four together as a pipeline (Gopher repetition -> Gopher quality ->
  C4 -> FineWeb, through `step.run`, stats included): FineForge's filters with the fast spaCy-compatible
  tokenizer against datatrove's stock classes with `spacy.blank("en")`, and the ratio. "cold" is a first pass
  with an empty chunk memo (what a 580-document corpus sees), "warm" a second pass (a long run's steady state);
- MinHash signatures (5-grams, 14 x 8): `pipelines.curate.dedup` against datatrove's MinhashDedupSignature on spaCy.

Rates are documents per CPU-second of this single process (`time.process_time`), i.e. per core: load from other
processes on this shared machine slows the wall clock of both sides but barely moves CPU time. `--e2e N ...`
adds end-to-end curate runs (one worker) on N documents replicated from the corpora with edits, written to a
temporary folder, with the wall time and the peak resident memory of the run's process tree.
Run: `.venv/bin/python -m benchmarks.curate [--docs 580] [--pages 120] [--e2e 10000 100000]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
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
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from pipelines.curate.filters import FilterConfig, build_filter_steps
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


def row(stage: str, ours: float, stock: float | None = None, note: str = "") -> None:
    """Print one table row (docs/s per core)."""
    ratio = f"{ours / stock:7.1f}x" if stock else "       -"
    stock_s = f"{stock:10.0f}" if stock else "    (same)"
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


def write_replicated_corpus(path: Path, n_docs: int, seed: int = 0) -> None:
    """Write `n_docs` JSONL documents: the web texts cycled, each copy edited so that copies are not identical.

    Copy k of a text swaps ~5% of its words for words of other texts and drops one sentence at random, so the
    corpus keeps web-like statistics while exact dedup sees distinct documents (MinHash still clusters some).
    """
    rng = random.Random(seed)
    base = web_records()
    vocab = [w for r in base[:50] for w in r["text"].split()]
    with gzip.open(path, "wt") as f:
        for i in range(n_docs):
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
            f.write(json.dumps({"id": f"{rec['id']}-{copy}", "url": f"{rec['url']}#{copy}", "text": text}) + "\n")


def bench_e2e(sizes: list[int]) -> None:
    """End-to-end curate (one worker) on replicated corpora: wall time, docs/s and peak RSS of the process tree."""
    import psutil

    root = Path(__file__).resolve().parents[1]
    script = (
        "import sys, json; from pathlib import Path; from pipelines.curate.config import CurateConfig; "
        "from pipelines.curate import run_curate; "
        "s = run_curate(CurateConfig(), [sys.argv[1]], Path(sys.argv[2]), workers=1); "
        "print(json.dumps({k: s[k] for k in ('docs_in', 'docs_out', 'duration_s', 'docs_per_s')}))"
    )
    print(f"\n{'end-to-end curate':<22}{'docs':>8}{'kept':>8}{'wall s':>9}{'docs/s':>9}{'peak RSS MB':>13}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
            corpus = Path(tmp) / "corpus.jsonl.gz"
            write_replicated_corpus(corpus, n)
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", script, str(corpus), str(Path(tmp) / "out")],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
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
            out = proc.stdout.read().strip().splitlines()
            if proc.returncode != 0 or not out:
                print(f"{'curate':<22}{n:>8}  failed with exit code {proc.returncode}")
                continue
            summary = json.loads(out[-1])
            print(
                f"{'curate (1 worker)':<22}{summary['docs_in']:>8}{summary['docs_out']:>8}{wall:>9.0f}"
                f"{summary['docs_in'] / wall:>9.0f}{peak / 2**20:>13.0f}",
                flush=True,
            )


def main() -> None:
    """Parse arguments, run the per-stage comparison and the optional end-to-end runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="web texts to use (default: all 580)")
    parser.add_argument("--pages", type=int, default=120, help="HTML pages for the extraction rate (0: skip)")
    parser.add_argument("--e2e", type=int, nargs="*", default=[], help="document counts for end-to-end runs")
    parser.add_argument("--no-stages", action="store_true", help="only the end-to-end runs")
    args = parser.parse_args()
    if not args.no_stages:
        bench_stages(web_records(args.docs), args.pages)
    if args.e2e:
        bench_e2e(args.e2e)


if __name__ == "__main__":
    main()
