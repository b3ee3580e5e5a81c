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

import os
import shutil
from collections.abc import Iterable
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
        buckets = self._signer.get_signature(shingles)
        return np.asarray([self._bytes_hash(np.asarray(b, dtype=np.uint64).tobytes()) for b in buckets], np.uint64)

    def __call__(self, text: str) -> tuple[int, np.ndarray | None]:
        """Return `(exact(text), buckets(text))`."""
        return self.exact(text), self.buckets(text)


class IndexRecorder(PipelineStep):
    """Records the kept documents of each task (id, exact hash, bucket keys) for `build_index`; passes them on.

    Goes last in the pass that writes `data/`, after PII anonymisation, so the keys are those of the published
    text. Each task writes `<folder>/<rank:05d>.parquet` once its documents are through (a rerun rewrites it).

    Args:
        folder: where the per-task parts go.
        cfg: dedup settings.
    """

    type = "🫂 - DEDUPS"
    name = "🗂️ dedup index"

    def __init__(self, folder: Path, cfg: DedupConfig):
        super().__init__()
        self.folder = Path(folder)
        self.cfg = cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Compute each document's keys, yield it, and write the task's part at the end."""
        keys_of = DocumentKeys(self.cfg)
        ids, exact, keys, clusters = [], [], [], []
        for doc in data:
            with self.track_time():
                digest, bucket_keys = keys_of(doc.text)
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
