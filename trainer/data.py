"""Token shards as training batches: validated, memory-mapped, split by rank, resumable to the window.

Before the first step `open_shards` checks the manifest (format, vocabulary, EOT, every shard's header,
size, token count and, by default, sha256), that its vocabulary matches the model's and, with or without
checksums, that every token id is inside it, so a bad data set fails in seconds rather than hours in. Shards
are memory-mapped (`pipelines.shards.read_shard`): no copy in RAM, the page cache is shared by the ranks of a node.

Order. A training window is `seq_len + 1` consecutive tokens starting at a multiple of `seq_len` inside a
shard (inputs and targets shifted by one), so windows never cross a shard boundary and each token is a
target at most once per epoch; the tail of a shard shorter than `seq_len` tokens is skipped (under 0.001%
of a 100M-token shard at seq_len 1024). Windows do cross document boundaries (the EOT between them stays),
as in llm.c and nanoGPT. Each epoch visits the shards in a seeded random order and the windows of each
shard in a seeded random order, so the order depends only on the seed and the memory needed is one
permutation per shard (800 KB for a 100M-token shard at seq_len 1024), not one per data set.

Ranks. All ranks walk the same global stream of windows; each micro step consumes `micro_batch x
world_size` windows and rank r takes the r-th slice, so ranks read disjoint windows and a run on N
processes sees exactly the windows of a 1-process run with N times the gradient accumulation. The
position (epoch, shard cursor, window cursor) is the same on every rank: `state_dict()` from rank 0 goes
into the checkpoint and `load_state_dict()` restores it exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.tokenizer import EOT_TOKEN
from pipelines.common.hashing import file_sha256
from pipelines.shards import ShardError, check_token_range, load_manifest, manifest_path, read_shard, verify


class DataError(ValueError):
    """A shard set that cannot be trained on; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ShardSet:
    """A verified shard set: its manifest, where it lives and the memory maps of each split."""

    manifest_path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    train: list[np.memmap]
    val: list[np.memmap]
    train_paths: list[Path]
    val_paths: list[Path]
    val_by_source: dict[str, list[np.memmap]]  # a mixture's val shards per source (`pipelines.mix`); else empty


def open_shards(data: str | Path, vocab_size: int, checksums: bool = True) -> ShardSet:
    """Check a shard set against its manifest and the model, then memory-map its shards.

    Args:
        data: manifest.json or its directory.
        vocab_size: the model's vocabulary size; the manifest's must equal it.
        checksums: recompute every shard's sha256 (reads each byte once); every token id is checked against the
            vocabulary either way.

    Returns:
        The verified, memory-mapped shard set.

    Raises:
        DataError: corrupt or missing shards, an invalid manifest, or a vocabulary mismatch.
    """
    path = manifest_path(data)
    try:
        manifest = load_manifest(path)
    except (ShardError, OSError) as e:
        raise DataError(str(e)) from e
    if manifest.get("tokenizer", "gpt2") != "gpt2":
        raise DataError(f"{path}: shards use tokenizer {manifest['tokenizer']!r}, the model expects 'gpt2'")
    if manifest["vocab_size"] != vocab_size:
        raise DataError(
            f"{path}: manifest vocab_size {manifest['vocab_size']} does not match the model's vocab_size {vocab_size}"
        )
    if manifest["eot"] != EOT_TOKEN:
        raise DataError(f"{path}: manifest eot {manifest['eot']} is not GPT-2's <|endoftext|> ({EOT_TOKEN})")
    try:
        manifest = verify(path, checksums=checksums)
        if not checksums:  # an id >= the vocabulary fails at step 1 (IndexError; a device-side assert on GPU)
            for entry in manifest["shards"]:
                check_token_range(path.parent / entry["path"], manifest["vocab_size"])
    except (ShardError, OSError) as e:
        raise DataError(str(e)) from e
    splits: dict[str, list[Path]] = {"train": [], "val": []}
    by_source: dict[str, list[Path]] = {s["name"]: [] for s in manifest.get("sources") or []}
    for i, entry in enumerate(manifest["shards"]):
        if entry.get("split") not in splits:
            raise DataError(f"{path}: shard record {i} has split {entry.get('split')!r}, expected 'train' or 'val'")
        splits[entry["split"]].append(path.parent / entry["path"])
        if entry["split"] == "val" and entry.get("source") in by_source:
            by_source[entry["source"]].append(path.parent / entry["path"])
    if not splits["train"]:
        raise DataError(f"{path}: the manifest lists no train shards")
    return ShardSet(
        manifest_path=path.resolve(),
        manifest=manifest,
        manifest_sha256=file_sha256(path),
        train=[read_shard(p) for p in splits["train"]],
        val=[read_shard(p) for p in splits["val"]],
        train_paths=splits["train"],
        val_paths=splits["val"],
        val_by_source={name: [read_shard(p) for p in paths] for name, paths in by_source.items() if paths},
    )


def _windows(mm: np.ndarray, seq_len: int) -> int:
    return max(0, (mm.size - 1) // seq_len)


def _to_batch(shards: list[np.ndarray], picks: list[tuple[int, int]], seq_len: int) -> tuple[torch.Tensor, ...]:
    """Stack (shard, window) picks into input and target tensors of shape (B, seq_len)."""
    rows = np.stack([shards[s][w * seq_len : w * seq_len + seq_len + 1] for s, w in picks]).astype(np.int64)
    batch = torch.from_numpy(rows)  # (B, T + 1)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()


class TrainLoader:
    """Endless, seeded, rank-sliced stream of training batches with an exact, saveable position."""

    def __init__(
        self, shards: list[np.ndarray], seq_len: int, micro_batch: int, rank: int, world_size: int, seed: int
    ):
        """Set up the stream.

        Args:
            shards: memory-mapped train shards (uint16).
            seq_len: tokens per sequence.
            micro_batch: sequences per rank per call.
            rank: this process's rank.
            world_size: number of ranks.
            seed: the seed of the order.

        Raises:
            DataError: when the shards hold no full window.
        """
        self.shards, self.seq_len, self.micro_batch = shards, seq_len, micro_batch
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.n_windows = [_windows(mm, seq_len) for mm in shards]
        if sum(self.n_windows) == 0:
            raise DataError(f"the train shards hold no sequence of seq_len + 1 = {seq_len + 1} tokens")
        self.epoch, self.shard_cursor, self.window_cursor = 0, 0, 0
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    def _shard_order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))

    def _window_order(self, shard: int) -> np.ndarray:
        key = (self.epoch, shard)
        if self._cache is None or self._cache[0] != key:
            rng = np.random.default_rng([self.seed, self.epoch, shard + 1])
            self._cache = (key, rng.permutation(self.n_windows[shard]))
        return self._cache[1]

    def _take(self, n: int) -> list[tuple[int, int]]:
        """Advance the global stream by n windows and return them as (shard, window) pairs."""
        picks: list[tuple[int, int]] = []
        while len(picks) < n:
            order = self._shard_order()
            if self.shard_cursor >= len(order):
                self.epoch, self.shard_cursor, self.window_cursor = self.epoch + 1, 0, 0
                continue
            shard = int(order[self.shard_cursor])
            windows = self._window_order(shard)
            take = min(n - len(picks), len(windows) - self.window_cursor)
            picks.extend((shard, int(w)) for w in windows[self.window_cursor : self.window_cursor + take])
            self.window_cursor += take
            if self.window_cursor >= len(windows):
                self.shard_cursor, self.window_cursor = self.shard_cursor + 1, 0
        return picks

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return this rank's next (inputs, targets), each (micro_batch, seq_len) int64."""
        picks = self._take(self.micro_batch * self.world_size)
        mine = picks[self.rank * self.micro_batch : (self.rank + 1) * self.micro_batch]
        return _to_batch(self.shards, mine, self.seq_len)

    def state_dict(self) -> dict[str, int]:
        """The position in the stream (identical on every rank)."""
        return {
            "epoch": self.epoch,
            "shard_cursor": self.shard_cursor,
            "window_cursor": self.window_cursor,
            "seed": self.seed,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a position saved by `state_dict`.

        Raises:
            DataError: when the saved position was made with another seed or sequence length.
        """
        if state["seed"] != self.seed or state["seq_len"] != self.seq_len:
            raise DataError(
                f"loader state was saved with seed {state['seed']} and seq_len {state['seq_len']}, "
                f"this run uses seed {self.seed} and seq_len {self.seq_len}"
            )
        self.epoch, self.shard_cursor, self.window_cursor = (
            state["epoch"],
            state["shard_cursor"],
            state["window_cursor"],
        )


def val_batches(
    shards: list[np.ndarray], seq_len: int, micro_batch: int, max_tokens: int, rank: int, world_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return this rank's validation batches: the first windows of the val split, in order, strided by rank.

    The same windows are used at every evaluation, so successive val losses are comparable.

    Args:
        shards: memory-mapped val shards.
        seq_len: tokens per sequence.
        micro_batch: sequences per batch.
        max_tokens: validation tokens per evaluation over all ranks (rounded down to whole windows).
        rank: this process's rank.
        world_size: number of ranks.
    """
    picks = [(s, w) for s, mm in enumerate(shards) for w in range(_windows(mm, seq_len))]
    picks = picks[: max(1, max_tokens // seq_len)][rank::world_size]
    return [_to_batch(shards, picks[i : i + micro_batch], seq_len) for i in range(0, len(picks), micro_batch)]


def describe(shards: ShardSet) -> str:
    """One line on what is being trained on, for the log."""
    m = shards.manifest
    return (
        f"data: {shards.manifest_path} | {len(shards.train)} train / {len(shards.val)} val shards | "
        f"tokens {json.dumps(m.get('total_tokens', {}))}"
    )
