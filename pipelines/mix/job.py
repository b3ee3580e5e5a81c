"""`fineforge mix`: several tokenized shard sets, weighted, into one shard set, resumably and deterministically.

`MixStage` runs through `pipelines.common.stage.run_stage` like tokenize:

1. `plan()` reads and checks every source (a complete shard set, one tokenizer, a positive weight, a unique
   name, a share it can fill in `max_epochs` passes) and indexes its documents; nothing is written before it passes;
2. `claim()` makes OUTPUT this mix's: a new or empty folder, or one holding this very mix unfinished (resume);
3. steps `order` (pick whole documents and fix their order and every shard: `pipelines.mix.plan`, saved once to
   `.mix/plan.json` and `.mix/units.npy`), `shards` (each train shard gathered from the memory-mapped sources,
   written atomically and recorded in `.mix/done/`, its fsync in a thread while the next is gathered; a rerun
   redoes only the shards without a record, and `workers` processes share them out, so the bytes never depend on
   either) and `val` (each source's val shards copied as `val_<name>_NNNNNN.bin`, recorded with their `source`);
4. `finish()` writes `manifest.json` last, with `sources` (what each source gave) beside the usual fields.

Memory stays flat in the corpus size: sources are memory-mapped, one shard buffer is reused per worker,
and the plan holds three int64 words per mixed document.
"""

from __future__ import annotations

import json
import multiprocessing
import re
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.files import TMP_PATTERN, make_output_dir, read_json, sync_and_rename, write_json_atomic
from pipelines.common.hashing import stable_hash
from pipelines.common.locks import LOCK_FILE
from pipelines.common.stage import Stage, Step, run_stage
from pipelines.mix import plan as mix_plan
from pipelines.mix.sources import NAME, MixError, Source, SourceSpec, SourceStream, check_compatible, load_source
from pipelines.shards import (
    HEADER_BYTES,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    TOKEN_DTYPE,
    Manifest,
    load_manifest,
    made_by,
    plan_split,
    read_shard,
    shard_name,
    unit_starts,
    write_manifest,
    write_shard,
    write_shard_unsynced,
)
from pipelines.tokenize.settings import SEED_LIMIT

WORK_DIR = ".mix"
LEFTOVER = re.compile(rf"(train|val_{NAME.pattern})_\d{{6}}\.bin{TMP_PATTERN}")
MIX_VERSION = 1  # bump whenever the picking or ordering rule changes: it is part of the config hash
DEFAULT_SHARD_TOKENS = 100_000_000  # llm.c's FineWeb shard size, as tokenize's default


class MixStage(Stage):
    """One mixture as a `pipelines.common.stage.Stage` (see the module docstring).

    Args:
        sources: the `--source` specs, in the order given.
        output_dir: the mixture's shard folder.
        tokens: train tokens of the mixture.
        seed: seed of the picks and the order.
        max_epochs: most passes over any source's train tokens.
        shard_tokens: tokens per train shard.
        workers: processes writing shards (the bytes do not depend on it).
    """

    name = "mix"

    def __init__(
        self,
        sources: list[SourceSpec],
        output_dir: Path,
        tokens: int,
        seed: int = 0,
        max_epochs: int = 4,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
        workers: int = 1,
    ) -> None:
        self.specs = list(sources)
        self.output_dir = Path(output_dir)
        self.work = self.output_dir / WORK_DIR
        self.tokens, self.seed, self.max_epochs = tokens, seed, max_epochs
        self.shard_tokens, self.workers = shard_tokens, workers

    def plan(self) -> None:
        """Check the settings and every source, index their documents and fix this mix's identity (reads only).

        Raises:
            MixError: a bad setting, a duplicate name, a folder that is not a shard set, sources of different
                tokenizers, or a share its source cannot fill.
        """
        for what, value, low in (("--tokens", self.tokens, 1), ("--max-epochs", self.max_epochs, 1),
                                 ("--workers", self.workers, 1), ("--seed", self.seed, 0),
                                 ("--shard-tokens", self.shard_tokens, 1025)):  # fmt: skip
            if value < low:
                raise MixError(f"{what} must be >= {low}, got {value}")
        if self.seed >= SEED_LIMIT:
            raise MixError(f"--seed must be below 2**64 (the order hashes it as a 64-bit word), got {self.seed}")
        if not self.specs:
            raise MixError("give at least one --source NAME=SHARDS:WEIGHT")
        names = [s.name for s in self.specs]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise MixError(f"--source names must be unique; repeated: {', '.join(repeated)}")
        total = sum(s.weight for s in self.specs)
        self.sources: list[Source] = [load_source(s, s.weight / total) for s in self.specs]
        check_compatible(self.sources)
        self.shares = mix_plan.shares(self.tokens, [s.weight for s in self.sources])
        for source, share in zip(self.sources, self.shares, strict=True):
            mix_plan.check_fillable(source, share, self.max_epochs)
        self.job = {
            "version": MIX_VERSION,
            "sources": [
                {"name": s.spec.name, "weight": s.weight, "manifest": str(s.manifest_path), "sha256": s.sha256}
                for s in self.sources
            ],
            "tokens": self.tokens,
            "seed": self.seed,
            "max_epochs": self.max_epochs,
            "shard_tokens": self.shard_tokens,
        }

    def output_folder(self) -> Path:
        """The mixture's folder (locked while the run claims and writes it)."""
        return self.output_dir

    def is_complete(self) -> bool:
        """True when the folder holds the manifest of exactly this mix, its shards intact in size."""
        return made_by(self.output_dir, self.work / "job.json", self.job)

    def result(self) -> dict[str, Any]:
        """The finished mixture's manifest."""
        return load_manifest(self.output_dir / MANIFEST_NAME)

    def claim(self) -> None:
        """Make the folder this mix's: new or empty, or holding this mix unfinished.

        Raises:
            MixError: the folder holds anything else (FineForge does not write into folders it did not make).
        """
        make_output_dir(self.output_dir)
        job_path = self.work / "job.json"
        recorded = read_json(job_path)
        if recorded is not None and recorded != self.job:
            raise MixError(
                f"{self.output_dir}: holds a mix of other sources or settings ({job_path}); use another folder"
            )
        if recorded is None and any(p.name != LOCK_FILE for p in self.output_dir.iterdir()):
            raise MixError(f"{self.output_dir}: not empty and not a mix folder; give a new or empty --output")
        if recorded is None:
            (self.work / "done").mkdir(parents=True, exist_ok=True)
            write_json_atomic(job_path, self.job)
        for leftover in self.output_dir.glob("*.bin.*.tmp"):  # a shard this mix was writing when it was killed
            if LEFTOVER.fullmatch(leftover.name):
                leftover.unlink()

    def steps(self) -> list[Step]:
        """Return the steps in order: `order`, `shards`, `val`; each skips work already done."""
        return [("order", self.order), ("shards", self.write_shards), ("val", self.copy_val)]

    def order(self) -> None:
        """Pick each source's documents and fix the mixture's order and shards (once; reruns keep it)."""
        if (self.work / "plan.json").exists():
            return
        picks = [mix_plan.pick_documents(s, n, self.seed) for s, n in zip(self.sources, self.shares, strict=True)]
        units = mix_plan.mixture_units(self.sources, picks, self.seed)
        shards = plan_split("train", unit_starts(units[:, 2]), self.shard_tokens)
        taken = [int(units[units[:, 0] == i, 2].sum()) for i in range(len(self.sources))]
        np.save(self.work / "units.npy", units)  # before plan.json, which marks the step done
        sources = [
            {"train_tokens": t, "documents": int(p.size), "epochs": mix_plan.epochs(t, s)}
            for s, p, t in zip(self.sources, picks, taken, strict=True)
        ]
        write_json_atomic(self.work / "plan.json", {"shards": shards, "sources": sources})

    def _planned(self) -> dict[str, Any]:
        return json.loads((self.work / "plan.json").read_text())

    def _done(self, shard: dict[str, Any]) -> bool:
        record = read_json(self.work / "done" / f"{shard['path']}.json")
        path = self.output_dir / shard["path"]
        size = HEADER_BYTES + shard["tokens"] * TOKEN_DTYPE.itemsize
        return record is not None and path.exists() and path.stat().st_size == size

    def write_shards(self) -> None:
        """Write every planned train shard that has no completion record yet, with `workers` processes."""
        todo = [s for s in self._planned()["shards"] if not self._done(s)]
        manifests = [s["manifest"] for s in self.job["sources"]]
        groups = [todo[i :: self.workers] for i in range(self.workers)]
        jobs = [(str(self.work), str(self.output_dir), manifests, self.shard_tokens, g) for g in groups if g]
        if len(jobs) <= 1:
            for job in jobs:
                _write_group(job)
            return
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            pool.map(_write_group, jobs)

    def _val_shards(self) -> list[tuple[Path, dict[str, Any]]]:
        """Each source's val shards, in source order: (source shard file, its record in the mixture)."""
        shards = []
        for source in self.sources:
            entries = [e for e in source.manifest["shards"] if e.get("split") == "val"]
            for index, entry in enumerate(entries):
                path = shard_name(f"val_{source.spec.name}", index)
                shard = {"path": path, "split": "val", "source": source.spec.name}
                shard |= {"tokens": entry["tokens"], "documents": entry["documents"]}
                shards.append((source.manifest_path.parent / entry["path"], shard))
        return shards

    def copy_val(self) -> None:
        """Copy each source's val shards into the mixture as `val_<name>_NNNNNN.bin`, recorded with `source`."""
        for original, shard in self._val_shards():
            if not self._done(shard):
                sha = write_shard(self.output_dir / shard["path"], read_shard(original))
                write_json_atomic(self.work / "done" / f"{shard['path']}.json", {**shard, "sha256": sha})

    def finish(self) -> dict[str, Any]:
        """Write `manifest.json` (last, atomically), drop the unit table and return the manifest."""
        planned = self._planned()
        shards = [*planned["shards"], *(shard for _, shard in self._val_shards())]
        records = [json.loads((self.work / "done" / f"{s['path']}.json").read_text()) for s in shards]
        fields = ("path", "split", "tokens", "documents", "sha256", "source")
        first = self.sources[0].manifest
        manifest = Manifest(
            format=MANIFEST_FORMAT,
            tokenizer=first.get("tokenizer"),
            vocab_size=first["vocab_size"],
            eot=first["eot"],
            config_hash=stable_hash(self.job),
            source=None,
            shards=[{k: r[k] for k in fields if k in r} for r in records],
            total_tokens={s: sum(r["tokens"] for r in records if r["split"] == s) for s in ("train", "val")},
            documents={s: sum(r["documents"] for r in records if r["split"] == s) for s in ("train", "val")},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            sources=[_source_entry(s, taken) for s, taken in zip(self.sources, planned["sources"], strict=True)],
        )
        write_manifest(self.output_dir, manifest)
        (self.work / "units.npy").unlink(missing_ok=True)
        return manifest.model_dump(exclude_unset=True)


def _source_entry(source: Source, taken: dict[str, Any]) -> dict[str, Any]:
    lineage = source.manifest.get("source") or {}
    return {
        "name": source.spec.name,
        "weight": source.weight,
        "manifest": str(source.manifest_path),
        "sha256": source.sha256,
        "run_id": lineage.get("run_id"),
        "config_hash": lineage.get("config_hash"),
        **taken,
    }


def _write_group(args: tuple[str, str, list[str], int, list[dict[str, Any]]]) -> None:
    """Write a group of planned train shards and their completion records (one process, sources mapped once).

    Each shard is gathered into one reused buffer, hashed and written to its temporary file here; a thread then
    fsyncs and renames it and writes its record (fsync releases the GIL) while the next shard is gathered, so
    the wait for the disk overlaps the work and no second buffer is needed.
    """
    work, output, manifests, shard_tokens, shards = args
    streams = [SourceStream(Path(m).parent, load_manifest(m)) for m in manifests]
    units = np.load(Path(work) / "units.npy", mmap_mode="r")
    starts = unit_starts(np.asarray(units[:, 2]))
    buffer = np.empty(max(s["tokens"] for s in shards), dtype=TOKEN_DTYPE)  # reused: fresh pages fault on each touch
    with ThreadPoolExecutor(1) as syncer:
        pending: Future[None] | None = None
        for shard in shards:
            path = Path(output) / shard["path"]
            tokens = gather(streams, units, starts, shard["index"] * shard_tokens, buffer[: shard["tokens"]])
            tmp, sha = write_shard_unsynced(path, tokens)
            if pending is not None:
                pending.result()
            pending = syncer.submit(_commit, tmp, path, Path(work), {**shard, "sha256": sha})
        if pending is not None:
            pending.result()


def _commit(tmp: Path, path: Path, work: Path, record: dict[str, Any]) -> None:
    sync_and_rename(tmp, path)
    write_json_atomic(work / "done" / f"{record['path']}.json", record)


def gather(streams: list[SourceStream], units: np.ndarray, starts: np.ndarray, lo: int, out: np.ndarray) -> np.ndarray:
    """Fill `out` with the tokens `[lo, lo + out.size)` of the mixture's stream, copied unit by unit; return it.

    Args:
        streams: each source's train stream.
        units: the plan's rows (source, offset, length), in mixture order.
        starts: `unit_starts` of their lengths.
        lo: first token of the window in the mixture's stream.
        out: uint16 array of the window's size.
    """
    hi = lo + out.size
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    last = int(np.searchsorted(starts, hi, side="left"))
    rows, bounds = np.asarray(units[first:last]), starts[first : last + 1]
    a, b = np.maximum(bounds[:-1], lo), np.minimum(bounds[1:], hi)  # each unit's part inside the window
    offsets, counts = rows[:, 1] + (a - bounds[:-1]), b - a
    # Every source's shards in one list, so one comprehension slices every unit in order (views, no copy); then
    # one copy into `out`: a per-unit copy or assignment in Python costs more than the bytes.
    maps = [tokens for stream in streams for tokens in stream.maps]
    sizes = np.array([tokens.size for tokens in maps], dtype=np.int64)
    which, local = np.empty_like(offsets), np.empty_like(offsets)
    base = 0
    for source, stream in enumerate(streams):
        mine = rows[:, 0] == source
        shard, local[mine] = stream.locate(offsets[mine])
        which[mine] = base + shard
        base += len(stream.maps)
    ends = local + counts
    pieces = [maps[m][i:j] for m, i, j in zip(which.tolist(), local.tolist(), ends.tolist(), strict=True)]
    for k in np.flatnonzero(ends > sizes[which]).tolist():  # a document continued in the next shard
        pieces[k] = streams[int(rows[k, 0])].span(int(offsets[k]), int(counts[k]))
    np.concatenate(pieces, out=out)
    return out


def run_mix(sources: list[SourceSpec], output_dir: Path, tokens: int, **settings: Any) -> dict[str, Any]:
    """Mix shard sets into `output_dir` (or resume, or reuse a finished mix); return its manifest.

    Args:
        sources: the `--source` specs.
        output_dir: the mixture's folder.
        tokens: train tokens of the mixture.
        **settings: `seed`, `max_epochs`, `shard_tokens`, `workers` of `MixStage`.

    Raises:
        MixError: bad settings or sources (before anything is written), or a folder that is not this mix's.
    """
    return run_stage(MixStage(sources, output_dir, tokens, **settings)).result
