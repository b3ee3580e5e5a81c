"""The llm.c shard format: an independent reader agrees with ours, and every kind of damage is named.

The agreement is checked on the built-in web text and, where it exists, on the shared web-text.jsonl.gz
(`web_text`); the damage tests cut, patch and flip bytes of a shard set made from the built-in text.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from model.tokenizer import EOT_TOKEN, encode
from pipelines.shards import ShardError, read_shard, verify, write_shard
from pipelines.tokenize import run_tokenize
from tests.builtin_text import TextSource

# llm.c dev/data/data_common.py: a 256-word int32 header [magic, version, token count, 0...], then uint16 tokens.
LLMC_MAGIC = 20240520
LLMC_VERSION_GPT2 = 1
LLMC_HEADER_BYTES = 256 * 4


def read_llmc_shard(path: Path) -> np.ndarray:
    """Read a shard from llm.c's published layout alone, without pipelines.shards."""
    data = path.read_bytes()
    assert len(data) >= LLMC_HEADER_BYTES, f"{path}: shorter than the header"
    words = struct.unpack("<256i", data[:LLMC_HEADER_BYTES])
    assert words[0] == LLMC_MAGIC and words[1] == LLMC_VERSION_GPT2, f"{path}: header {words[:3]}"
    assert len(data) == LLMC_HEADER_BYTES + 2 * words[2], f"{path}: size does not match the header count"
    assert np.frombuffer(data[:LLMC_HEADER_BYTES], dtype="<i4")[2] == words[2]
    return np.frombuffer(data, dtype="<u2", offset=LLMC_HEADER_BYTES)


def tokenize_in_order(source: TextSource, out: Path) -> Path:
    """`source` tokenized in input order into 60k-token shards (documents span shard boundaries)."""
    run_tokenize([str(source.path)], out, shard_tokens=60_000, val_tokens=0, seed=None)
    return out


@pytest.fixture(scope="module")
def shard_dir(builtin_text: TextSource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in web text as shards, for the tests that damage a copy."""
    return tokenize_in_order(builtin_text, tmp_path_factory.mktemp("shards"))


def test_independent_reader_gets_the_same_tokens(web_text: TextSource, tmp_path: Path) -> None:
    out = tokenize_in_order(web_text, tmp_path)
    manifest = verify(out)
    paths = [out / s["path"] for s in manifest["shards"]]
    assert len(paths) > 2
    ours = np.concatenate([np.asarray(read_shard(p)) for p in paths])
    independent = np.concatenate([read_llmc_shard(p) for p in paths])
    expected = np.concatenate([np.array([EOT_TOKEN, *encode(t)], dtype=np.uint16) for t in web_text.texts])
    np.testing.assert_array_equal(independent, expected)
    np.testing.assert_array_equal(ours, expected)
    assert read_llmc_shard(paths[0])[0] == EOT_TOKEN


def test_written_shard_round_trips(tmp_path: Path) -> None:
    tokens = np.array([EOT_TOKEN, 0, 1, 65535, 31373, 995], dtype=np.int64)
    sha = write_shard(tmp_path / "train_000000.bin", tokens)
    np.testing.assert_array_equal(read_llmc_shard(tmp_path / "train_000000.bin"), tokens)
    np.testing.assert_array_equal(read_shard(tmp_path / "train_000000.bin"), tokens)
    assert len(sha) == 64
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("tokens", [np.array([[1, 2]]), np.array([1, 65536]), np.array([-1, 3])])
def test_write_rejects_tokens_outside_uint16(tmp_path: Path, tokens: np.ndarray) -> None:
    with pytest.raises(ShardError, match="bad.bin"):
        write_shard(tmp_path / "bad.bin", tokens)


def _damaged_copy(shard_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shard set and the path of its first shard, to be damaged by the test."""
    copy = tmp_path / "copy"
    shutil.copytree(shard_dir, copy)
    return copy, copy / "train_000000.bin"


def _patch_word(path: Path, word: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(4 * word)
        f.write(struct.pack("<i", value))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-2]), r"size \d+ bytes, but the header promises \d+ tokens"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), r"truncated shard \(100 bytes"),
        (lambda p: _patch_word(p, 0, 20240521), "bad magic 20240521"),
        (lambda p: _patch_word(p, 1, 2), "unsupported shard version 2"),
        (lambda p: _patch_word(p, 2, -5), "negative token count"),
    ],
    ids=["truncated-body", "truncated-header", "wrong-magic", "wrong-version", "negative-count"],
)
def test_damaged_header_or_size_is_named(shard_dir: Path, tmp_path: Path, damage, message: str) -> None:
    copy, shard = _damaged_copy(shard_dir, tmp_path)
    damage(shard)
    for check in (read_shard, lambda _: verify(copy, checksums=False)):
        with pytest.raises(ShardError, match=message) as err:
            check(shard)
        assert str(shard) in str(err.value)


def test_checksum_mismatch_is_named(shard_dir: Path, tmp_path: Path) -> None:
    copy, shard = _damaged_copy(shard_dir, tmp_path)
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01  # same size, same header: only the checksum can tell
    shard.write_bytes(bytes(data))
    verify(copy, checksums=False)
    with pytest.raises(ShardError, match="sha256 does not match") as err:
        verify(copy)
    assert str(shard) in str(err.value)


def test_token_beyond_vocabulary_is_named(tmp_path: Path, shard_dir: Path) -> None:
    copy, shard = _damaged_copy(shard_dir, tmp_path)
    tokens = np.array(read_shard(shard))
    tokens[5] = 60000
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = write_shard(shard, tokens)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"token 5 is id 60000, outside the vocabulary \(vocab_size 50257\)") as err:
        verify(copy)
    assert str(shard) in str(err.value)


def test_missing_shard_manifest_or_inconsistent_totals_are_named(shard_dir: Path, tmp_path: Path) -> None:
    copy, shard = _damaged_copy(shard_dir, tmp_path)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["total_tokens"]["train"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"total_tokens\['train'\]"):
        verify(copy, checksums=False)
    shard.unlink()
    with pytest.raises(ShardError, match="listed in the manifest but missing") as err:
        verify(copy, checksums=False)
    assert str(shard) in str(err.value)
    manifest_path.unlink()
    with pytest.raises(ShardError, match="no manifest"):
        verify(copy)
