"""The one text normalisation the quality classifier sees, in training and in scoring alike.

fastText reads one example per line and splits on whitespace only, so a document must become one line of
tokens: NFKC-normalised (full-width letters, ligatures and compatibility forms fold to their plain form),
lower-cased, split into runs of word characters and single punctuation marks (so "end." gives the tokens "end"
and "." and punctuation becomes a feature of its own, as in FineWeb's line-punctuation heuristic), joined by
single spaces. Line breaks become spaces, as in DCLM's fastText scoring; on the DCLM-labelled texts a line-break
token made no difference to held-out AUC (0.862 with, 0.861 without, five seeded splits).
"""

from __future__ import annotations

import re
import unicodedata

_TOKENS = re.compile(r"\w+|[^\w\s]")


def normalise(text: str) -> str:
    """Turn a document into the single line of tokens the classifier reads.

    Args:
        text: the document text.

    Returns:
        Lower-cased NFKC words and punctuation marks joined by single spaces (no newline).
    """
    return " ".join(_TOKENS.findall(unicodedata.normalize("NFKC", text).lower()))
