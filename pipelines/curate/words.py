"""Word and sentence tokenizers for the quality filters: a fast spaCy-compatible one (default) and spaCy itself.

The FineWeb filters (Gopher repetition/quality, C4, FineWeb) split text into words and sentences with
datatrove's English tokenizer, `spacy.blank("en")` plus the rule-based sentencizer. Under datatrove that runs
at a few dozen documents per second per core (its `memory_zone` disables spaCy's chunk cache), and a plain
regex is 5x faster but agrees with spaCy's keep/drop decision on only 96.6% of real web documents.

`SpacyCompatTokenizer` re-implements the *algorithm* of spaCy's rule-based tokenizer rather than a regex:
  1. split on whitespace runs (a whitespace run other than a single " " is itself a token, later stripped);
  2. each non-whitespace chunk is peeled from both ends by prefix/suffix rules (punctuation, quotes,
     currency, units after digits, a final period after a lowercase letter or two capitals, "'s"), stopping
     at special cases (contractions, abbreviations, emoticons: `pipelines.curate.words_rules`);
  3. the core is kept whole if it is a URL, otherwise split at infixes (hyphens and slashes between letters,
     periods between a lowercase and an uppercase letter, commas between letters, ellipses, symbols).
A chunk's tokens do not depend on its context, so they are memoised per chunk string (a dict of at most 200k
entries, cleared when full): in the 580 shared web texts 82% of the 277k chunks repeat an earlier one, a new
chunk costs a few microseconds and a known one a dict lookup. Common shapes ("word", "word,", "(word") skip
the rule loop.
Sentences follow spaCy's sentencizer: a sentence ends after a token that is a sentence terminal character
(Unicode STerm) once a token follows that is neither such a character nor punctuation.

Agreement with spaCy 3.8 (tests/test_words.py): tokens of 186,046 of the 186,048 distinct chunks of the
shared corpora (web texts and trafilatura-extracted pages); the keep/drop decision and the drop reason of each
of the four filters and of the chain on 580/580 web texts and 1029/1029 extracted pages (the issue asks
>= 99.5%). Rules are data in `pipelines.curate.words_rules`; spaCy is needed only by the tests.

Both classes implement datatrove's `WordTokenizer` interface, so they plug into any datatrove step as
`language=`; `get_word_tokenizer(name)` returns a shared instance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Literal

import regex
from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer

from pipelines.curate.words_rules import (
    CURRENCY,
    PREFIX_CHARS,
    PUNCT,
    QUOTES,
    SUFFIX_CHARS,
    UNITS,
    special_cases,
)

_MAX_CACHE = 200_000  # chunk memo entries (~30 MB worst case); cleared when full
_DIGITS = frozenset("0123456789")
_LOWER_CLASS = r"\p{Ll}\p{Lo}\p{Lm}"
_UPPER_CLASS = r"\p{Lu}\p{Lt}\p{Lo}\p{Lm}"
_ALPHA_CLASS = r"\p{L}"
_Q = regex.escape(QUOTES)

# Infix rules, in spaCy's priority order (alternation order matters for overlapping matches).
_INFIX = regex.compile(
    "|".join(
        [
            r"\.\.+",
            "…",
            r"\p{So}",
            r"(?<=[0-9])[+\-*^](?=[0-9-])",
            rf"(?<=[\p{{Ll}}{_Q}])\.(?=[\p{{Lu}}\p{{Lt}}{_Q}])",
            rf"(?<=[{_ALPHA_CLASS}]),(?=[{_ALPHA_CLASS}])",
            rf"(?<=[{_ALPHA_CLASS}0-9])(?:-|–|—|--|---|——|~)(?=[{_ALPHA_CLASS}])",
            rf"(?<=[{_ALPHA_CLASS}0-9])[:<>=/](?=[{_ALPHA_CLASS}])",
        ]
    )
)
# URLs stay one token (checked after affixes are peeled). Host labels, a lowercase TLD, optional port/path.
_URL = regex.compile(
    r"^(?:[\w+.\-]{2,}://)?(?:\S+(?::\S*)?@)?"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_\-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    r"[a-z\u00df-\u00f6\u00f8-\u00ff]{2,63}(?::\d{2,5})?(?:[/?#]\S*)?$"
)
# A period at the end splits off after these (lowercase letters, digits, some symbols, punctuation, quotes).
_PERIOD_AFTER = regex.compile(rf"[{_LOWER_CLASS}0-9%²\-+{_Q}{regex.escape(PUNCT)}|(?:]")
_UPPER = regex.compile(rf"[{_UPPER_CLASS}]")
_STERM = regex.compile(r"^\p{STerm}$")
_STERM_ANY = regex.compile(r"\p{STerm}")
_UNIT_SET = frozenset(UNITS) | frozenset(CURRENCY)
_MAX_UNIT = max(map(len, _UNIT_SET))
_WS_RUN = re.compile(r"\s+|\S+")


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch) == "So"


def _find_prefix(s: str) -> int:
    """Length of the prefix to split off `s` (0 if none)."""
    c = s[0]
    if c == ".":
        n = len(s) - len(s.lstrip("."))
        return n if n >= 2 else 0
    if c == "+":
        return 0 if len(s) > 1 and s[1] in _DIGITS else 1
    if s.startswith("US$"):
        return 3
    if s.startswith(("C$", "A$")):
        return 2
    if c in PREFIX_CHARS or _is_symbol(c):
        return 1
    return 0


def _find_suffix(s: str) -> int:
    """Length of the suffix to split off `s` (0 if none): the leftmost position where a suffix rule matches."""
    n = len(s)
    if not n:
        return 0
    best = n
    if s.endswith(".."):
        best = len(s.rstrip("."))
    if n >= 2 and s[-2:] in ("'s", "'S", "’s", "’S", "……"):
        best = min(best, n - 2)
    for k in range(max(1, n - _MAX_UNIT), best):  # a unit or currency after a digit: "5km", "10%", "3$"
        if s[k - 1] in _DIGITS and s[k:] in _UNIT_SET:
            best = k
            break
    if best == n:
        c = s[-1]
        prev = s[-2] if n >= 2 else ""
        if c in SUFFIX_CHARS or _is_symbol(c):
            best = n - 1
        elif c == "+" and prev in _DIGITS:
            best = n - 1
        elif (
            c == "."
            and prev
            and (
                _PERIOD_AFTER.match(prev)
                or (n >= 3 and _UPPER.match(prev) and _UPPER.match(s[-3]))
                or (n >= 3 and prev in "FfCcKk" and s[-3] == "°")
            )
        ):
            best = n - 1
    return n - best


class SpacyCompatTokenizer(WordTokenizer):
    """spaCy's English rule-based tokenizer and sentencizer, re-implemented in Python with a chunk memo.

    Args:
        language: the language code reported to datatrove (rules are English).
    """

    def __init__(self, language: str = "en"):
        super().__init__(language)
        self._specials = special_cases()
        self._patterns: dict[str, list] = {}
        self._patterns = self._build_patterns()
        self._cache: dict[str, tuple[str, ...]] = {}
        self._sent_info: dict[str, tuple[tuple[int, bool], tuple[int, bool]]] = {}

    def __reduce__(self):
        return (type(self), (self.language,))

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """Tokens of one whitespace-free chunk (memoised).

        Args:
            chunk: a string without whitespace.

        Returns:
            The tokens, whose concatenation is `chunk`.
        """
        toks = self._cache.get(chunk)
        if toks is None:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
                self._sent_info.clear()
            toks = self._cache[chunk] = self._tokenize_chunk(chunk)
        return toks

    def _tokenize_chunk(self, s: str) -> tuple[str, ...]:
        specials = self._specials
        if s in specials:
            return specials[s]
        if s.isalpha() or (s.isascii() and s.isdigit()):
            return (s,)  # no affix, infix or URL rule can apply to letters only or ASCII digits only
        fast = self._word_with_punct(s)
        if fast is not None:
            return fast
        prefixes: list[str] = []
        suffixes: list[str] = []
        core = s
        last = -1
        while core and len(core) != last:
            if core in specials:
                break
            last = len(core)
            pre = _find_prefix(core)
            if pre and core[pre:] in specials:
                prefixes.append(core[:pre])
                core = core[pre:]
                break
            suf = _find_suffix(core[pre:])
            if suf and core[:-suf] in specials:
                suffixes.append(core[-suf:])
                core = core[:-suf]
                break
            if pre and suf and pre + suf <= len(core):
                prefixes.append(core[:pre])
                suffixes.append(core[-suf:])
                core = core[pre:-suf]
            elif pre:
                prefixes.append(core[:pre])
                core = core[pre:]
            elif suf:
                suffixes.append(core[-suf:])
                core = core[:-suf]
        out = prefixes
        if core:
            if core in specials:
                out.extend(specials[core])
            elif _URL.match(core):
                out.append(core)
            else:
                out.extend(self._split_infixes(core))
        out.extend(reversed(suffixes))
        return self._merge_specials(tuple(out))

    def _word_with_punct(self, s: str) -> tuple[str, ...] | None:
        """Shortcut for the commonest shapes, a word plus one split-off character ("word,", "(word", "end."),
        giving what the general loop gives; None when the chunk has another shape."""
        first, last = s[0], s[-1]
        if s[:-1].isalpha() and (last in SUFFIX_CHARS or (last == "." and _find_suffix(s) == 1)):
            core = s[:-1]
            toks = (*self._specials.get(core, (core,)), last)
        elif first in PREFIX_CHARS and s[1:].isalpha():
            core = s[1:]
            toks = (first, *self._specials.get(core, (core,)))
        else:
            return None
        return self._merge_specials(toks)  # as the general loop ends

    @staticmethod
    def _split_infixes(core: str) -> list[str]:
        pieces = []
        start = 0
        for m in _INFIX.finditer(core):
            a, b = m.span()
            if a == 0:
                continue
            if a != start:
                pieces.append(core[start:a])
            if a != b:
                pieces.append(core[a:b])
            start = b
        if start < len(core):
            pieces.append(core[start:])
        return pieces

    def _merge_specials(self, toks: tuple[str, ...]) -> tuple[str, ...]:
        """Re-tokenize token runs that spell a special case as affix rules would split it ("m" "." -> "m."),
        like spaCy's special-case matcher (longest match first, left to right)."""
        if len(toks) < 2 or self._patterns.keys().isdisjoint(toks):
            return toks
        out: list[str] = []
        i = 0
        n = len(toks)
        while i < n:
            for pattern, special in self._patterns.get(toks[i], ()):
                if toks[i : i + len(pattern)] == pattern:
                    out.extend(special)
                    i += len(pattern)
                    break
            else:
                out.append(toks[i])
                i += 1
        return tuple(out)

    def _build_patterns(self) -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]:
        """Map first token -> [(affix tokenization of a special case, its special tokens)], longest first."""
        specials, self._specials = self._specials, {}
        try:
            patterns: dict[str, list] = {}
            for key, special in specials.items():
                plain = self._tokenize_chunk(key)
                if len(plain) > 1:
                    patterns.setdefault(plain[0], []).append((plain, special))
        finally:
            self._specials = specials
        for entries in patterns.values():
            entries.sort(key=lambda e: -len(e[0]))
        return patterns

    def word_tokenize(self, text: str) -> list[str]:
        """Split `text` into words (whitespace dropped), as datatrove's spaCy tokenizer does.

        Args:
            text: any text.

        Returns:
            The list of tokens.
        """
        words: list[str] = []
        extend = words.extend
        get = self._cache.get
        for chunk in text.split():
            toks = get(chunk)
            if toks is None:
                toks = self.chunk_tokens(chunk)
            extend(toks)
        return words

    def _tokens_with_offsets(self, text: str) -> Iterator[tuple[int, int, bool]]:
        """Yield (start, end, is_whitespace) per spaCy token, including whitespace tokens."""
        prev_word = False
        for m in _WS_RUN.finditer(text):
            start, end = m.span()
            piece = m.group()
            if piece[0].isspace():
                if prev_word and piece[0] == " ":
                    start += 1  # one space after a word is that word's trailing space, not a token
                if start < end:
                    yield start, end, True
                prev_word = False
            else:
                pos = start
                for tok in self.chunk_tokens(piece):
                    yield pos, pos + len(tok), False
                    pos += len(tok)
                prev_word = True

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans (start, end) following spaCy's sentencizer.

        Args:
            text: any text.

        Returns:
            Character spans, one per sentence; each ends at its last token.
        """
        spans: list[tuple[int, int]] = []
        sent_start = None
        last_end = 0
        seen_terminal = False
        for start, end, is_ws in self._tokens_with_offsets(text):
            tok = text[start:end]
            terminal = not is_ws and _is_terminal(tok)
            if seen_terminal and not terminal and (is_ws or not _is_punct(tok)):
                spans.append((sent_start, last_end))
                sent_start = start
                seen_terminal = False
            elif terminal:
                seen_terminal = True
            if sent_start is None:
                sent_start = start
            last_end = end
        if sent_start is not None:
            spans.append((sent_start, last_end))
        return spans

    def count_sentences(self, text: str) -> int:
        """Number of pieces datatrove's `split_into_sentences` returns for `text` (at least 1).

        Same count as `span_tokenize`, computed per whitespace run and per chunk with memoised chunk summaries.

        Args:
            text: any text.

        Returns:
            The sentence count.
        """
        if _STERM_ANY.search(text) is None:
            return 1
        boundaries = 0
        seen = False
        infos = self._sent_info
        for piece in _WS_RUN.findall(text):
            if piece[0].isspace():
                # a whitespace run is a token unless it is the single space after a word (start: seen is False)
                if seen and piece != " ":
                    boundaries += 1
                    seen = False
                continue
            info = infos.get(piece)
            if info is None:
                info = infos[piece] = self._chunk_sent_info(piece)
            added, seen = info[seen]
            boundaries += added
        return boundaries + 1

    def _chunk_sent_info(self, chunk: str) -> tuple[tuple[int, bool], tuple[int, bool]]:
        """Sentencizer effect of a chunk: (boundaries, seen_terminal after) when entered without/with a terminal."""
        toks = self.chunk_tokens(chunk)
        result = []
        for seen in (False, True):
            added = 0
            for tok in toks:
                terminal = _is_terminal(tok)
                if seen and not terminal and not _is_punct(tok):
                    added += 1
                    seen = False
                elif terminal:
                    seen = True
            result.append((added, seen))
        return result[0], result[1]

    def sent_tokenize(self, text: str) -> list[str]:
        """Split `text` into stripped, non-empty sentences.

        Args:
            text: any text.

        Returns:
            The sentences.
        """
        return [s for s in (text[a:b].strip() for a, b in self.span_tokenize(text)) if s]


@lru_cache(maxsize=65536)
def _is_terminal(tok: str) -> bool:
    return len(tok) == 1 and _STERM.match(tok) is not None


@lru_cache(maxsize=65536)
def _is_punct(tok: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in tok)


WordTokenizerName = Literal["regex", "spacy"]  # the `word_tokenizer` setting of the filters and of dedup


@cache
def get_word_tokenizer(name: str = "regex") -> WordTokenizer:
    """Return the shared word tokenizer called `name`.

    Args:
        name: "regex" (the fast spaCy-compatible default; "fast" is an alias) or "spacy" (datatrove's
            `SpaCyTokenizer("en")`, i.e. `spacy.blank("en")` with a sentencizer; needs spaCy installed).

    Returns:
        A datatrove `WordTokenizer`, usable as `language=` of any datatrove filter.
    """
    if name in ("regex", "fast"):
        return SpacyCompatTokenizer("en")
    if name == "spacy":
        return SpaCyTokenizer("en")
    raise ValueError(f"unknown word tokenizer {name!r}: use 'regex' or 'spacy'")
