"""`TokenizeSettings`: every setting that decides the shard bytes, declared once with its default, range and
description; the `fineforge tokenize` options, the Prefect forms (`flows.TokenizeOptions`), `TokenizeStage`, the
demo and the ablation all take them from here.

A bad value raises `TokenizeError` in one line (`field must be ..., got ...`), which the CLI prints as
`error: ...` with exit code 2.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.tokenizer import EOT_TOKEN
from pipelines.common.hashing import stable_hash
from pipelines.shards import MANIFEST_FORMAT

# A training window is seq_len + 1 tokens inside one shard (trainer.data): a shard of fewer than 1,025 tokens holds
# no window of a GPT-2 context, and `--shard-tokens 1` wrote 42,585 files for a small corpus.
MIN_SHARD_TOKENS = 1025
SEED_LIMIT = 2**64  # the shuffle hashes (seed, index) as 64-bit words
ORDER_VERSION = 1  # bump whenever the shuffle or split rule changes: it is part of the config hash
# Why a limit is what it is, appended to the one-line error.
_LIMIT_REASONS = {
    "shard_tokens": " (one GPT-2 context and its next token)",
    "val_tokens": " or None",
    "seed": " or None",
}


class TokenizeError(ValueError):
    """Bad settings, or an output folder holding another run's shards (input errors are `InputError`)."""


class TokenizeSettings(BaseModel):
    """Everything that decides the output bytes (so not `workers`); validated on construction.

    Raises:
        TokenizeError: a value out of range, in one line naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    shard_tokens: int = Field(
        100_000_000,
        ge=MIN_SHARD_TOKENS,
        description="Tokens per shard, >= 1,025 (every shard but the last of a split holds exactly this many).",
    )
    val_tokens: int | None = Field(
        None,
        ge=0,
        description="Validation tokens, whole documents from the front of the order (empty: 1% of all; 0: none).",
    )
    seed: int | None = Field(
        0, ge=0, lt=SEED_LIMIT, description="Seed of the document shuffle; empty keeps the input order."
    )
    text_column: str = Field("text", description="The column (Parquet) or field (JSONL) holding the text.")

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise TokenizeError(_one_line(err)) from None

    def config_hash(self) -> str:
        """Return a 16-hex-digit hash of these settings, the format and the ordering rule."""
        spec = {**self.model_dump(), "format": MANIFEST_FORMAT, "tokenizer": "gpt2", "eot": EOT_TOKEN}
        return stable_hash({**spec, "order_version": ORDER_VERSION})


def _one_line(err: ValidationError) -> str:
    """The first problem of a validation error as `field must be ..., got VALUE`."""
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    value, ctx = first.get("input"), first.get("ctx") or {}
    shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    if first["type"] == "greater_than_equal":
        return f"{field} must be >= {ctx['ge']:,}{_LIMIT_REASONS.get(field, '')}, got {shown}"
    if first["type"] == "less_than":
        return f"{field} must be < {ctx['lt']:,}{_LIMIT_REASONS.get(field, '')}, got {shown}"
    return f"{field}: {first['msg']}, got {shown}"
