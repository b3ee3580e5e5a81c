"""Incremental dedup at scale (issue 24): a crawl curated against a large earlier run, against no earlier run.

The crawl is the cycled-corpus input of `benchmarks.curate --e2e` (the 580 shared web texts cycled with small
edits, seed 0, in 8 gzip JSONL files). The earlier run ("prior") holds `--prior` documents of the same cycle with
other edits (seed 1): its dedup index is built with the very code a curate run uses for its kept documents
(`pipelines.curate.dedup_index.DocumentKeys` and `build_index`, in 2 processes), beside a minimal summary.json
naming it a finished run of that many documents; curating a million documents first would take about an hour here
and measure nothing this benchmark is about. Every crawl document is a near copy of some prior document (same source
text, other edits), so the prior drops most of the crawl: the lookups do their full work.

Two real `fineforge curate` runs on the crawl (one worker, default FineWeb recipe) are measured side by side, each in
a subprocess whose whole process tree is sampled every 0.2 s (`benchmarks.curate.TreeSampler`): CPU seconds per
document, wall time, the dedup step's seconds, and peak resident memory; then the ratios (target: peak memory with
the prior <= 1.5x without), and the index size on disk per million documents (the prior's, and the crawl run's own).

`--lookups N ...` times the lookups alone (5,000 crawl documents' keys computed beforehand) against indexes of N
random-key documents (a real index's layout and size, built in seconds): microseconds per document and the
resident memory they add, anonymous and memory-mapped, to show how both scale with the history.

Run: `.venv/bin/python -m benchmarks.dedup_prior --crawl 100000 --prior 1000000` (the issue's size; on this 2-core
machine at load 2-4 it took 22 minutes to build the prior's index and 12 + 11.5 minutes of curate, 46 in all);
`--crawl 10000 --prior 100000` is a quick look; `--lookups 10000 100000 1000000` takes 20 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.curate import ROOT, TreeSampler, replicated_records, write_replicated_corpus
from pipelines.common.files import write_json_atomic
from pipelines.curate.dedup import DedupConfig
from pipelines.curate.dedup_index import INDEX_DIR, PART_SCHEMA, DedupIndex, DocumentKeys, build_index

CHUNK = 20_000  # prior documents per worker task


def _index_part(bounds: tuple[int, int]) -> pa.Table:
    """(id, exact, keys) of prior documents `start` to `stop - 1`, as `IndexRecorder` records kept documents."""
    start, stop = bounds
    keys_of = DocumentKeys(DedupConfig())
    ids, exact, keys = [], [], []
    for record in replicated_records(stop, seed=1, start=start):
        digest, bucket_keys = keys_of(record["text"])
        ids.append(record["id"])
        exact.append(digest)
        keys.append(None if bucket_keys is None else bucket_keys.tolist())
    columns = {"id": ids, "exact": pa.array(exact, pa.uint64()), "keys": keys, "minhash_cluster": [None] * len(ids)}
    return pa.table(columns, schema=PART_SCHEMA)


def build_prior(folder: Path, n_docs: int, processes: int = 2) -> float:
    """Write a finished-looking earlier curate output of `n_docs` kept documents: its index and summary.json.

    Returns:
        Seconds it took.
    """
    start = time.perf_counter()
    bounds = [(i, min(i + CHUNK, n_docs)) for i in range(0, n_docs, CHUNK)]
    with get_context("forkserver").Pool(processes) as pool:
        build_index(pool.imap(_index_part, bounds), folder / INDEX_DIR, DedupConfig())
    summary = {"run_id": f"bench-prior-{n_docs}", "records_read": n_docs, "quarantined": 0, "docs_in": n_docs,
               "docs_out": n_docs, "stages": []}  # fmt: skip
    write_json_atomic(folder / "summary.json", summary)
    write_json_atomic(folder / ".fineforge-curate.json", {"stage": "curate", "published": {}})
    return time.perf_counter() - start


@dataclass
class Measured:
    """One curate run: what it cost."""

    label: str
    docs: int
    docs_out: int
    prior_dropped: int
    wall_s: float
    cpu_s: float
    dedup_s: float
    peak_mb: float


def run_measured(label: str, corpus: Path, out: Path, extra: list[str]) -> Measured:
    """Run `fineforge curate` in a subprocess, sampling its process tree; read its summary.json."""
    import psutil

    cmd = [sys.executable, "-m", "cli", "curate", "--input", str(corpus), "--output", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(psutil.Process(proc.pid), None)
    while proc.poll() is None:
        sampler.sample()
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"curate failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    prior = next(s for s in summary["stages"] if s["name"] == "prior_dedup")
    dedup = next(s for s in summary["steps"] if s["name"] == "dedup")
    return Measured(label, summary["docs_in"], summary["docs_out"], sum(prior["dropped"].values()), wall,
                    sampler.cpu_seconds(), dedup["duration_s"], sampler.peak / 2**20)  # fmt: skip


def synthetic_index(n_docs: int, seed: int = 0) -> Iterator[pa.Table]:
    """An index of `n_docs` documents with random keys (the layout and size of a real one, built in seconds)."""
    rng = np.random.default_rng(seed)
    buckets = DedupConfig().num_buckets
    for start in range(0, n_docs, 1_000_000):
        n = min(1_000_000, n_docs - start)
        offsets = pa.array(np.arange(0, (n + 1) * buckets, buckets, dtype=np.int32))
        keys = pa.ListArray.from_arrays(offsets, pa.array(rng.integers(0, 2**64, n * buckets, dtype=np.uint64)))
        ids = [f"syn-{start + i}" for i in range(n)]
        exact = pa.array(rng.integers(0, 2**64, n, dtype=np.uint64))
        yield pa.table({"id": ids, "exact": exact, "keys": keys, "minhash_cluster": [None] * n}, schema=PART_SCHEMA)


def _resident_mib() -> tuple[float, float]:
    """(anonymous, file-backed) resident memory of this process in MiB, from /proc/self/status (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile"))


def bench_lookups(sizes: list[int], n_docs: int = 5_000) -> None:
    """Prior-run lookups alone (keys computed beforehand) against indexes of each size: us per document, and the
    resident memory the lookups added: anonymous (heap) and file-backed (the memory-mapped index pages they
    touched: clean page cache, shared and reclaimable, at most the index's size)."""
    keys_of = DocumentKeys(DedupConfig())
    keys = [keys_of(record["text"]) for record in replicated_records(n_docs, seed=2)]
    print(f"\n{'index documents':>16}{'MiB on disk':>12}{'us/doc':>8}{'anon MiB added':>15}{'mapped MiB added':>17}")
    with tempfile.TemporaryDirectory(prefix="ff-lookup-") as tmp:
        for size in sizes:
            folder = Path(tmp) / str(size)
            build_index(synthetic_index(size), folder, DedupConfig())
            index = DedupIndex(folder, DedupConfig())
            anon, mapped = _resident_mib()
            start = time.process_time()
            for digest, buckets in keys:
                index.exact_match(digest)
                if buckets is not None:
                    index.near_match(buckets)
            cpu = time.process_time() - start
            anon_after, mapped_after = _resident_mib()
            print(f"{size:>16,}{folder_bytes(folder) / 2**20:>12.0f}{1e6 * cpu / n_docs:>8.0f}"
                  f"{anon_after - anon:>15.1f}{mapped_after - mapped:>17.1f}")  # fmt: skip
            del index


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    """Build the prior, run both curates, print them side by side with the ratios and the index sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crawl", type=int, default=10_000, help="documents of the new crawl")
    parser.add_argument("--prior", type=int, default=100_000, help="documents the earlier run kept")
    parser.add_argument("--lookups", type=int, nargs="*", default=[], help="only time lookups in indexes this big")
    args = parser.parse_args()
    if args.lookups:
        bench_lookups(args.lookups)
        return
    with tempfile.TemporaryDirectory(prefix="ff-prior-") as tmp:
        root = Path(tmp)
        build_s = build_prior(root / "prior", args.prior)
        prior_bytes = folder_bytes(root / "prior" / INDEX_DIR)
        print(f"prior index of {args.prior:,} documents built in {build_s:.0f} s: {prior_bytes / 2**20:.1f} MiB, "
              f"{prior_bytes / args.prior * 1e6 / 2**20:.0f} MiB per million documents", flush=True)  # fmt: skip
        write_replicated_corpus(root / "crawl", args.crawl)
        runs = [
            run_measured("no prior", root / "crawl", root / "out-alone", []),
            run_measured(
                f"prior {args.prior:,}", root / "crawl", root / "out-prior", ["--dedup-against", str(root / "prior")]
            ),  # fmt: skip
        ]
        own = folder_bytes(root / "out-alone" / INDEX_DIR)
    print(f"\n{'run':<16}{'docs':>9}{'kept':>9}{'prior drop':>11}{'wall s':>9}{'CPU s':>8}{'CPU ms/doc':>11}"
          f"{'dedup s':>9}{'peak MB':>9}")  # fmt: skip
    for r in runs:
        print(f"{r.label:<16}{r.docs:>9}{r.docs_out:>9}{r.prior_dropped:>11}{r.wall_s:>9.0f}{r.cpu_s:>8.0f}"
              f"{1000 * r.cpu_s / r.docs:>11.2f}{r.dedup_s:>9.0f}{r.peak_mb:>9.0f}")  # fmt: skip
    alone, prior = runs
    print(f"with the prior / without: CPU per document {prior.cpu_s / alone.cpu_s:.2f}x, "
          f"wall {prior.wall_s / alone.wall_s:.2f}x, dedup step {prior.dedup_s / alone.dedup_s:.2f}x, "
          f"peak memory {prior.peak_mb / alone.peak_mb:.2f}x (target <= 1.5x)")  # fmt: skip
    per_million = own / max(alone.docs_out, 1) * 1e6 / 2**20
    print(f"the crawl run's own index: {own / 2**20:.1f} MiB for {alone.docs_out:,} kept documents "
          f"({per_million:.0f} MiB per million)")  # fmt: skip


if __name__ == "__main__":
    main()
