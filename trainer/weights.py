"""The weights a model is made of: the plain model under its wrappers, and torch files loaded weights-only.

Both the checkpoints (`trainer.checkpoint`) and the Hugging Face folders (`trainer.hf`) need these, so they live
below both. `torch.compile` and `DistributedDataParallel` wrap a model and prefix its state-dict keys
(`_orig_mod.`, `module.`); saved weights are always the unwrapped names, so `model.sampling` and a plain
`GPT.load_state_dict` read them. `load_weights_only` is `torch.load(weights_only=True)`, which cannot run code from
an untrusted file, with its failures turned into one line naming the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

_WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile, DistributedDataParallel


def unwrap(model: nn.Module) -> nn.Module:
    """Return the plain model under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            return model


def unwrap_key(key: str) -> str:
    """Remove wrapper prefixes (`_orig_mod.`, `module.`, in any order and number) from a state-dict key."""
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load` that never runs code from the file: tensors, numbers, strings and plain containers only.

    Raises:
        ValueError: the file holds other pickled objects (refused: unpickling them could run code, whatever the
            file claims to be), or it is truncated or not a torch file; the message names the file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = (
            str(e).split("Unsupported global: ", 1)[-1].split(" was not", 1)[0]
            if "Unsupported global" in str(e)
            else ""
        )
        what = f" ({found.removeprefix('GLOBAL ')})" if found else ""
        raise ValueError(
            f"{path}: refused: it holds pickled Python objects{what} besides tensors and plain containers, and "
            "loading those can run arbitrary code; FineForge loads weights only. Export the weights "
            "(a state dict of tensors, or safetensors) from a trusted environment instead."
        ) from None
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot read it as a torch file ({type(e).__name__}: {e})") from None
