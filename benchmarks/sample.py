"""Sampling speed with and without the KV cache, side by side in one run, and the ratio.

Without a cache each new token re-runs the whole sequence; with it, one position. Both sides sample the
same seeded tokens (checked), so the ratio is the cache's speed-up alone. Random weights suffice for
timing. Run: `.venv/bin/python -m benchmarks.sample --preset gpt2 --prompt-lengths 16,128,256 --threads 1`.
"""

from __future__ import annotations

import argparse
import time

import torch

from model.gpt2 import GPT, config_from_preset


def _timed_generate(model: GPT, prompt: torch.Tensor, new_tokens: int, use_cache: bool) -> tuple[float, torch.Tensor]:
    """Return (new tokens per second, tokens) for one seeded generation."""
    start = time.perf_counter()
    out = model.generate(prompt, new_tokens, top_k=50, generator=torch.Generator().manual_seed(0), use_cache=use_cache)
    return prompt.size(0) * new_tokens / (time.perf_counter() - start), out


def main() -> None:
    """Parse flags, time both paths per prompt length, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--prompt-lengths", default="16,128,256", help="comma-separated prompt lengths")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(config_from_preset(args.preset)).eval()
    print(f"preset {args.preset}, batch {args.batch}, {args.new_tokens} new tokens, {torch.get_num_threads()} threads")
    print(f"{'prompt':>6} {'cached tok/s':>13} {'uncached tok/s':>15} {'speed-up':>9} same-tokens")
    for length in (int(x) for x in args.prompt_lengths.split(",")):
        prompt = torch.randint(0, model.config.vocab_size, (args.batch, length))
        _timed_generate(model, prompt, 2, True)  # warm-up
        cached, a = _timed_generate(model, prompt, args.new_tokens, True)
        uncached, b = _timed_generate(model, prompt, args.new_tokens, False)
        print(f"{length:>6} {cached:>13.1f} {uncached:>15.1f} {cached / uncached:>8.1f}x {torch.equal(a, b)}")


if __name__ == "__main__":
    main()
