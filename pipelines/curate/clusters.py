"""The duplicate-cluster export: every dropped duplicate mapped to the kept document it duplicates.

`CURATE_DIR/clusters/duplicates.parquet`, one row per document dropped by `prior_dedup`, `exact_dedup` or
`minhash_dedup` (all of them, unlike the sampled `rejects/`): `id`, `reason`, `cluster_id`, `kept_id`, `kept_run`
(the `run_id` of the run that kept it: this run, or the earlier run of a prior-run duplicate) and `similarity`
(1.0 for exact copies; null for near copies, whose MinHash match says only "above the LSH threshold").

How the kept document is found:
- `prior_exact_duplicate` / `prior_minhash_duplicate`: the document number the prior index matched, resolved to
  its id in that index (`pipelines.curate.dedup_index`);
- `exact_duplicate`: the kept document with the same text hash; when that copy was itself dropped later as a
  near duplicate, the kept document of its MinHash cluster;
- `minhash_duplicate`: the kept document of the same MinHash cluster (datatrove's `minhash_cluster_id`).

During the run, `ClusterLog` (one datatrove ParquetWriter per gate) records each dropped duplicate and
`pipelines.curate.dedup_index.IndexRecorder` each kept one; `export` joins them once the dedup step is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from datatrove.data import Document
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.hashing import create_hash_func

from pipelines.common.files import atomic_write
from pipelines.curate.dedup import EXACT_HASH, EXACT_REASON, MINHASH_REASON, document_text

EXPORT_DIR = "clusters"  # in a curate output folder
EXPORT_FILE = "duplicates.parquet"
PRIOR_EXACT_REASON = "prior_exact_duplicate"
PRIOR_MINHASH_REASON = "prior_minhash_duplicate"
LOG_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("reason", pa.string()),
        ("cluster_id", pa.string()),
        ("exact", pa.uint64()),
        ("prior_run", pa.string()),
        ("prior_doc", pa.int64()),
    ]
)
EXPORT_SCHEMA = {
    "id": pl.String,
    "reason": pl.String,
    "cluster_id": pl.String,
    "kept_id": pl.String,
    "kept_run": pl.String,
    "similarity": pl.Float64,
}


class ClusterLog(ParquetWriter):
    """Writes one row per dropped duplicate (id, reason, cluster, text hash, prior match) as `<rank>.parquet`.

    Args:
        output_folder: the gate's log folder.
    """

    name = "🫂 duplicate log"

    def __init__(self, output_folder: str):
        super().__init__(output_folder, adapter=_log_row, schema=LOG_SCHEMA)
        self.text_hash = create_hash_func(EXACT_HASH, str)


def _log_row(writer: ClusterLog, doc: Document) -> dict[str, Any]:
    meta = doc.metadata
    prior_doc = meta.get("dedup_prior_doc")
    return {
        "id": str(doc.id),
        "reason": str(meta.get("filter_reason")),
        "cluster_id": str(meta.get("dedup_cluster_id")),
        "exact": writer.text_hash(document_text(doc)),
        "prior_run": meta.get("dedup_prior_run"),
        "prior_doc": None if prior_doc is None else int(prior_doc),
    }


def _scan(folders: Sequence[Path], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    files = sorted(str(p) for folder in folders if Path(folder).is_dir() for p in Path(folder).rglob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=schema)
    return pl.read_parquet(files, columns=list(schema)).cast(schema)


def export(
    log_dirs: Sequence[Path],
    kept_parts: Path,
    run_id: str,
    prior_ids: dict[str, Any],
    out_file: Path,
) -> int:
    """Join the dropped duplicates with the documents they duplicate and write the export (atomically).

    Args:
        log_dirs: the `ClusterLog` folders of the dedup gates.
        kept_parts: `IndexRecorder`'s folder (this run's kept documents: id, exact hash, MinHash cluster).
        run_id: this run's `run_id`.
        prior_ids: per earlier run_id, its opened `DedupIndex` (for the ids of matched documents).
        out_file: the Parquet to write.

    Returns:
        Rows written.
    """
    dropped = _scan(
        log_dirs,
        {
            "id": pl.String,
            "reason": pl.String,
            "cluster_id": pl.String,
            "exact": pl.UInt64,
            "prior_run": pl.String,
            "prior_doc": pl.Int64,
        },
    )
    kept = _scan([kept_parts], {"id": pl.String, "exact": pl.UInt64, "minhash_cluster": pl.String})
    by_hash = kept.group_by("exact").agg(pl.col("id").first().alias("hash_kept"))
    by_cluster = (
        kept.filter(pl.col("minhash_cluster").is_not_null())
        .group_by("minhash_cluster")
        .agg(pl.col("id").first().alias("cluster_kept"))
    )
    # an exact copy whose kept twin was dropped later as a near duplicate: that twin's MinHash cluster
    near_of_hash = (
        dropped.filter(pl.col("reason") == MINHASH_REASON)
        .group_by("exact")
        .agg(pl.col("cluster_id").first().alias("twin_cluster"))
        .join(by_cluster, left_on="twin_cluster", right_on="minhash_cluster", how="left")
        .select("exact", pl.col("cluster_kept").alias("twin_kept"))
    )
    prior_rows = []
    for prior_run, index in prior_ids.items():
        numbers = dropped.filter(pl.col("prior_run") == prior_run)["prior_doc"].to_list()
        prior_rows += [
            {"prior_run": prior_run, "prior_doc": n, "prior_kept": i} for n, i in index.ids(numbers).items()
        ]
    prior_kept = pl.DataFrame(
        prior_rows, schema={"prior_run": pl.String, "prior_doc": pl.Int64, "prior_kept": pl.String}
    )
    joined = (
        dropped.join(by_hash, on="exact", how="left")
        .join(near_of_hash, on="exact", how="left")
        .join(by_cluster, left_on="cluster_id", right_on="minhash_cluster", how="left")
        .join(prior_kept, on=["prior_run", "prior_doc"], how="left")
    )
    reason = pl.col("reason")
    is_prior = reason.is_in([PRIOR_EXACT_REASON, PRIOR_MINHASH_REASON])
    result = joined.select(
        "id",
        "reason",
        "cluster_id",
        kept_id=pl.when(is_prior)
        .then(pl.col("prior_kept"))
        .when(reason == EXACT_REASON)
        .then(pl.coalesce("hash_kept", "twin_kept"))
        .otherwise(pl.col("cluster_kept")),
        kept_run=pl.when(is_prior).then(pl.col("prior_run")).otherwise(pl.lit(run_id)),
        similarity=pl.when(reason.is_in([EXACT_REASON, PRIOR_EXACT_REASON])).then(1.0).otherwise(None),
    ).cast(EXPORT_SCHEMA)
    result = result.sort(["reason", "cluster_id", "id"])
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_file) as f:
        result.write_parquet(f)
    return result.height
