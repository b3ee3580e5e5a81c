"""Hostile inputs to tokenize, train, sample and eval (issue 11, cases 8, 9, 12, 15, 16 and those that held).

Each case runs the real command and asserts the exit code and a message naming the file and the problem. Shards
come from `demo_texts` through the real tokenizer; models are tiny and seeded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from model import tokenizer
from model.gpt2 import GPT, config_from_preset
from orchestration.demo_data import demo_texts
from pipelines.shards import write_shard
from tests.test_hellaswag import write_items
from tests.trainer_helpers import TINY_FLAGS
from trainer.hf import export_hf


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real shard set (train and val) from 200 demo texts."""
    base = tmp_path_factory.mktemp("shards")
    (base / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in demo_texts(200)))
    result = invoke("tokenize", "--input", str(base / "docs.jsonl"), "--output", str(base / "out"),
                    "--shard-tokens", "20000", "--val-tokens", "2000")  # fmt: skip
    assert result.exit_code == 0, result.output
    return base / "out"


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return export_hf(GPT(config_from_preset("tiny")).eval(), tmp_path_factory.mktemp("hf") / "hf")


def copy_shards(shards: Path, tmp_path: Path) -> Path:
    target = tmp_path / "shards"
    target.mkdir(parents=True)
    for path in shards.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


def train(data: Path, out: Path, *extra: str):
    return invoke("train", "--data", str(data), "--out", str(out), *TINY_FLAGS, "--steps", "2", *extra)


class Payload:
    """Pickles as a call to os.system: what a malicious checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_shard_tokens_below_one_context_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": demo_texts(1)[0]}) + "\n")
    result = invoke("tokenize", "--input", str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out"),
                    "--shard-tokens", "1")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: shard_tokens must be >= 1,025 (one GPT-2 context and its next token)")
    assert not (tmp_path / "out").exists()


def test_a_corpus_of_empty_texts_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text('{"text": ""}\n{"text": ""}\n{"text": ""}\n')
    result = invoke("tokenize", "--input", str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert (
        f"error: {tmp_path / 'docs.jsonl'}: all 3 documents are empty; there is no text to tokenize" in result.output
    )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_token_ids_outside_the_vocabulary_fail_before_step_1(shards: Path, tmp_path: Path) -> None:
    data = copy_shards(shards, tmp_path)
    manifest = json.loads((data / "manifest.json").read_text())
    entry = manifest["shards"][0]
    tokens = np.fromfile(data / entry["path"], dtype="<u2", offset=1024)
    tokens[17] = 60_000
    entry["sha256"] = write_shard(data / entry["path"], tokens)  # a consistent manifest, checksums pass
    (data / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "nocheck.yaml").write_text("verify_checksums: false\n")
    for extra in ([], ["--config", str(tmp_path / "nocheck.yaml")]):
        result = train(data, tmp_path / f"run{len(extra)}", *extra)
        assert result.exit_code == 2, result.output
        assert f"{data / entry['path']}: token 17 is id 60000, outside the vocabulary (vocab_size 50257)" in (
            result.output
        )
        assert "IndexError" not in result.output


def test_damaged_shards_and_a_vocabulary_mismatch(shards: Path, tmp_path: Path) -> None:
    """Already held: flipped bytes fail the checksum; a manifest for another vocabulary is refused."""
    data = copy_shards(shards, tmp_path)
    manifest = json.loads((data / "manifest.json").read_text())
    path = data / manifest["shards"][0]["path"]
    raw = bytearray(path.read_bytes())
    raw[2000] ^= 0x01
    path.write_bytes(bytes(raw))
    result = invoke("verify-shards", str(data))
    assert result.exit_code == 1 and f"{path}: sha256 does not match the manifest" in result.output
    result = train(data, tmp_path / "run")
    assert result.exit_code == 2 and f"{path}: sha256 does not match the manifest" in result.output

    other = copy_shards(shards, tmp_path / "other")
    manifest["vocab_size"] = 32_000
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = train(other, tmp_path / "run2")
    assert result.exit_code == 2 and "manifest vocab_size 32000 does not match the model's vocab_size 50257" in (
        result.output
    )


def test_malicious_pickles_are_refused_with_the_reason(hf_model: Path, shards: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "evil-hf"
    folder.mkdir()
    (folder / "config.json").write_text((hf_model / "config.json").read_text())
    torch.save({"transformer.wte.weight": Payload(marker)}, folder / "pytorch_model.bin")
    items = write_items(tmp_path / "items.jsonl")
    for command in (["sample", "--checkpoint", str(folder)],
                    ["eval", "hellaswag", "--checkpoint", str(folder), "--data", str(items)]):  # fmt: skip
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: {folder / 'pytorch_model.bin'}: refused: it holds pickled Python")
        assert "weights_only=False" not in result.output and "loading those can run arbitrary code" in result.output

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": Payload(marker), "step": 1}, run / "checkpoints" / "step_000001.pt")
    result = train(shards, run)
    assert result.exit_code == 2, result.output
    assert f"{run / 'checkpoints' / 'step_000001.pt'}: refused" in result.output
    assert "weights_only=False" not in result.output
    assert not marker.exists()


def test_exported_model_is_a_release_transformers_can_use(hf_model: Path) -> None:
    from transformers import AutoTokenizer, pipeline

    assert {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} <= {
        p.name for p in hf_model.iterdir()
    }
    hf_tokenizer = AutoTokenizer.from_pretrained(hf_model)
    text = "Hello world, café <|endoftext|> naïve"
    assert hf_tokenizer(text)["input_ids"] == tokenizer.get_encoding().encode(text, allowed_special="all")
    assert hf_tokenizer.eos_token_id == tokenizer.EOT_TOKEN

    generate = pipeline("text-generation", model=str(hf_model), device="cpu")
    prompt = "The most important thing about the web is"
    theirs = generate(prompt, max_new_tokens=16, do_sample=False)[0]["generated_text"]
    ours = invoke("sample", "--checkpoint", str(hf_model), "--prompt", prompt, "--temperature", "0",
                  "--num-samples", "1", "--max-new-tokens", "16")  # fmt: skip
    assert ours.exit_code == 0, ours.output
    assert theirs != prompt and ours.output.strip() == f"--- sample 0 ---\n{theirs}"


def test_hellaswag_without_data_caches_under_home_and_leaves_nothing_on_failure(
    hf_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FINEFORGE_HOME", str(home))
    monkeypatch.setenv("FINEFORGE_HELLASWAG_URL", "http://127.0.0.1:9/hellaswag_val.jsonl")  # refused at once
    result = invoke("eval", "hellaswag", "--checkpoint", str(hf_model))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: hellaswag: cannot download http://127.0.0.1:9/hellaswag_val.jsonl")
    assert "--data FILE to `fineforge eval hellaswag`" in result.output
    assert list(work.iterdir()) == [] and not home.exists()


def test_outputs_that_are_files(shards: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": demo_texts(1)[0]}) + "\n")
    result = invoke("tokenize", "--input", str(tmp_path / "docs.jsonl"), "--output", str(taken))
    assert (
        result.exit_code == 2
        and result.output == f"error: {taken}: is a file, not a folder; give a folder as the output\n"
    )
    result = train(shards, taken)
    assert result.exit_code == 2 and f"{taken}: is a file, not a folder" in result.output
    assert taken.read_text() == "a file"
