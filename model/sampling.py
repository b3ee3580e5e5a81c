"""Sample text from a GPT-2: prompts in, continuations out, reproducibly (what `fineforge sample` prints).

Loading a model from a checkpoint, a Hugging Face folder or a run folder is `trainer.checkpoint.load_model`.
Samples are reproducible: one `torch.Generator` seeded with `seed` drives all rows, and the KV-cached
generation gives the same tokens as the uncached one (see `model.gpt2`).
"""

from __future__ import annotations

import torch

from model import tokenizer
from model.gpt2 import GPT


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
