"""Load a GPT-2 for sampling, from a training checkpoint or a Hugging Face folder, and sample text from it.

This is what `fineforge sample` runs. Accepted inputs:
- a training checkpoint file (`torch.save` dict with at least "model" and "model_config"), read with
  `torch.load(weights_only=True)` so that a file from elsewhere cannot run code; `_orig_mod.`
  (torch.compile) and `module.` (DDP) key prefixes are removed;
- a Hugging Face GPT-2 folder (config.json + model.safetensors or pytorch_model.bin);
- a training run folder: its `hf/` export if present, else its newest `checkpoints/*.pt`.

Samples are reproducible: one `torch.Generator` seeded with `seed` drives all rows, and the KV-cached
generation gives the same tokens as the uncached one (see `model.gpt2`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from model import tokenizer
from model.gpt2 import GPT, GPTConfig, build_from_state_dict, from_pretrained

_WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile, DistributedDataParallel


def _unwrap_key(key: str) -> str:
    """Remove wrapper prefixes (in any order and number) from a state-dict key."""
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _load_checkpoint_file(path: Path) -> GPT:
    """Build the model stored in a training checkpoint file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, foreign or unsafe files
        raise ValueError(f"{path}: cannot read it as a training checkpoint ({err})") from err
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: not a training checkpoint (needs 'model' and 'model_config'; found {keys})")
    try:
        config = GPTConfig(**state["model_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad model_config {state['model_config']!r}: {err}") from err
    weights = {_unwrap_key(k): v.float() for k, v in state["model"].items()}
    try:
        return build_from_state_dict(config, weights)
    except RuntimeError as err:  # missing/unexpected keys or shapes that do not fit the config
        raise ValueError(f"{path}: weights do not fit its model_config: {err}") from err


def _resolve(path: Path) -> Path:
    """Map a run folder to its HF export or newest checkpoint; return files and HF folders unchanged."""
    if path.is_file() or (path / "config.json").is_file():
        return path
    if (path / "hf" / "config.json").is_file():
        return path / "hf"
    checkpoints = sorted((path / "checkpoints").glob("*.pt"))
    if checkpoints:
        return checkpoints[-1]
    raise FileNotFoundError(
        f"{path}: not a checkpoint file, a Hugging Face folder (config.json) or a run folder (hf/, checkpoints/)"
    )


def load_for_sampling(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Load a model to sample from.

    Args:
        path: a training checkpoint file, a Hugging Face GPT-2 folder, or a training run folder.
        device: where to put the model.

    Returns:
        The model in float32, eval mode, on `device`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint or folder")
    path = _resolve(path)
    model = from_pretrained(path) if path.is_dir() else _load_checkpoint_file(path)
    return model.to(device).eval()


def sample_text(
    model: GPT,
    prompt: str,
    num_samples: int = 5,
    max_new_tokens: int = 100,
    temperature: float = 1.0,
    top_k: int | None = 50,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Sample continuations of a prompt, reproducibly.

    Args:
        model: a GPT with the GPT-2 vocabulary.
        prompt: the text to continue; an empty prompt starts from `<|endoftext|>` (a document start).
        num_samples: number of continuations, generated as one batch.
        max_new_tokens: tokens to generate per sample; a sample is cut at its first `<|endoftext|>`.
        temperature: softmax temperature (0: greedy).
        top_k: sample among the k most likely tokens (None: all).
        top_p: nucleus sampling mass (1.0: off).
        seed: seed of the generator; same seed, same model, same device -> same texts.

    Returns:
        One string per sample: the prompt followed by its continuation.
    """
    device = model.transformer.wte.weight.device
    prompt_tokens = tokenizer.encode(prompt) or [tokenizer.EOT_TOKEN]
    idx = torch.tensor([prompt_tokens] * num_samples, dtype=torch.long, device=device)  # (num_samples, T)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, max_new_tokens, temperature, top_k, top_p, generator=generator)
    texts = []
    for row in out[:, len(prompt_tokens) :].tolist():
        if tokenizer.EOT_TOKEN in row:
            row = row[: row.index(tokenizer.EOT_TOKEN)]
        texts.append(prompt + tokenizer.decode(row))
    return texts
