"""The FineForge home folder: the Prefect database, datasets, runs and caches live under it by default."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "FINEFORGE_HOME"
DEFAULT_HOME = ".fineforge"


def fineforge_home() -> Path:
    """Return the FineForge home (`FINEFORGE_HOME`, default `./.fineforge`), always absolute; not created here."""
    return Path(os.environ.get(HOME_ENV, DEFAULT_HOME)).expanduser().resolve()
