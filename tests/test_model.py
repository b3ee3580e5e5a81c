"""GPT-2 model: logits equal transformers' GPT-2 on the same weights (both directions), KV-cached generation
equals uncached generation, published parameter counts, llm.c's FLOP count, padded vocabulary rows.

Reference implementation: `transformers.GPT2LMHeadModel` with random weights built here (no hub access).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from model.gpt2 import (
    GPT,
    PRESETS,
    KVCache,
    config_from_preset,
    flops_per_token,
    gpu_peak_flops,
    peak_flops,
    sample_next_token,
)
from trainer.hf import export_hf, from_pretrained

ATOL = 1e-4  # issue 4, acceptance 1 (fp32)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Add noise to every parameter so that biases and LayerNorm weights are not their trivial init values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


def _hf_model(preset: str, seed: int = 0) -> GPT2LMHeadModel:
    """A transformers GPT-2 of a preset's shape with random weights."""
    cfg = config_from_preset(preset)
    torch.manual_seed(seed)
    hf_config = GPT2Config(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.block_size, vocab_size=50257
    )
    model = GPT2LMHeadModel(hf_config)
    _perturb(model, seed)
    return model.eval()


def _our_model(preset: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config_from_preset(preset))
    _perturb(model, seed)
    return model.eval()


def _tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50257, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _max_logit_diff(ours: GPT, hf: GPT2LMHeadModel, idx: torch.Tensor) -> float:
    logits, _ = ours(idx)
    return (logits - hf(idx).logits).abs().max().item()


PRESETS_COMPARED = ["tiny", "small-cpu", pytest.param("gpt2", marks=pytest.mark.slow)]


@pytest.mark.parametrize("preset", PRESETS_COMPARED)
def test_hf_to_ours_logits_match(preset: str, tmp_path: Path) -> None:
    hf = _hf_model(preset)
    hf.save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path)
    assert ours.config.n_layer == PRESETS[preset]["n_layer"] and ours.config.padded_vocab_size == 50304
    assert _max_logit_diff(ours, hf, _tokens(2, 64)) < ATOL


@pytest.mark.parametrize("preset", PRESETS_COMPARED)
def test_ours_to_hf_logits_match(preset: str, tmp_path: Path) -> None:
    ours = _our_model(preset)
    export_hf(ours, tmp_path)
    hf, info = GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied, as GPT-2
    assert _max_logit_diff(ours, hf.eval(), _tokens(2, 64)) < ATOL


def test_legacy_checkpoint_layout(tmp_path: Path) -> None:
    """The original `gpt2` upload: pytorch_model.bin, bare GPT2Model keys, mask buffers, no lm_head."""
    hf = _hf_model("tiny", seed=1)
    hf.config.save_pretrained(tmp_path)
    legacy = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(hf.config.n_layer):
        legacy[f"h.{i}.attn.bias"] = torch.tril(torch.ones(256, 256)).view(1, 1, 256, 256)
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    assert _max_logit_diff(from_pretrained(tmp_path), hf, _tokens(1, 32)) < ATOL


def test_from_pretrained_rejects_bad_folders(tmp_path: Path) -> None:
    hf = _hf_model("tiny")
    hf.config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors or pytorch_model.bin"):
        from_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(ValueError, match="config.json: activation_function='relu' is not supported"):
        from_pretrained(tmp_path)


def test_export_round_trip_is_exact(tmp_path: Path) -> None:
    ours = _our_model("small-cpu", seed=3)
    back = from_pretrained(export_hf(ours, tmp_path))
    for (name, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items(), strict=True):
        if name.endswith("wte.weight") or name == "lm_head.weight":  # padded rows are not exported
            a, b = a[: ours.config.vocab_size], b[: ours.config.vocab_size]
        assert torch.equal(a, b), name
    assert back.lm_head.weight is back.transformer.wte.weight


@torch.no_grad()
def test_kv_cache_logits_match_full_forward() -> None:
    """Prefill, a multi-token chunk after cached positions (explicit mask), then single tokens."""
    model = _our_model("small-cpu", seed=4)
    idx = _tokens(3, 40, seed=4)
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer, capacity=40)
    pieces = [model(idx[:, :17], cache=cache)[0], model(idx[:, 17:30], cache=cache)[0]]
    pieces += [model(idx[:, t : t + 1], cache=cache)[0] for t in range(30, 40)]
    assert cache.pos == 40
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="overflow"):
        model(idx[:, :1], cache=cache)


CACHE_CASES = [
    # preset, prompt length, new tokens, sampling settings; "tiny" crosses its 256-token context.
    ("tiny", 5, 40, dict()),
    ("tiny", 230, 60, dict(top_k=50)),
    ("small-cpu", 1, 40, dict(top_p=0.9)),
    ("small-cpu", 20, 40, dict(temperature=0.7, top_k=200, top_p=0.95)),
]


@pytest.mark.parametrize(("preset", "prompt_len", "new", "kwargs"), CACHE_CASES)
def test_cached_and_uncached_generation_give_identical_tokens(preset: str, prompt_len: int, new: int, kwargs) -> None:
    model = _our_model(preset, seed=5)
    prompt = _tokens(3, prompt_len, seed=prompt_len)
    for seed in range(3):
        cached = model.generate(prompt, new, generator=torch.Generator().manual_seed(seed), **kwargs)
        uncached = model.generate(
            prompt, new, generator=torch.Generator().manual_seed(seed), use_cache=False, **kwargs
        )
        assert cached.shape == (3, prompt_len + new)
        assert torch.equal(cached[:, :prompt_len], prompt)
        assert torch.equal(cached, uncached), f"seed {seed}: first differing position {(cached != uncached).nonzero()}"


def test_sampling_is_determined_by_the_seed() -> None:
    model = _our_model("tiny", seed=6)
    prompt = _tokens(2, 8, seed=6)

    def run(seed: int) -> torch.Tensor:
        return model.generate(prompt, 30, top_k=50, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    greedy = [model.generate(prompt, 10, temperature=0.0, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    assert torch.equal(*greedy)


def test_sample_filters_restrict_the_candidates() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next_token(logits, top_k=2, generator=gen).unique().tolist()) == {0, 1}
    # softmax of the logits: 0.636, 0.234, 0.086, ...: top_p=0.8 keeps the first two (0.636 < 0.8 <= 0.870).
    assert set(sample_next_token(logits, top_p=0.8, generator=gen).unique().tolist()) == {0, 1}
    freq = torch.bincount(sample_next_token(logits, generator=gen).view(-1), minlength=5) / 2000
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.04)  # 4 sigma of a binomial with n=2000
    with pytest.raises(ValueError, match="top_p"):
        sample_next_token(logits, top_p=0.0)


@torch.no_grad()
def test_padded_logits_never_win() -> None:
    model = _our_model("tiny", seed=7)
    model.transformer.wte.weight[model.config.vocab_size :] = 10.0  # padded rows would dominate every logit
    logits, _ = model(_tokens(2, 16))
    assert logits.shape[-1] == 50257
    out = model.generate(_tokens(2, 4), 20, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert int(out.max()) < 50257


def test_published_parameter_counts() -> None:
    published = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    with torch.device("meta"):
        for name, count in published.items():
            assert GPT(config_from_preset(name)).num_params() == count, name


def test_flops_per_token_follows_llm_c() -> None:
    """llm.c: 6 * num_parameters (padded vocab, everything allocated) + 6 * L * C * T."""
    for name in ("tiny", "gpt2", "gpt2-xl"):
        config = config_from_preset(name)
        with torch.device("meta"):
            n_allocated = sum(p.numel() for p in GPT(config).parameters())
        attention = 6 * config.n_layer * config.n_embd * 1024
        assert flops_per_token(config, 1024) == 6 * n_allocated + attention
    # llm.c reports num_parameters 124,475,904 for its padded GPT-2 124M.
    assert flops_per_token(config_from_preset("gpt2"), 1024) == 6 * 124_475_904 + 6 * 12 * 768 * 1024


def test_peak_flops() -> None:
    assert peak_flops("cpu") is None
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989.5e12
    assert gpu_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert gpu_peak_flops("NVIDIA H200") == 989.5e12
    assert gpu_peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_peak_flops("Tesla V100-SXM2-16GB") is None
