"""Hugging Face GPT-2 folders: load them into our GPT, and export a trained GPT as one.

Our parameter names follow the published checkpoints, so both directions are a name mapping: GPT-2 stores its
attention and MLP weights as Conv1D `(in, out)` where we use Linear `(out, in)`, the published vocabulary is the
unpadded 50,257 rows, and `lm_head` is tied to `wte`. Loading reads `model.safetensors`, else `pytorch_model.bin`
with `weights_only=True` (a pickle from elsewhere cannot run code); exporting writes the tokenizer, then
`model.safetensors`, then `config.json`, each atomically, so the presence of `config.json` marks a complete export.

A release is the BPE encoder, the model and its parameters: without the tokenizer files
`AutoTokenizer.from_pretrained(run/hf)` silently returned an empty tokenizer and `pipeline("text-generation")` only
the prompt. The export carries GPT-2's `vocab.json` and `merges.txt` (the bundled BPE files, offline) with a
`tokenizer_config.json`, so `pipeline("text-generation", model=run/hf)` generates what `fineforge sample` does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.gpt2 import GPT, GPTConfig, build_from_state_dict
from model.tokenizer import EOT_TEXT, EOT_TOKEN, VOCAB_SIZE, bpe_files
from pipelines.common.files import atomic_write, write_json_atomic
from trainer.weights import load_weights_only, unwrap

# Weights that GPT-2 stores as Conv1D (in, out) and we as Linear (out, in).
_CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers of older transformers versions (the causal mask), not weights.
_HF_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_PAD_MULTIPLE = 128  # llm.c pads 50257 to 50304


def _hf_gpt_config(config_path: Path) -> GPTConfig:
    """Translate an HF GPT-2 config.json into a GPTConfig, refusing variants this model does not compute."""
    hf = json.loads(config_path.read_text())
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{config_path}: model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    n_embd = hf["n_embd"]
    unsupported = {
        "n_inner": (hf.get("n_inner"), (None, 4 * n_embd)),
        "activation_function": (hf.get("activation_function", "gelu_new"), ("gelu_new", "gelu_pytorch_tanh")),
        "layer_norm_epsilon": (hf.get("layer_norm_epsilon", 1e-5), (1e-5,)),
        "scale_attn_weights": (hf.get("scale_attn_weights", True), (True,)),
        "scale_attn_by_inverse_layer_idx": (hf.get("scale_attn_by_inverse_layer_idx", False), (False,)),
        "tie_word_embeddings": (hf.get("tie_word_embeddings", True), (True,)),
    }
    for key, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"{config_path}: {key}={value!r} is not supported (GPT-2 uses {allowed[0]!r})")
    vocab = hf["vocab_size"]
    return GPTConfig(
        block_size=hf.get("n_positions", hf.get("n_ctx", 1024)),
        vocab_size=vocab,
        padded_vocab_size=math.ceil(vocab / _PAD_MULTIPLE) * _PAD_MULTIPLE,
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=n_embd,
    )


def _load_hf_tensors(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Read model.safetensors, else pytorch_model.bin (with weights_only=True); return (file, tensors)."""
    safetensors_path = directory / "model.safetensors"
    if safetensors_path.is_file():
        from safetensors.torch import load_file

        return safetensors_path, load_file(str(safetensors_path))
    bin_path = directory / "pytorch_model.bin"
    if bin_path.is_file():
        return bin_path, load_weights_only(bin_path)
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin")


def from_pretrained(directory: str | Path) -> GPT:
    """Load a Hugging Face GPT-2 directory (config.json + model.safetensors or pytorch_model.bin).

    Accepts checkpoints saved from `GPT2LMHeadModel` (keys under `transformer.`) or `GPT2Model` (bare
    keys, as the original `gpt2` upload); Conv1D weights are transposed, the causal-mask buffers of old
    transformers versions skipped, and the token embedding padded with zero rows.

    Args:
        directory: the model folder.

    Returns:
        The model on CPU in float32, eval mode.
    """
    directory = Path(directory)
    config = _hf_gpt_config(directory / "config.json")
    weights_path, tensors = _load_hf_tensors(directory)
    state_dict: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if key.endswith(_HF_BUFFER_SUFFIXES):
            continue
        name = key if key.startswith(("transformer.", "lm_head.")) else f"transformer.{key}"
        state_dict[name] = tensor.t() if name.endswith(_CONV1D_SUFFIXES) else tensor
    wte = state_dict.get("transformer.wte.weight")
    if wte is None or wte.shape != (config.vocab_size, config.n_embd):
        shape = None if wte is None else tuple(wte.shape)
        raise ValueError(
            f"{weights_path}: wte.weight has shape {shape}, expected ({config.vocab_size}, {config.n_embd})"
        )
    lm_head = state_dict.pop("lm_head.weight", None)
    if lm_head is not None and not torch.equal(lm_head, wte):
        raise ValueError(f"{weights_path}: lm_head.weight differs from wte.weight; only tied GPT-2 is supported")
    state_dict["transformer.wte.weight"] = F.pad(wte, (0, 0, 0, config.padded_vocab_size - config.vocab_size))
    state_dict = {k: v.float().contiguous() for k, v in state_dict.items()}
    try:
        return build_from_state_dict(config, state_dict)
    except RuntimeError as err:  # missing or unexpected keys, wrong shapes
        raise ValueError(f"{weights_path}: not a GPT-2 checkpoint for {directory / 'config.json'}: {err}") from err


def export_tokenizer(directory: Path, max_length: int) -> None:
    """Write GPT-2's tokenizer as `transformers` reads it: vocab.json, merges.txt and their settings.

    Args:
        directory: the model folder.
        max_length: the model's context length (`model_max_length`).
    """
    vocab_bpe, encoder_json = bpe_files()
    for source, name in ((encoder_json, "vocab.json"), (vocab_bpe, "merges.txt")):
        with atomic_write(directory / name) as f:
            f.write(source.read_bytes())
    special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    write_json_atomic(directory / "special_tokens_map.json", special)
    settings = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": max_length,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,  # decode exactly as the BPE does (" ," stays " ,")
    }
    write_json_atomic(directory / "tokenizer_config.json", {**settings, **special})


def export_hf(model: nn.Module, directory: str | Path) -> Path:
    """Write the model as a Hugging Face GPT-2 folder that `GPT2LMHeadModel.from_pretrained` loads.

    Writes GPT-2's tokenizer files (`export_tokenizer`), model.safetensors (Conv1D layout, vocab unpadded, lm_head
    left to weight tying) and then config.json, each atomically; config.json last, so its presence marks a complete
    export.

    Args:
        model: the model, or a torch.compile or DDP wrapper of it (any device and dtype; weights are copied to
            CPU as they are).
        directory: output folder, created if needed.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    model = unwrap(model)
    config = model.config
    if not config.bias:
        raise ValueError("export_hf: GPT-2 in transformers always has biases; this model has bias=False")
    if config.vocab_size != VOCAB_SIZE:
        raise ValueError(f"export_hf: vocab_size {config.vocab_size} is not GPT-2's {VOCAB_SIZE}; no tokenizer fits")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    export_tokenizer(directory, config.block_size)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        if name == "transformer.wte.weight":
            tensor = tensor[: config.vocab_size]
        if name.endswith(_CONV1D_SUFFIXES):
            tensor = tensor.t()
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    with atomic_write(directory / "model.safetensors") as f:
        save_file(tensors, f.name, metadata={"format": "pt"})  # streams to the temporary file atomic_write syncs
    hf_config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": EOT_TOKEN,
        "eos_token_id": EOT_TOKEN,
        "torch_dtype": str(next(iter(tensors.values())).dtype).removeprefix("torch."),
    }
    write_json_atomic(directory / "config.json", hf_config)
    return directory
