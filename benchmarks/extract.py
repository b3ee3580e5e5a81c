"""HTML extraction engines side by side: pages/s per core and accuracy against human-marked main text.

Data: the 990 pages of `../shared/corpora/trafilatura-eval` that `evaldata.json` annotates. For each page a person
marked snippets that belong to the main text (`with`) and boilerplate that must not be extracted (`without`).
Pages are decoded once, as curate's reader decodes them (`pipelines.curate.read.decode_html`), then every engine
extracts every page in this process, one after the other.

Accuracy, two ways, both micro-averaged over all pages:
- bag of words: the words (lower-cased `\\w+`) of a page's `with` snippets are the expected words, the words of
  its `without` snippets that are not also expected are boilerplate words. Multiset intersections with the words
  of the extracted text give true positives (expected words found), false negatives (expected words missing)
  and false positives (boilerplate words found); precision = TP / (TP + FP), recall = TP / (TP + FN).
- snippets, trafilatura's own evaluation: a `with` snippet found verbatim (white space collapsed) is a true
  positive, one missing a false negative, a `without` snippet found a false positive.
Note that trafilatura's authors built this set to evaluate trafilatura, which may favour it.

Speed: pages per CPU-second of this process (`time.process_time`, i.e. per core; other processes' load on this
shared machine moves the wall clock, not CPU time), engine calls only, after a 5-page warm-up.

Variants: trafilatura with FineWeb's options (the default engine), then resiliparse from DCLM's call
(`main_content=True`, the library's other defaults) through each option change that `extract.resiliparse`
offers, ending at FineForge's defaults, plus alternatives that were tried and not kept.
Run: `.venv/bin/python -m benchmarks.extract [--pages N]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.curate.extract import ResiliparseEngine, ResiliparseOptions, TrafilaturaEngine
from pipelines.curate.read import decode_html
from tests.conftest import corpora_path

_WORD = re.compile(r"\w+")
WARMUP = 5


@dataclass
class Page:
    """One annotated page."""

    url: str
    html: str
    expected: Counter = field(repr=False)
    boilerplate: Counter = field(repr=False)
    with_snippets: list[str] = field(repr=False)
    without_snippets: list[str] = field(repr=False)


def bag(text: str | None) -> Counter:
    """Lower-cased word counts."""
    return Counter(w.lower() for w in _WORD.findall(text or ""))


def load_pages(limit: int | None = None) -> list[Page]:
    """The annotated trafilatura-eval pages, decoded (every k-th page when `limit` is below the total)."""
    root = corpora_path() / "trafilatura-eval"
    evaldata = json.loads((root / "evaldata.json").read_text())
    files = {p.name.removesuffix(".gz"): p for p in (root / "html").rglob("*.html.gz")}
    entries = sorted(evaldata.items())
    if limit and limit < len(entries):
        entries = entries[:: len(entries) // limit][:limit]
    pages = []
    for url, entry in entries:
        html = decode_html(gzip.decompress(files[entry["file"]].read_bytes()))
        if html is None:
            continue
        expected = sum((bag(s) for s in entry["with"]), Counter())
        boilerplate = sum((bag(s) for s in entry["without"]), Counter())
        boilerplate = Counter({w: n for w, n in boilerplate.items() if w not in expected})
        pages.append(Page(url, html, expected, boilerplate, entry["with"], entry["without"]))
    return pages


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(pages: list[Page], texts: list[str | None]) -> dict[str, float]:
    """Bag-of-words and snippet precision, recall and F1 of extracted texts against the annotations."""
    bow = [0, 0, 0]  # tp, fp, fn
    snip = [0, 0, 0]
    for page, text in zip(pages, texts, strict=True):
        words = bag(text)
        tp = sum((page.expected & words).values())
        bow[0] += tp
        bow[1] += sum((page.boilerplate & words).values())
        bow[2] += sum(page.expected.values()) - tp
        flat = " ".join((text or "").split())
        for snippet in page.with_snippets:
            snip[0 if " ".join(snippet.split()) in flat else 2] += 1
        snip[1] += sum(" ".join(s.split()) in flat for s in page.without_snippets)
    (bp, br, bf), (sp, sr, sf) = _prf(*bow), _prf(*snip)
    return {"bow_p": bp, "bow_r": br, "bow_f1": bf, "snip_p": sp, "snip_r": sr, "snip_f1": sf}


def run_engine(pages: list[Page], extract: Callable[[str], str | None]) -> tuple[float, list[str | None]]:
    """Pages per CPU-second and the extracted texts."""
    for page in pages[:WARMUP]:
        extract(page.html)
    start = time.process_time()
    texts = [extract(page.html) for page in pages]
    return len(pages) / max(time.process_time() - start, 1e-9), texts


def drop_short_lines(engine: ResiliparseEngine, min_words: int = 3) -> Callable[[str], str]:
    """An alternative post-cleaning (not kept): drop lines under `min_words` words, as C4's line filter does."""

    def extract(html: str) -> str:
        return "\n".join(line for line in engine(html).splitlines() if len(line.split()) >= min_words)

    return extract


def variants() -> list[tuple[str, Callable[[str], str | None]]]:
    """(label, extract function) for every engine setting compared."""
    dclm = ResiliparseOptions(comments=True, alt_texts=True, list_bullets=True, trim_tail_min_words=0)
    step1 = dclm.model_copy(update={"comments": False})
    step2 = step1.model_copy(update={"alt_texts": False, "list_bullets": False})
    default = ResiliparseOptions()

    def alt(**update: object) -> ResiliparseEngine:
        return ResiliparseEngine(default.model_copy(update=update))

    skip = ["nav", "footer", "aside", "header", "form", "[class*=share]", "[class*=newsletter]", "[class*=related]"]
    return [
        ("trafilatura (FineWeb: favour_precision)", TrafilaturaEngine()),
        ("resiliparse main_content (DCLM)", ResiliparseEngine(dclm)),
        ("  + comments off", ResiliparseEngine(step1)),
        ("  + alt_texts, list_bullets off", ResiliparseEngine(step2)),
        ("  + trim_tail_min_words 5 (default)", ResiliparseEngine(default)),
        ("  alt: trim_tail_min_words 8", alt(trim_tail_min_words=8)),
        ("  alt: post_meta off", alt(post_meta=False)),
        ("  alt: skip_elements nav/footer/share/...", alt(skip_elements=skip)),
        ("  alt: + drop lines < 3 words", drop_short_lines(ResiliparseEngine(default))),
    ]


def main() -> None:
    """Parse arguments, extract every page with every variant, print one row per variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=None, help="use N pages, evenly spread (default: all 990)")
    args = parser.parse_args()
    pages = load_pages(args.pages)
    print(f"{len(pages)} annotated trafilatura-eval pages; rates are pages per CPU-second (one core)\n")
    head = f"{'engine':<44}{'pages/s':>9}{'speed':>8}{'bow P':>8}{'bow R':>7}{'bow F1':>8}{'snip P':>8}{'snip R':>8}"
    print(head + f"{'snip F1':>8}{'empty':>7}")
    base = None
    for label, extract in variants():
        rate, texts = run_engine(pages, extract)
        base = base or rate
        m = score(pages, texts)
        empty = sum(1 for t in texts if not t)
        print(
            f"{label:<44}{rate:>9.1f}{rate / base:>7.1f}x{m['bow_p']:>8.3f}{m['bow_r']:>7.3f}{m['bow_f1']:>8.3f}"
            f"{m['snip_p']:>8.3f}{m['snip_r']:>8.3f}{m['snip_f1']:>8.3f}{empty:>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
