"""Training checkpoints: atomic writes, the last K kept, automatic resume, and loading a model to use.

A checkpoint is one `torch.save` file, `RUN_DIR/checkpoints/step_{step:06d}.pt`, holding everything an exact
resume needs: the model weights (unwrapped: no `module.` or `_orig_mod.` prefixes, so `model.sampling` and
plain `GPT.load_state_dict` read them), `model_config` (a `GPTConfig` dict), the optimizer, the step, the data
loader's position, the RNG states (python, numpy, torch CPU and CUDA) and the trainer config. Only plain
containers, numbers, strings and tensors go in, so it loads with `torch.load(weights_only=True)`, which
cannot run code from an untrusted file.

What a checkpoint holds is defined once, by `trainer.trainer.Trainer.state_dict`; this module only stores,
finds and loads the files. Writes go to `*.pt.<hex>.tmp`, are fsynced, then renamed: a run killed mid-write (SIGKILL,
preemption) leaves the previous checkpoint intact and never a half file under the final name. A GPT-2 124M
checkpoint with AdamW state is about 1.5 GB (3 x 124M float32), so keeping the last 3 costs about 4.5 GB.

`load_model` is what `fineforge sample` and `fineforge eval` use: a checkpoint file, a Hugging Face folder
(`trainer.hf`), or a run folder (its `hf/` export if present, else its newest checkpoint).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.gpt2 import GPT, GPTConfig, build_from_state_dict
from pipelines.common.files import atomic_write
from trainer.weights import load_weights_only, unwrap_key

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{6,})\.pt$")


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
    with atomic_write(path) as f:
        torch.save(state, f)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`.

    Raises:
        ValueError: when the file is not a FineForge training checkpoint, naming it.
    """
    path = Path(path)
    state = load_weights_only(path, map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a FineForge training checkpoint (a {type(state).__name__}, not a dict)")
    missing = [k for k in ("model", "model_config", "step") if k not in state]
    if missing:
        raise ValueError(f"{path}: not a FineForge training checkpoint (missing {', '.join(missing)})")
    return state


def model_from_checkpoint(path: str | Path) -> GPT:
    """Build the model stored in a training checkpoint file (weights only; float32, CPU, eval mode).

    Raises:
        ValueError: the file is not a readable training checkpoint, or its weights do not fit its config.
    """
    state = load_checkpoint(path)
    try:
        config = GPTConfig(**state["model_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad model_config {state['model_config']!r}: {err}") from err
    weights = {unwrap_key(k): v.float() for k, v in state["model"].items()}
    try:
        return build_from_state_dict(config, weights)
    except RuntimeError as err:  # missing/unexpected keys or shapes that do not fit the config
        raise ValueError(f"{path}: weights do not fit its model_config: {err}") from err


def resolve_model_path(path: Path) -> Path:
    """Map a run folder to its HF export or newest checkpoint; return files and HF folders unchanged.

    Raises:
        FileNotFoundError: `path` is none of a checkpoint file, an HF folder or a run folder with either.
    """
    if path.is_file() or (path / "config.json").is_file():
        return path
    if (path / "hf" / "config.json").is_file():
        return path / "hf"
    if newest := latest_checkpoint(path):
        return newest
    raise FileNotFoundError(
        f"{path}: not a checkpoint file, a Hugging Face folder (config.json) or a run folder (hf/, checkpoints/)"
    )


def existing_model_path(path: str | Path) -> Path:
    """`path` as a Path, after checking that something is there (a model is loaded from it later).

    Raises:
        FileNotFoundError: nothing at `path`, naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint or folder")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Load a model to use (sample, evaluate): a checkpoint file, a Hugging Face folder or a run folder.

    Args:
        path: where the model is.
        device: where to put it.

    Returns:
        The model in float32, eval mode, on `device`.

    Raises:
        FileNotFoundError: nothing loadable at `path`.
        ValueError: a file that is not a FineForge checkpoint or GPT-2 folder (also an unsafe pickle).
    """
    from trainer.hf import from_pretrained

    path = resolve_model_path(existing_model_path(path))
    model = from_pretrained(path) if path.is_dir() else model_from_checkpoint(path)
    return model.to(device).eval()
