"""Training checkpoints: atomic writes, the last K kept, automatic resume from a run directory.

A checkpoint is one `torch.save` file, `RUN_DIR/checkpoints/step_{step:06d}.pt`, holding everything an exact
resume needs: the model weights (unwrapped: no `module.` or `_orig_mod.` prefixes, so `model.sampling` and
plain `GPT.load_state_dict` read them), `model_config` (a `GPTConfig` dict), the optimizer, the step, the data
loader's position, the RNG states (python, numpy, torch CPU and CUDA) and the trainer config. Only plain
containers, numbers, strings and tensors go in, so it loads with `torch.load(weights_only=True)`, which
cannot run code from an untrusted file.

Writes go to `*.pt.tmp`, are fsynced, then renamed: a run killed mid-write (SIGKILL, preemption) leaves the
previous checkpoint intact and never a half file under the final name. A GPT-2 124M checkpoint with AdamW
state is about 1.5 GB (3 x 124M float32), so keeping the last 3 costs about 4.5 GB.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{6,})\.pt$")


def unwrap(model: nn.Module) -> nn.Module:
    """Return the plain model under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            return model


def rng_state() -> dict[str, Any]:
    """Capture python, numpy, torch and (when present) CUDA RNG states as weights_only-safe values."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states captured by `rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Return the file of the checkpoint at `step` in `run_dir`."""
    return Path(run_dir) / CKPT_DIR / f"step_{step:06d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Return (step, path) of the complete checkpoints in `run_dir`, oldest first."""
    directory = Path(run_dir) / CKPT_DIR
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Return the newest checkpoint of `run_dir`, or None when there is none."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], keep: int) -> Path:
    """Write `state` atomically as the checkpoint of `state["step"]` and delete all but the newest `keep`.

    Args:
        run_dir: the run directory.
        state: the checkpoint dict (see the module docstring); must contain "step".
        keep: how many checkpoints to keep (at least 1).

    Returns:
        The path written.
    """
    path = checkpoint_path(run_dir, state["step"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`.

    Raises:
        ValueError: when the file is not a FineForge training checkpoint, naming it.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot read the checkpoint ({e})") from e
    missing = [k for k in ("model", "model_config", "step") if k not in state]
    if missing:
        raise ValueError(f"{path}: not a FineForge training checkpoint (missing {', '.join(missing)})")
    return state
