"""Shared fixtures: the real web corpora in ../shared/corpora and hermetic Prefect settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpora_path() -> Path:
    """Return the shared corpora folder (`FINEFORGE_CORPORA` overrides `../shared/corpora`)."""
    return Path(os.environ.get("FINEFORGE_CORPORA", REPO_ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora() -> Path:
    """The shared corpora folder; tests that need it skip, saying why, where it is absent."""
    path = corpora_path()
    if not path.is_dir():
        pytest.skip(f"shared corpora not found at {path} (set FINEFORGE_CORPORA)")
    return path
