"""The dedup index of a curate run: exact hashes and MinHash bucket keys of its KEPT documents, on disk, sorted.

Every curate run writes one into its output (`CURATE_DIR/dedup_index/`), so that a later run can drop what this
one already kept (`fineforge curate --dedup-against CURATE_DIR`, `pipelines.curate.prior_dedup`). For an output
from before the index existed it is built once from `data/*.parquet` into a cache (`build_for_output`).

Files (the index's settings are part of it; a reader refuses other settings):

- `meta.json`: `format`, `version`, `documents`, `signed` (documents long enough for a MinHash signature) and
  `settings` {`exact_hash`, `n_grams`, `num_buckets`, `hashes_per_bucket`, `seed`, `word_tokenizer`};
- `ids.parquet`: the kept documents' `id`, row i = document number i (row groups of 65,536 rows, so resolving a
  few matches reads a few row groups, not the column);
- `exact_keys.npy` (uint64, sorted) and `exact_docs.npy` (uint32): the xxhash64 of each kept text, as exact dedup
  hashes it (`pipelines.curate.dedup.document_text`), with its document number;
- `minhash_keys.npy` (uint64, shape (num_buckets, signed), each row sorted) and `minhash_docs.npy` (uint32, same
  shape): per LSH bucket, one key per document, the xxhash64 of the bucket's `hashes_per_bucket` MinHash values
  (datatrove's signature, `MinhashSignature`). Two documents share a key in a bucket exactly when datatrove's
  bucket stage would pair them (up to 64-bit key collisions: about 1e-8 false pairs per 1M x 100k lookups).

Size: 12 bytes per document for the exact part and 12 per bucket (168 with 14 buckets) for MinHash, plus the ids:
about 0.2 GB per million documents. Lookups open the arrays with `numpy.load(mmap_mode="r")` and binary-search them
(`searchsorted`): memory stays flat whatever the size of the history, the page cache holds what is touched.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.hashing import create_hash_func

from pipelines.common.errors import UserError
from pipelines.common.files import read_json, write_json_atomic
from pipelines.curate.dedup import EXACT_HASH, DedupConfig, minhash_signature_step

FORMAT = "fineforge-dedup-index"
VERSION = 1
INDEX_DIR = "dedup_index"  # in a curate output folder
META = "meta.json"
IDS = "ids.parquet"
ID_ROW_GROUP = 65_536
PART_SCHEMA = pa.schema(
    [("id", pa.string()), ("exact", pa.uint64()), ("keys", pa.list_(pa.uint64())), ("minhash_cluster", pa.string())]
)


class DedupIndexError(UserError):
    """A dedup index that cannot be used: missing, damaged, or made with other settings."""


def index_settings(cfg: DedupConfig) -> dict[str, Any]:
    """The settings an index is made with; two indexes compare only when these are equal.

    Args:
        cfg: dedup settings.

    Returns:
        {exact_hash, n_grams, num_buckets, hashes_per_bucket, seed, word_tokenizer}.
    """
    return {
        "exact_hash": f"{EXACT_HASH.hash_fc}{EXACT_HASH.precision}",
        "n_grams": cfg.n_grams,
        "num_buckets": cfg.num_buckets,
        "hashes_per_bucket": cfg.hashes_per_bucket,
        "seed": cfg.seed,
        "word_tokenizer": cfg.word_tokenizer,
    }


class DocumentKeys:
    """A text's exact hash and MinHash bucket keys, with datatrove's hash and signature code.

    Args:
        cfg: dedup settings (shingles, buckets, hashes, seed, word tokenizer).
    """

    def __init__(self, cfg: DedupConfig):
        self._exact = create_hash_func(EXACT_HASH, str)
        self._bytes_hash = create_hash_func(EXACT_HASH, bytes)
        self._signer = minhash_signature_step(cfg, os.devnull)

    def exact(self, text: str) -> int:
        """The xxhash64 of the text, as exact dedup computes it."""
        return self._exact(text)

    def buckets(self, text: str) -> np.ndarray | None:
        """One uint64 key per MinHash bucket; None for a text shorter than an n-gram (datatrove signs none)."""
        shingles = self._signer.get_shingles(text)
        if not shingles.size:
            return None
        return bucket_keys_of(np.asarray(self._signer.get_signature(shingles), np.uint64), self._bytes_hash)

    def __call__(self, text: str) -> tuple[int, np.ndarray | None]:
        """Return `(exact(text), buckets(text))`."""
        return self.exact(text), self.buckets(text)


def bucket_keys_of(hashes: np.ndarray, bytes_hash: Callable[[bytes], int]) -> np.ndarray:
    """The key of each bucket signature: `bytes_hash` of its MinHash values as little-endian uint64.

    Args:
        hashes: (buckets, hashes_per_bucket) or (n, hashes_per_bucket) MinHash values.
        bytes_hash: the index's hash of bytes (xxhash64).

    Returns:
        One uint64 key per row.
    """
    rows = np.ascontiguousarray(hashes, dtype="<u8")
    return np.fromiter((bytes_hash(row.tobytes()) for row in rows), np.uint64, count=len(rows))


def signed_keys(signatures: Path, cfg: DedupConfig, rank: int, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A task's bucket keys from MinHash stage 1's files (`bucket_<b>/<rank>.minhash.sig`), by document number.

    datatrove's `MinhashDedupSignature` writes, per bucket and task, one record per signed document: its
    `hashes_per_bucket` values and its number in the task's input, sorted by value.

    Args:
        signatures: stage 1's output folder.
        cfg: the dedup settings it ran with.
        rank: the task.
        removed: numbers of documents to skip (those MinHash dedup drops: not indexed, so not hashed).

    Returns:
        `keys` (uint64, shape (num_buckets, n)) and `signed` (bool, n): the keys of document i are `keys[:, i]`
        when `signed[i]`; n is one past the last signed document.
    """
    value = f"<{cfg.minhash_config().hash_config.struct_format}"
    dtype = np.dtype([(f"h{i}", value) for i in range(cfg.hashes_per_bucket)] + [("doc", "<u4")])
    bytes_hash = create_hash_func(EXACT_HASH, bytes)
    keys, signed = np.zeros((cfg.num_buckets, 0), np.uint64), np.zeros(0, bool)
    for bucket in range(cfg.num_buckets):
        records = np.fromfile(signatures / f"bucket_{bucket:03d}" / f"{rank:05d}.minhash.sig", dtype=dtype)
        if bucket == 0:
            size = int(records["doc"].max()) + 1 if records.size else 0
            keys, signed = np.zeros((cfg.num_buckets, size), np.uint64), np.zeros(size, bool)
            signed[records["doc"]] = True
        records = records[~np.isin(records["doc"], removed)]
        values = np.stack([records[f"h{i}"] for i in range(cfg.hashes_per_bucket)], axis=1)
        keys[bucket, records["doc"]] = bucket_keys_of(values, bytes_hash)
    return keys, signed


def kept_signed_keys(signatures: Path, clusters: Path, cfg: DedupConfig, rank: int) -> Iterator[np.ndarray | None]:
    """The bucket keys (None: not signed) of a task's documents that MinhashDedupFilter keeps, in its order.

    The filter drops the numbers in `clusters/<rank>.remove` (sorted uint32; no file: none) and passes the rest
    on in input order; this walks the same numbers, so the k-th key goes with the k-th document the filter yields.
    """
    removals = clusters / f"{rank:06d}.remove"
    removed = np.fromfile(removals, dtype="<u4") if removals.is_file() else np.zeros(0, "<u4")
    keys, signed = signed_keys(signatures, cfg, rank, removed)
    skip = set(removed.tolist())
    for number in itertools.count():
        if number not in skip:
            yield keys[:, number] if number < signed.size and signed[number] else None


class IndexRecorder(PipelineStep):
    """Records the kept documents of each task (id, exact hash, bucket keys) for `build_index`; passes them on.

    Goes last in the pass that writes `data/`, after PII anonymisation, so the keys are those of the published
    text. Each task writes `<folder>/<rank:05d>.parquet` once its documents are through (a rerun rewrites it).

    With `minhash` (the folders of `pipelines.curate.dedup.minhash_folders`), the pass's MinhashDedupFilter has
    just kept these documents and MinHash stage 1 signed the same texts: their bucket keys are read from its files
    (`kept_signed_keys`) instead of shingling and signing each text a second time. The first document of each
    task is signed again and compared, so a misaligned read fails loudly.

    Args:
        folder: where the per-task parts go.
        cfg: dedup settings.
        minhash: (stage 1 signatures, clusters) of this pass's MinHash dedup, whose texts nothing between the
            filter and this step changes; None: sign each text here.
    """

    type = "🫂 - DEDUPS"
    name = "🗂️ dedup index"

    def __init__(self, folder: Path, cfg: DedupConfig, minhash: tuple[Path, Path] | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.cfg = cfg
        self.minhash = minhash

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Compute (or read) each document's keys, yield it, and write the task's part at the end."""
        keys_of = DocumentKeys(self.cfg)
        signed = kept_signed_keys(*self.minhash, self.cfg, rank) if self.minhash else None
        ids, exact, keys, clusters = [], [], [], []
        for doc in data:
            with self.track_time():
                digest = keys_of.exact(doc.text)
                if signed is None:
                    bucket_keys = keys_of.buckets(doc.text)
                else:
                    bucket_keys = next(signed)
                    if not ids:
                        _check_first(doc, bucket_keys, keys_of.buckets(doc.text), self.minhash[0], rank)
            ids.append(str(doc.id))
            exact.append(digest)
            keys.append(None if bucket_keys is None else bucket_keys.tolist())
            cluster = doc.metadata.get("minhash_cluster_id", -1)  # for the cluster export (pipelines.curate.clusters)
            clusters.append(None if cluster == -1 else f"minhash-{cluster}")
            self.stat_update("indexed")
            yield doc
        self.folder.mkdir(parents=True, exist_ok=True)
        columns = {"id": ids, "exact": pa.array(exact, pa.uint64()), "keys": keys, "minhash_cluster": clusters}
        table = pa.table(columns, schema=PART_SCHEMA)
        tmp = self.folder / f".{rank:05d}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(self.folder / f"{rank:05d}.parquet")


def _check_first(doc: Any, read: np.ndarray | None, computed: np.ndarray | None, signatures: Path, rank: int) -> None:
    """Refuse keys read from stage 1 that differ from the document's own (the reader and the filter disagree)."""
    if (read is None) != (computed is None) or (read is not None and not np.array_equal(read, computed)):
        raise RuntimeError(
            f"dedup index: MinHash keys read from {signatures} (task {rank}) do not match document {doc.id}'s own; "
            "the signature files and this pass's input are out of step"
        )


def build_index(parts: Iterable[pa.Table], index_dir: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Write an index from `(id, exact, keys)` tables in document order; the folder is replaced as a whole.

    Args:
        parts: tables of PART_SCHEMA, in the order the documents are numbered.
        index_dir: the index folder to write (written beside it, then renamed).
        cfg: dedup settings the keys were made with.

    Returns:
        The index's meta.json.
    """
    index_dir = Path(index_dir)
    staging = index_dir.with_name(f"{index_dir.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    exact, keys, docs_signed = [], [], []
    documents = 0
    with pq.ParquetWriter(staging / IDS, pa.schema([("id", pa.string())])) as ids:
        for part in parts:
            ids.write_table(part.select(["id"]), row_group_size=ID_ROW_GROUP)
            exact.append(part["exact"].to_numpy())
            signed = part.filter(part["keys"].is_valid())
            numbers = np.flatnonzero(part["keys"].is_valid().to_numpy(zero_copy_only=False)) + documents
            docs_signed.append(numbers.astype(np.uint32))
            flat = signed["keys"].combine_chunks().flatten().to_numpy() if signed.num_rows else np.zeros(0, np.uint64)
            keys.append(flat.reshape(-1, cfg.num_buckets))
            documents += part.num_rows
    exact_keys = np.concatenate(exact).astype(np.uint64) if exact else np.zeros(0, np.uint64)
    order = np.argsort(exact_keys, kind="stable")
    np.save(staging / "exact_keys.npy", exact_keys[order])
    np.save(staging / "exact_docs.npy", order.astype(np.uint32))
    bucket_keys = np.concatenate(keys).T if keys else np.zeros((cfg.num_buckets, 0), np.uint64)  # (buckets, signed)
    doc_numbers = np.concatenate(docs_signed) if docs_signed else np.zeros(0, np.uint32)
    order = np.argsort(bucket_keys, axis=1, kind="stable")
    np.save(staging / "minhash_keys.npy", np.take_along_axis(bucket_keys, order, axis=1))
    np.save(staging / "minhash_docs.npy", doc_numbers[order])
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "documents": documents,
        "signed": int(doc_numbers.size),
        "settings": index_settings(cfg),
    }
    write_json_atomic(staging / META, meta)
    shutil.rmtree(index_dir, ignore_errors=True)
    staging.replace(index_dir)
    return meta


def build_from_parts(parts_dir: Path, index_dir: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Build the index of a run from the `IndexRecorder` parts of its tasks (in rank order).

    Args:
        parts_dir: the recorder's folder (may be missing: no document was kept).
        index_dir: the index folder to write.
        cfg: dedup settings.

    Returns:
        The index's meta.json.
    """
    files = sorted(Path(parts_dir).glob("*.parquet")) if Path(parts_dir).is_dir() else []
    return build_index((pq.read_table(path, columns=["id", "exact", "keys"]) for path in files), index_dir, cfg)


def build_for_output(data_dir: Path, index_dir: Path, cfg: DedupConfig, batch_rows: int = 4096) -> dict[str, Any]:
    """Build the index of an older curate output (no `dedup_index/`) from its `data/*.parquet`, reading only them.

    Args:
        data_dir: the output's `data/` folder (read, never written).
        index_dir: where the index goes (outside that output: a cache or this run's work folder).
        cfg: dedup settings.
        batch_rows: rows read at a time (memory stays at a batch's texts).

    Returns:
        The index's meta.json.
    """
    keys_of = DocumentKeys(cfg)

    def parts() -> Iterable[pa.Table]:
        for path in sorted(Path(data_dir).glob("*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["id", "text"]):
                computed = [keys_of(text) for text in batch.column("text").to_pylist()]
                yield pa.table(
                    {
                        "id": batch.column("id").cast(pa.string()),
                        "exact": pa.array([digest for digest, _ in computed], pa.uint64()),
                        "keys": [None if k is None else k.tolist() for _, k in computed],
                        "minhash_cluster": [None] * batch.num_rows,
                    },
                    schema=PART_SCHEMA,
                )

    return build_index(parts(), index_dir, cfg)


class DedupIndex:
    """An index opened for lookups: its arrays memory-mapped, so memory does not grow with its size.

    Args:
        folder: the index folder.
        cfg: this run's dedup settings; an index made with others is refused.

    Raises:
        DedupIndexError: missing or damaged, or other settings (one line naming the folder and the difference).
    """

    def __init__(self, folder: Path, cfg: DedupConfig):
        self.folder = Path(folder)
        meta = read_json(self.folder / META)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DedupIndexError(f"{self.folder / META}: not a FineForge dedup index (missing or damaged)")
        if meta.get("version") != VERSION:
            raise DedupIndexError(
                f"{self.folder / META}: index version {meta.get('version')}, this FineForge reads {VERSION}"
            )
        wanted = index_settings(cfg)
        if meta.get("settings") != wanted:
            theirs = meta.get("settings") or {}
            diff = ", ".join(
                f"{k} {theirs.get(k)!r} (this run: {v!r})" for k, v in wanted.items() if theirs.get(k) != v
            )
            raise DedupIndexError(
                f"{self.folder}: dedup index made with other settings: {diff}; curate that run again with this "
                "run's dedup settings, or use its settings here"
            )
        self.meta = meta
        try:
            self.exact_keys = np.load(self.folder / "exact_keys.npy", mmap_mode="r")
            self.exact_docs = np.load(self.folder / "exact_docs.npy", mmap_mode="r")
            self.minhash_keys = np.load(self.folder / "minhash_keys.npy", mmap_mode="r")
            self.minhash_docs = np.load(self.folder / "minhash_docs.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DedupIndexError(f"{self.folder}: damaged dedup index ({err})") from err
        if self.exact_keys.shape != (meta["documents"],) or self.minhash_keys.shape != (
            cfg.num_buckets,
            meta["signed"],
        ):
            raise DedupIndexError(f"{self.folder}: damaged dedup index (array shapes do not match {META})")

    @property
    def documents(self) -> int:
        """Kept documents the index holds."""
        return int(self.meta["documents"])

    def exact_match(self, digest: int) -> int | None:
        """The number of a kept document with this exact text hash, or None."""
        i = int(np.searchsorted(self.exact_keys, np.uint64(digest)))
        return int(self.exact_docs[i]) if i < self.exact_keys.size and int(self.exact_keys[i]) == digest else None

    def near_match(self, keys: np.ndarray) -> int | None:
        """The number of a kept document sharing a MinHash bucket key with `keys` (lowest bucket first), or None."""
        for bucket, key in enumerate(keys):
            row = self.minhash_keys[bucket]
            i = int(np.searchsorted(row, key))
            if i < row.size and row[i] == key:
                return int(self.minhash_docs[bucket, i])
        return None

    def ids(self, numbers: Iterable[int]) -> dict[int, str]:
        """The ids of kept documents by number, reading only the row groups that hold them."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        found: dict[int, str] = {}
        with pq.ParquetFile(self.folder / IDS) as ids:
            starts = np.cumsum([0] + [ids.metadata.row_group(g).num_rows for g in range(ids.num_row_groups)])
            for group in sorted({int(np.searchsorted(starts, n, side="right")) - 1 for n in wanted}):
                column = ids.read_row_group(group, columns=["id"]).column("id").to_pylist()
                first = int(starts[group])
                found |= {n: column[n - first] for n in wanted if first <= n < first + len(column)}
        return found
