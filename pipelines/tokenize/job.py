"""Tokenize documents into GPT-2 token shards (llm.c format), deterministically, in parallel and resumably.

Input: a curate output folder (its `data/*.parquet`; `summary.json` supplies the source run id and config
hash), or any Parquet / JSONL files, folders or globs, local or fsspec URLs (`s3://`, `hf://`, ...), with a
string column of text (`text` by default). Output: `train_NNNNNN.bin`, `val_NNNNNN.bin` and `manifest.json`
in the layout `pipelines.shards` documents. How to run: `fineforge tokenize --input DIR --output SHARDS`,
or `run_tokenize(...)`; the CLI, the demo and the Prefect flows all run `TokenizeStage` through
`pipelines.common.stage.run_stage` (the flows make one task of each of its steps).

The job runs in three steps, each resumable, each leaving its state in `OUTPUT/.tokenize/`:

1. tokenize: documents are read in input order (files sorted by name) and encoded with GPT-2 BPE
   (`encode_to_numpy`, ordinary text: a literal "<|endoftext|>" in a document is encoded as text, never as
   the EOT id), in batches of `BATCH_DOCS` handed to a pool of `workers` processes. Results are consumed in
   submission order, so the output never depends on the worker count. Tokens go to a scratch store of chunks
   (`chunk_NNNNNN.tok.npy` plus per-document lengths `chunk_NNNNNN.docs.npy`, about `CHUNK_TOKENS` tokens
   each); a crash loses at most the chunk being filled.
2. plan: the document order and the split. With a seed, documents are sorted by `splitmix64(index ^
   splitmix64(seed))`, a bijection on 64-bit integers, so the order has no ties and depends on nothing but
   the seed and the number of documents (not on numpy's RNG streams, which numpy does not promise to keep
   across versions). `seed=None` keeps input order. Validation takes whole documents from the front of that
   order until it holds at least `val_tokens` tokens (EOTs counted); the default is 1% of all tokens, the
   share llm.c's FineWeb script gives it (the first 100M-token shard of 10B). Each split is then one stream
   of `[EOT, doc...]` units cut every `shard_tokens` tokens, so every shard but a split's last is full and a
   document may continue in the next shard, as in llm.c. The plan (`plan.json`, `order.npy`) is written once.
3. shards: each planned shard is gathered from the store (by the pool only for jobs of over
   `PARALLEL_SHARD_TOKENS`: gathering is memory-speed), written atomically and recorded with its sha256 in
   `.tokenize/done/`; a rerun skips shards whose record and file size match and redoes the rest, and first
   deletes the temporary file (`<shard or manifest.json>.<hex>.tmp`) that a run killed in the middle of a write left
   behind. The manifest is written last; then the scratch store is deleted.

Progress: `on_progress` gets a `pipelines.common.progress.Progress` snapshot per batch of documents in step 1
(documents done out of the Parquet row count, so with an ETA for curate output) and as step 3 writes shards.

The output bytes depend only on the input documents and the settings in `TokenizeSettings` (hashed into the
manifest's `config_hash`), never on `workers` or on where a previous run crashed. A rerun into a finished
folder with the same inputs and settings returns its manifest (`is_complete`); `claim` refuses a finished folder
with different settings or inputs unless `overwrite` is set, while an unfinished run of other settings is
discarded.

Cost: GPT-2 BPE dominates (about 2-4 M tokens/s per core here). The store doubles the disk needed while the
job runs (2 bytes per token, as much as the shards); in exchange the corpus never has to fit in memory, the
shuffle is global, and the plan knows every shard boundary before any shard is written. A spawned worker
costs about 0.6 s of CPU to start (imports, then building the BPE ranks), so extra workers pay off from a
few million tokens up.
`python -m benchmarks.tokenize_rate` measures the end-to-end rate against raw `encode_ordinary_batch`.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import multiprocessing
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.tokenizer import EOT_TOKEN, VOCAB_SIZE, get_encoding
from pipelines.common.files import TMP_PATTERN, atomic_write, make_output_dir, read_json, write_json_atomic
from pipelines.common.progress import Progress, ProgressCallback, StepClock, ignore_progress, overall_fraction
from pipelines.common.stage import Stage, Step, run_stage
from pipelines.shards import (
    HEADER_BYTES,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    TOKEN_DTYPE,
    Manifest,
    ShardError,
    load_manifest,
    made_by,
    plan_split,
    unit_starts,
    verify,
    write_manifest,
    write_shard,
)
from pipelines.tokenize.inputs import count_documents, iter_text_batches, resolve_inputs
from pipelines.tokenize.settings import TokenizeError, TokenizeSettings

log = logging.getLogger(__name__)

BATCH_DOCS = 256  # documents per pool task: large enough to amortize pickling, small enough to balance workers
CHUNK_TOKENS = 1 << 25  # tokens per scratch chunk (64 MiB); bounds memory and the work lost to a crash
PARALLEL_SHARD_TOKENS = 500_000_000  # shard writing uses one more process per this many tokens (about 5 s each)
DEFAULT_VAL_FRACTION = 0.01  # llm.c fineweb.py: the first 100M-token shard of FineWeb-10B is validation
MAX_SHARDS = 100_000  # per split; llm.c's FineWeb-10B has 103 shards of 100M tokens
WORK_DIR = ".tokenize"
_SHARD_NAME = r"(train|val)_\d{6}\.bin"
_TEMP_SUFFIX = rf"({TMP_PATTERN}|\.tmp)"  # plain `.tmp`: older FineForge
SHARD_FILE = re.compile(rf"{_SHARD_NAME}{_TEMP_SUFFIX}?")
# What a run killed mid-write leaves in the output folder: a shard's or the manifest's temporary sibling.
LEFTOVER_FILE = re.compile(rf"({_SHARD_NAME}|{re.escape(MANIFEST_NAME)}){_TEMP_SUFFIX}")
# Share of a run's time per step: BPE runs at 2-4 M tokens/s per core, gathering shards at about 100 M tokens/s
# (see above), and ordering is one argsort over the documents.
STEP_WEIGHTS = {"tokenize": 0.97, "order": 0.01, "shards": 0.02}


def _encode_text(text: str) -> np.ndarray:
    enc = get_encoding()
    try:
        # Ordinary text: no special tokens recognized, exactly `encode_ordinary` without a Python list.
        return enc.encode_to_numpy(text, disallowed_special=())
    except UnicodeEncodeError:
        # Lone surrogates: repaired as tiktoken's encode_ordinary repairs them.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return enc.encode_to_numpy(text, disallowed_special=())


def encode_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode documents with GPT-2 BPE, ordinary text only (no special tokens, no EOT added).

    Args:
        texts: the documents.

    Returns:
        `(lengths, tokens)`: uint32 token count per document and the uint16 tokens of all documents, concatenated.
    """
    arrays = [_encode_text(t) for t in texts]
    lengths = np.fromiter((a.size for a in arrays), dtype=np.uint32, count=len(arrays))
    tokens = np.concatenate(arrays).astype(TOKEN_DTYPE) if arrays else np.empty(0, TOKEN_DTYPE)
    return lengths, tokens


def _init_worker() -> None:
    get_encoding()


def _map_ordered(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """Yield `fn(item)` for each item in order, computed by `workers` spawned processes (in-process for 1).

    At most `2 * workers` items are in flight, so an input of any size streams through bounded memory
    (`Pool.imap` would read the whole iterable ahead). Spawned, not forked: safe inside threaded callers
    such as Prefect's task runners.
    """
    if workers == 1:
        yield from map(fn, items)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _save_npy(path: Path, array: np.ndarray) -> None:
    # np.save's own write (`tofile`) reports a full disk as "N requested and M written", without errno or file;
    # Python's write raises ENOSPC, which `run_stage` reports as the folder's full disk.
    array = np.ascontiguousarray(array)
    with atomic_write(path) as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        f.write(memoryview(array).cast("B"))


def _chunk_paths(chunks: Path, index: int) -> tuple[Path, Path]:
    return chunks / f"chunk_{index:06d}.tok.npy", chunks / f"chunk_{index:06d}.docs.npy"


class _ChunkStore:
    """The scratch token store: chunks of concatenated document tokens plus per-document lengths.

    A chunk's `.docs.npy` is written after its `.tok.npy`, so an existing `.docs.npy` marks a complete chunk;
    complete chunks always form a prefix, because chunks are written in document order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done_path = path / "done.json"

    def completed(self) -> tuple[int, int]:
        """Return (complete chunks, documents they hold), deleting leftovers of an interrupted chunk."""
        self.path.mkdir(parents=True, exist_ok=True)
        count = documents = 0
        while (docs := _chunk_paths(self.path, count)[1]).exists():
            documents += np.load(docs, mmap_mode="r").size
            count += 1
        for leftover in self.path.glob("chunk_*"):
            if int(leftover.name.split("_")[1].split(".")[0]) >= count:
                leftover.unlink()
        return count, documents

    def write(self, index: int, lengths: list[np.ndarray], tokens: list[np.ndarray]) -> None:
        """Write chunk `index` atomically, tokens first."""
        tok_path, docs_path = _chunk_paths(self.path, index)
        _save_npy(tok_path, np.concatenate(tokens))
        _save_npy(docs_path, np.concatenate(lengths))

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the token count of every document and the chunk number holding it, in document order."""
        count = json.loads(self.done_path.read_text())["chunks"]
        per_chunk = [np.load(_chunk_paths(self.path, i)[1]) for i in range(count)]
        lengths = np.concatenate(per_chunk) if per_chunk else np.empty(0, np.uint32)
        chunk_of = np.repeat(np.arange(count, dtype=np.int32), [a.size for a in per_chunk])
        return lengths, chunk_of


def document_order(n_docs: int, seed: int | None) -> np.ndarray:
    """Return the order in which documents go into the shards: a seeded shuffle, or input order for None.

    Documents are sorted by `splitmix64(i ^ splitmix64(seed))` (Steele et al. 2014's SplitMix64 finalizer):
    a bijection on uint64, so keys never tie and the order is fully defined by `seed` and `n_docs`.

    Args:
        n_docs: number of documents.
        seed: shuffle seed in [0, 2**64), or None for input order.

    Returns:
        int64 array, a permutation of `range(n_docs)`.
    """
    index = np.arange(n_docs, dtype=np.uint64)
    if seed is None:
        return index.astype(np.int64)
    salt = _splitmix64(np.array([seed], dtype=np.uint64))
    return np.argsort(_splitmix64(index ^ salt), kind="stable").astype(np.int64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)  # uint64 array arithmetic wraps modulo 2**64, as intended
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def validation_documents(unit_tokens: np.ndarray, val_tokens: int | None) -> int:
    """Return how many documents from the front of the order form the validation split.

    Args:
        unit_tokens: tokens of each document plus its EOT, in shard order.
        val_tokens: tokens wanted; None for `DEFAULT_VAL_FRACTION` of the total (never all documents), 0 for none.

    Returns:
        The smallest count whose documents hold at least the wanted tokens.

    Raises:
        TokenizeError: an explicit `val_tokens` that would leave no training document.
    """
    n_docs = unit_tokens.size
    if val_tokens == 0 or n_docs == 0:
        return 0
    total = int(unit_tokens.sum())
    target = math.ceil(total * DEFAULT_VAL_FRACTION) if val_tokens is None else val_tokens
    count = int(np.searchsorted(np.cumsum(unit_tokens), target, side="left")) + 1
    if count < n_docs:
        return count
    if val_tokens is None:
        return n_docs - 1
    raise TokenizeError(f"val_tokens={val_tokens} leaves no training documents (the corpus has {total} tokens)")


class _ShardBuilder:
    """Assembles planned shards from the chunk store (one per process, loaded once)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.store = _ChunkStore(work / "chunks")
        plan = json.loads((work / "plan.json").read_text())
        self.shard_tokens = plan["shard_tokens"]
        lengths, self.chunk_of = self.store.lengths()
        self.lengths = lengths.astype(np.int64)
        self.offset = np.zeros(lengths.size, dtype=np.int64)  # start of each document within its chunk
        np.cumsum(self.lengths[:-1], out=self.offset[1:])
        first_doc = np.searchsorted(self.chunk_of, np.arange(self.chunk_of.max(initial=-1) + 1))
        self.offset -= self.offset[first_doc][self.chunk_of]
        order = np.load(work / "order.npy")
        k = plan["val_documents"]
        self.docs = {"val": order[:k], "train": order[k:]}
        self.starts = {split: unit_starts(self.lengths[d] + 1) for split, d in self.docs.items()}

    def tokens(self, split: str, index: int) -> np.ndarray:
        """Return the tokens of shard `index` of `split`: a window of the split's [EOT, doc...] stream."""
        starts, docs = self.starts[split], self.docs[split]
        lo = index * self.shard_tokens
        hi = min(lo + self.shard_tokens, int(starts[-1]))
        out = np.empty(hi - lo, dtype=TOKEN_DTYPE)
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, hi, side="left"))  # units [first, last) overlap the window
        units = np.arange(first, last)
        eot = starts[units]
        out[eot[eot >= lo] - lo] = EOT_TOKEN
        # Visit units grouped by chunk, so each chunk is mapped once per shard.
        by_chunk = units[np.argsort(self.chunk_of[docs[units]], kind="stable")]
        mapped_chunk, tokens = -1, None
        for unit in by_chunk:
            doc = docs[unit]
            begin = int(starts[unit]) + 1  # first token of the document in the stream
            a, b = max(begin, lo), min(begin + int(self.lengths[doc]), hi)
            if b <= a:
                continue
            if self.chunk_of[doc] != mapped_chunk:
                mapped_chunk = self.chunk_of[doc]
                tokens = np.load(_chunk_paths(self.store.path, int(mapped_chunk))[0], mmap_mode="r")
            src = int(self.offset[doc]) + a - begin
            out[a - lo : b - lo] = tokens[src : src + b - a]
        return out


def _write_planned_shards(args: tuple[str, str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Write a group of planned shards and their completion records (one builder for the group); return them."""
    work, output, shards = args
    builder = _ShardBuilder(Path(work))
    records = []
    for shard in shards:
        tokens = builder.tokens(shard["split"], shard["index"])
        if tokens.size != shard["tokens"]:
            raise ShardError(f"{shard['path']}: assembled {tokens.size} tokens, the plan says {shard['tokens']}")
        record = {**shard, "sha256": write_shard(Path(output) / shard["path"], tokens)}
        write_json_atomic(Path(work) / "done" / f"{shard['path']}.json", record)
        log.info("wrote %s (%d tokens)", record["path"], record["tokens"])
        records.append(record)
    return records


class TokenizeStage(Stage):
    """One tokenize run as a `pipelines.common.stage.Stage`; `run_tokenize` runs it through `run_stage`.

    The constructor only stores its arguments: `plan()` resolves the inputs, `is_complete()` reads the output
    folder, and only `claim()` may delete anything there (its own stale work, or with `overwrite` another run's
    shards and manifest, never other files).

    Args:
        inputs: curate output folders, Parquet/JSONL files, folders, globs or fsspec URLs.
        output_dir: where shards, `manifest.json` and the `.tokenize/` work state go.
        settings: the settings that decide the output bytes.
        workers: tokenizer processes (the output does not depend on it).
        overwrite: replace the shards and work state of another run in `output_dir` instead of refusing.
        on_progress: called with a progress snapshot per batch of documents and as shards are written.

    Raises:
        TokenizeError: bad settings, or (from `claim`) an output folder holding another run's shards.
        InputError: (from `plan`) missing or unsupported inputs.
    """

    name = "tokenize"

    def __init__(
        self,
        inputs: list[str],
        output_dir: Path,
        settings: TokenizeSettings,
        workers: int = 1,
        overwrite: bool = False,
        on_progress: ProgressCallback = ignore_progress,
    ) -> None:
        if workers < 1:
            raise TokenizeError(f"workers must be >= 1, got {workers}")
        self.inputs = list(inputs)
        self.output_dir = Path(output_dir)
        self.work = self.output_dir / WORK_DIR
        self.settings = settings
        self.workers = workers
        self.overwrite = overwrite
        self.on_progress = on_progress
        self._clock = StepClock()
        self._rows: dict[str, dict[str, Any]] = {}
        self.store = _ChunkStore(self.work / "chunks")

    def plan(self) -> None:
        """Resolve the input files and fix this run's job record (settings hash, inputs with sizes and stamps)."""
        self.source = resolve_inputs(self.inputs)
        self.job = {
            "config_hash": self.settings.config_hash(),
            "settings": self.settings.model_dump(),
            "source": self.source.manifest_entry(),
            "inputs": [asdict(f) for f in self.source.files],
        }

    def is_complete(self) -> bool:
        """True when the folder holds a manifest made by exactly this job, its shards intact in size."""
        return made_by(self.output_dir, self.work / "job.json", self.job)

    def result(self) -> dict[str, Any]:
        """The finished shard set's manifest."""
        return load_manifest(self.output_dir / MANIFEST_NAME)

    def output_folder(self) -> Path:
        """The output folder (locked while the run claims and writes it)."""
        return self.output_dir

    def claim(self) -> None:
        """Record this job in the output folder, or check that the folder's unfinished run is this one.

        Raises:
            TokenizeError: the folder holds a finished shard set of other settings or inputs, or shard files of
                unknown origin, and `overwrite` is not set.
            OutputFolderError: the output is a file or cannot be created.
        """
        make_output_dir(self.output_dir)
        job_path = self.work / "job.json"
        manifest_path = self.output_dir / MANIFEST_NAME
        conflict = self._conflict(job_path, manifest_path)
        # A finished shard set or files of unknown origin are kept unless asked; our own unfinished work is not.
        if conflict and not self.overwrite and (manifest_path.exists() or not job_path.exists()):
            raise TokenizeError(f"{self.output_dir}: {conflict}; use another folder or overwrite (--overwrite)")
        if conflict:
            log.warning("%s: %s; overwriting it", self.output_dir, conflict)
            manifest_path.unlink(missing_ok=True)  # first, so that the folder never claims a finished shard set
            for path in self._shard_files():
                path.unlink()
            shutil.rmtree(self.work, ignore_errors=True)
        if job_path.exists():  # this job's unfinished run: what it was writing when killed is redone
            for path in self.output_dir.iterdir():
                if LEFTOVER_FILE.fullmatch(path.name):
                    path.unlink()
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            write_json_atomic(job_path, self.job)

    def _conflict(self, job_path: Path, manifest_path: Path) -> str | None:
        """Say why the output folder belongs to another run, or return None if it is free or this job's."""
        if job_path.exists():
            previous = read_json(job_path)
            if previous != self.job:
                what = "settings" if (previous or {}).get("config_hash") != self.job["config_hash"] else "input files"
                return f"holds a tokenize run with other {what} ({job_path})"
        elif manifest_path.exists() or self._shard_files():
            return "holds shards not made by this job"
        if manifest_path.exists():
            try:
                verify(manifest_path, checksums=False)
            except ShardError as e:
                return f"its finished shard set was changed ({e})"
        return None

    def _shard_files(self) -> list[Path]:
        return [p for p in self.output_dir.glob("*.bin*") if SHARD_FILE.fullmatch(p.name)]

    def steps(self) -> list[Step]:
        """Return the steps in order: `tokenize`, `order`, `shards`; each skips work already done."""
        return [("tokenize", self.tokenize), ("order", self.plan_shards), ("shards", self.write_shards)]

    def tokenize(self) -> None:
        """Encode every document not yet in the chunk store, with `workers` processes."""
        if self.store.done_path.exists():
            return
        chunk, skip = self.store.completed()
        if skip:
            log.info("resuming after %d documents already tokenized in %d chunks", skip, chunk)
        batches = iter_text_batches(self.source.files, self.settings.text_column, skip, BATCH_DOCS)
        total_docs = count_documents(self.source.files)
        lengths: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        filled = 0
        done = skip
        for batch_lengths, batch_tokens in _map_ordered(encode_batch, batches, self.workers):
            lengths.append(batch_lengths)
            tokens.append(batch_tokens)
            filled += batch_tokens.size
            done += batch_lengths.size
            self._report("tokenize", done, total_docs, "docs", baseline=skip)
            if filled >= CHUNK_TOKENS:
                self.store.write(chunk, lengths, tokens)
                log.info("tokenized chunk %d (%d tokens)", chunk, filled)
                chunk, lengths, tokens, filled = chunk + 1, [], [], 0
        if lengths:
            self.store.write(chunk, lengths, tokens)
            chunk += 1
        write_json_atomic(self.store.done_path, {"chunks": chunk})

    def plan_shards(self) -> None:
        """Fix the document order, the validation split and every shard's size (once; reruns keep it)."""
        if all((self.work / name).exists() for name in ("plan.json", "order.npy")):
            return
        lengths, _ = self.store.lengths()
        if lengths.size == 0:
            raise TokenizeError(f"no documents in {self.source.path}")
        if not lengths.any():
            raise TokenizeError(
                f"{self.source.path}: all {lengths.size:,} documents are empty; there is no text to tokenize"
            )
        order = document_order(lengths.size, self.settings.seed)
        units = lengths[order].astype(np.int64) + 1
        n_val = validation_documents(units, self.settings.val_tokens)
        size = self.settings.shard_tokens
        shards = []
        for split, split_units in (("train", units[n_val:]), ("val", units[:n_val])):
            starts = unit_starts(split_units)
            total = int(starts[-1])
            if math.ceil(total / size) > MAX_SHARDS:
                raise TokenizeError(
                    f"shard_tokens {size:,} would cut {total:,} {split} tokens into {math.ceil(total / size):,} "
                    f"shards (at most {MAX_SHARDS:,}); raise shard_tokens"
                )
            shards += plan_split(split, starts, size)
        _save_npy(self.work / "order.npy", order)
        plan = {"shard_tokens": size, "documents": int(lengths.size), "val_documents": n_val, "shards": shards}
        write_json_atomic(self.work / "plan.json", plan)

    def _planned(self) -> list[dict[str, Any]]:
        return json.loads((self.work / "plan.json").read_text())["shards"]

    def _done(self, shard: dict[str, Any]) -> bool:
        record_path = self.work / "done" / f"{shard['path']}.json"
        path = self.output_dir / shard["path"]
        if not record_path.exists() or not path.exists():
            return False
        record = json.loads(record_path.read_text())
        expected_size = HEADER_BYTES + shard["tokens"] * TOKEN_DTYPE.itemsize
        return record.get("tokens") == shard["tokens"] and path.stat().st_size == expected_size

    def write_shards(self) -> None:
        """Write every planned shard that is not complete yet, with `workers` processes."""
        (self.work / "done").mkdir(exist_ok=True)
        todo = [s for s in self._planned() if not self._done(s)]
        # Gathering runs at about 100M tokens/s in one process here, and a spawned pool takes 1-2 s to start.
        useful = math.ceil(sum(s["tokens"] for s in todo) / PARALLEL_SHARD_TOKENS)
        processes = max(1, min(self.workers, useful, len(todo)))
        groups = [todo[i::processes] for i in range(processes)]  # one builder per group: it maps every chunk
        jobs = [(str(self.work), str(self.output_dir), group) for group in groups if group]
        planned = len(self._planned())
        done = planned - len(todo)
        baseline = done
        self._report("shards", done, planned, "shards", baseline)
        for written in _map_ordered(_write_planned_shards, jobs, processes):
            done += len(written)
            self._report("shards", done, planned, "shards", baseline)

    def _report(self, step: str, done: int, total: int | None, unit: str, baseline: int = 0) -> None:
        """Hand a progress snapshot of `step` (with the counts of the steps before it) to `on_progress`."""
        self._rows[step] = {"step": step, "done": done, "total": total, "unit": unit}
        rows = list(self._rows.values())
        fraction = done / total if total else 0.0
        self.on_progress(
            Progress(
                stage="tokenize",
                step=step,
                done=done,
                total=total,
                unit=unit,
                elapsed_s=self._clock.elapsed(step),
                overall=overall_fraction(STEP_WEIGHTS, step, fraction),
                rows=rows,
                baseline=baseline,
            )
        )

    def finish(self) -> dict[str, Any]:
        """Write `manifest.json` (last, atomically), delete the scratch store and return the manifest."""
        records = [json.loads((self.work / "done" / f"{s['path']}.json").read_text()) for s in self._planned()]
        manifest = Manifest(
            format=MANIFEST_FORMAT,
            tokenizer="gpt2",
            vocab_size=VOCAB_SIZE,
            eot=EOT_TOKEN,
            config_hash=self.job["config_hash"],
            source=self.source.manifest_entry(),
            shards=[{k: r[k] for k in ("path", "split", "tokens", "documents", "sha256")} for r in records],
            total_tokens={s: sum(r["tokens"] for r in records if r["split"] == s) for s in ("train", "val")},
            documents={s: sum(r["documents"] for r in records if r["split"] == s) for s in ("train", "val")},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_manifest(self.output_dir, manifest)
        shutil.rmtree(self.store.path, ignore_errors=True)
        (self.work / "order.npy").unlink(missing_ok=True)
        return manifest.model_dump(exclude_unset=True)


def run_tokenize(
    inputs: list[str],
    output_dir: Path,
    workers: int = 1,
    overwrite: bool = False,
    on_progress: ProgressCallback = ignore_progress,
    **settings: Any,
) -> dict:
    """Tokenize documents into llm.c GPT-2 shards plus `manifest.json`; resumes an interrupted run.

    Args:
        inputs: curate output folders, Parquet/JSONL files, folders, globs or fsspec URLs.
        output_dir: folder for `train_*.bin`, `val_*.bin`, `manifest.json` (and `.tokenize/` work state).
        workers: tokenizer processes; the output is identical for any count.
        overwrite: replace another run's shards in `output_dir` (only shard files, manifest.json and
            `.tokenize/` are deleted) instead of refusing.
        on_progress: called with progress snapshots while the steps run.
        **settings: fields of `TokenizeSettings` (shard_tokens, val_tokens, seed, text_column); unset ones take
            its defaults.

    Returns:
        The manifest dict, as written to `output_dir/manifest.json`.

    Raises:
        TokenizeError: bad settings, or an output folder holding another run's shards (without `overwrite`).
        InputError: an unreadable input, naming the file and the record.
    """
    stage = TokenizeStage(
        inputs, output_dir, TokenizeSettings(**settings), workers=workers, overwrite=overwrite, on_progress=on_progress
    )
    return run_stage(stage).result
