"""`fineforge sample` and `model.sampling`: the same weights give the same texts whether they come from a
Hugging Face folder or a training checkpoint (with torch.compile / DDP key prefixes); seeds reproduce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from model.gpt2 import GPT, config_from_preset
from model.sampling import sample_text
from trainer.checkpoint import load_model
from trainer.hf import export_hf

PROMPT = "The web is"

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(config_from_preset("tiny")).eval()


@pytest.fixture(scope="module")
def hf_dir(model: GPT, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_hf(model, tmp_path_factory.mktemp("hf"))


def _write_checkpoint(model: GPT, path: Path, prefix: str) -> Path:
    """A checkpoint as the trainer writes it, with the key prefix a wrapped model would give."""
    state = {f"{prefix}{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state, "model_config": model.config.to_dict(), "step": 7}, path)
    return path


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, ["sample", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _samples(output: str) -> list[str]:
    return [block.split("\n", 1)[1].rstrip("\n") for block in output.split("--- sample ")[1:]]


def test_cli_samples_from_hf_folder_and_checkpoint_agree(model: GPT, hf_dir: Path, tmp_path: Path) -> None:
    args = ["--prompt", PROMPT, "--num-samples", "3", "--max-new-tokens", "12", "--seed", "3"]
    from_hf = _samples(_cli("--checkpoint", str(hf_dir), *args))
    assert len(from_hf) == 3 and all(s.startswith(PROMPT) for s in from_hf)
    assert len(set(from_hf)) > 1  # rows of one batch are different samples
    for prefix in ("_orig_mod.", "module."):
        ckpt = _write_checkpoint(model, tmp_path / f"step{prefix.strip('.')}.pt", prefix)
        assert _samples(_cli("--checkpoint", str(ckpt), *args)) == from_hf
    assert _samples(_cli("--checkpoint", str(hf_dir), *args[:-1], "4")) != from_hf  # another seed


def test_console_script_runs(hf_dir: Path) -> None:
    exe = Path(sys.executable).with_name("fineforge")
    cmd = [str(exe), "sample", "--checkpoint", str(hf_dir), "--prompt", PROMPT, "--num-samples", "1"]
    result = subprocess.run([*cmd, "--max-new-tokens", "5", "--top-p", "0.9"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("--- sample 0 ---\n" + PROMPT)


def test_sample_text_matches_generate(model: GPT) -> None:
    texts = sample_text(model, "", num_samples=2, max_new_tokens=10, top_k=None, seed=1)
    again = sample_text(model, "", num_samples=2, max_new_tokens=10, top_k=None, seed=1)
    assert texts == again and len(texts) == 2
    from model import tokenizer

    idx = torch.full((2, 1), tokenizer.EOT_TOKEN)  # an empty prompt starts a document
    tokens = model.generate(idx, 10, top_k=None, generator=torch.Generator().manual_seed(1))
    expected = []
    for row in tokens[:, 1:].tolist():
        expected.append(tokenizer.decode(row[: row.index(tokenizer.EOT_TOKEN)] if tokenizer.EOT_TOKEN in row else row))
    assert texts == expected


def test_run_folder_resolves_to_its_export(model: GPT, hf_dir: Path, tmp_path: Path) -> None:
    export_hf(model, tmp_path / "hf")
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.transformer.h[0].attn.c_attn.weight, model.transformer.h[0].attn.c_attn.weight)


def test_bad_checkpoints_fail_clearly(model: GPT, tmp_path: Path) -> None:
    not_ckpt = tmp_path / "weights.pt"
    torch.save({"state": model.state_dict()}, not_ckpt)
    result = CliRunner().invoke(app, ["sample", "--checkpoint", str(not_ckpt)])
    assert result.exit_code == 2 and f"{not_ckpt}: not a FineForge training checkpoint" in result.output
    unsafe = tmp_path / "unsafe.pt"  # weights_only=True refuses arbitrary pickled objects
    torch.save({"model": model.state_dict(), "model_config": model.config}, unsafe)
    with pytest.raises(
        ValueError, match=r"unsafe.pt: refused: it holds pickled Python objects \(model.gpt2.GPTConfig\)"
    ):
        load_model(unsafe)
    with pytest.raises(FileNotFoundError, match="not a checkpoint file, a Hugging Face folder"):
        load_model(tmp_path)
