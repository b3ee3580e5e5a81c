"""One hash for settings and identities: the short SHA-256 of canonical JSON.

Stages key their work by it (curate's `config_hash` and `run_id`, tokenize's `config_hash`): equal settings give
equal hashes on every machine and Python version, because the JSON is canonical (sorted keys, no spaces).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HASH_CHARS = 16  # 64 bits: collisions are out of reach for the number of runs a folder ever sees


def stable_hash(value: Any) -> str:
    """Return the first 16 hex digits of the SHA-256 of `value` as canonical JSON.

    Args:
        value: JSON-serialisable data (dicts, lists, strings, numbers, booleans, None).

    Returns:
        16 lowercase hex characters.
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]


def file_sha256(path: str | Path, block: int = 8 << 20) -> str:
    """Return the SHA-256 hex digest of a file, read in 8 MiB blocks.

    Args:
        path: the file.
        block: bytes per read.

    Returns:
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
