"""An ablation test bed: real English text mixed with planted junk, and a clean evaluation set held out of it.

`write_ablation_corpus(clean, held_out, out_dir)` writes, deterministically for a seed:

- `input.jsonl`: every clean text, plus about as many junk documents of five kinds, in a shuffled order: page
  chrome (menus, cookie banners, footers), keyword spam, one line repeated many times, lorem ipsum placeholder
  text, and symbol noise (markup fragments, hashes and punctuation). Each junk document is about as long as a
  clean one in words, so junk is about half of the documents and a large share of the tokens. The FineWeb
  recipe drops nearly all of it (Gopher repetition and quality, C4's lorem-ipsum rule, FineWeb's line rules,
  the language filter); a recipe without filters trains on all of it.
- `eval.jsonl`: the held-out clean texts, which appear nowhere in the input.
- `corpus.json`: counts per kind (written last).

`shared_corpus_texts(corpora)` picks the real English texts from `../shared/corpora/web-text.jsonl.gz`: the 40 C4
documents are held out for evaluation, the DCLM and dolma documents become the clean input. Without
the shared corpora, `orchestration.demo_data.demo_texts` gives clean stand-ins (used by the built-in tests).
"""

from __future__ import annotations

import gzip
import json
import random
import string
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.common.files import write_json_atomic

CORPUS_SEED = 13
HELD_OUT_SOURCES = ("olmo-c4",)  # web-text.jsonl.gz sources used only for evaluation (40 documents, 19k tokens)
JUNK_KINDS = ("chrome", "spam", "repeated_line", "lorem_ipsum", "symbols")
_CHROME = (
    "Home | News | Sport | Business | Contact us",
    "We use cookies to improve your experience. Accept all cookies",
    "Subscribe to our newsletter",
    "Follow us on Facebook, Twitter and Instagram",
    "Copyright 2024 Example Media Group. All rights reserved.",
    "Privacy Policy | Terms of Use | Cookie Settings",
    "Sign in | Register | My account",
    "Share this article",
    "Related posts",
    "Back to top",
    "Advertisement",
    "Read more >>",
)
_SPAM = (
    "cheap replica watches buy now best price discount free shipping casino bonus online pills sale deal "
    "viagra loans credit win money fast click here limited offer"
).split()
_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo "
    "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur"
).split()
_SYMBOLS = string.punctuation + string.digits + "abcdef"


def _chrome(rng: random.Random, words: int) -> str:
    lines, count = [], 0
    while count < words:
        lines.append(rng.choice(_CHROME))
        count += len(lines[-1].split())
    return "\n".join(lines)


def _spam(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_SPAM) for _ in range(words))


def _repeated_line(rng: random.Random, words: int, clean: list[str]) -> str:
    sentences = [s.strip() for s in rng.choice(clean).split(".") if len(s.split()) >= 6] or ["Click here to read more"]
    line = rng.choice(sentences) + "."
    return "\n".join([line] * max(2, words // len(line.split())))


def _lorem(rng: random.Random, words: int) -> str:
    sentences, count = [], 0
    while count < words:
        n = rng.randint(6, 14)
        sentence = " ".join(rng.choice(_LOREM) for _ in range(n))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        count += n
    return " ".join(sentences)


def _symbols(rng: random.Random, words: int) -> str:
    # A run of symbols costs about 5 GPT-2 tokens, a word about 1.3: a third as many keeps the token count level.
    return " ".join("".join(rng.choice(_SYMBOLS) for _ in range(rng.randint(2, 9))) for _ in range(words // 3))


def junk_document(kind: str, rng: random.Random, words: int, clean: list[str]) -> str:
    """One junk document of `kind` (one of `JUNK_KINDS`) with about `words` words.

    Args:
        kind: the kind of junk.
        rng: the random generator (the documents depend only on its state).
        words: the length to aim at.
        clean: clean texts (a repeated line is taken from one of them).

    Returns:
        The text.
    """
    if kind == "repeated_line":
        return _repeated_line(rng, words, clean)
    makers = {"chrome": _chrome, "spam": _spam, "lorem_ipsum": _lorem, "symbols": _symbols}
    return makers[kind](rng, words)


def write_ablation_corpus(
    clean: list[str], held_out: list[str], out_dir: Path, junk_share: float = 0.5, seed: int = CORPUS_SEED
) -> dict[str, Any]:
    """Write input.jsonl (clean plus planted junk), eval.jsonl (held-out clean text) and corpus.json.

    Args:
        clean: real clean texts for the input.
        held_out: clean texts for the evaluation set only.
        out_dir: the folder (created).
        junk_share: junk documents as a share of all input documents.
        seed: the generator's seed.

    Returns:
        The corpus record: {"input", "eval", "documents", "counts" {kind: n}, "seed"}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    docs = [{"kind": "clean", "text": t} for t in clean]
    n_junk = round(len(clean) * junk_share / (1 - junk_share))
    for i in range(n_junk):
        kind = JUNK_KINDS[i % len(JUNK_KINDS)]
        words = len(rng.choice(clean).split())
        docs.append({"kind": kind, "text": junk_document(kind, rng, max(words, 40), clean)})
    rng.shuffle(docs)
    with open(out_dir / "input.jsonl", "w", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            f.write(json.dumps({"id": f"doc-{i:05d}", "kind": doc["kind"], "text": doc["text"]}) + "\n")
    with open(out_dir / "eval.jsonl", "w", encoding="utf-8") as f:
        for i, text in enumerate(held_out):
            f.write(json.dumps({"id": f"eval-{i:04d}", "text": text}) + "\n")
    record = {
        "input": str(out_dir / "input.jsonl"),
        "eval": str(out_dir / "eval.jsonl"),
        "documents": len(docs),
        "counts": dict(Counter(doc["kind"] for doc in docs)),
        "eval_documents": len(held_out),
        "seed": seed,
    }
    write_json_atomic(out_dir / "corpus.json", record)
    return record


def shared_corpus_texts(corpora: Path) -> tuple[list[str], list[str]]:
    """The real English texts of the shared corpora: (clean input texts, held-out evaluation texts).

    Args:
        corpora: the shared corpora folder (holding web-text.jsonl.gz).

    Returns:
        DCLM and dolma documents for the input; the C4 documents for evaluation.
    """
    with gzip.open(Path(corpora) / "web-text.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    english = [r for r in rows if r.get("lang_hint", "en") == "en" and r["source"] != "cc-whirlwind-wet"]
    held_out = [r["text"] for r in english if r["source"] in HELD_OUT_SOURCES]
    clean = [r["text"] for r in english if r["source"] not in HELD_OUT_SOURCES]
    return clean, held_out
