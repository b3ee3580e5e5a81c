"""Find and read what was made from a curate run: token shards (tokenize) and a training run (train).

Both are optional inputs of the report. They are taken from explicit paths when given (`--shards DIR`,
`--train RUN_DIR`), else discovered by lineage next to the curate directory:

- shards: a sibling folder of the curate dir (same parent) whose `manifest.json` has `source.path`
  resolving to the curate dir (the tokenize contract records it);
- training: a folder holding `metrics.jsonl` and a `run.json` that names that manifest or its folder anywhere
  among its string values (the train contract records the manifest path): first a sibling of the shards, then
  where a `pipelines.common.layout.DatasetLayout` puts runs (an ablation variant's `runs/seed-<s>`, the UI's
  `FINEFORGE_HOME/runs/<dataset>`).

So the layout `RUN/curated`, `RUN/shards`, `RUN/run` (what `fineforge demo` writes) is found from
`RUN/curated` alone, and so are a UI dataset's and an ablation variant's. A curate dir that is a variant of an
ablation (`DIR/<variant>/curated` with `DIR/ablation.json` listing the variant) links to the ablation's
comparison report. Tokens per document come
from the shards themselves: every document is preceded by EOT (50256), so document lengths are the gaps between
EOT positions, one vectorised pass per shard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.files import read_json
from pipelines.common.layout import run_candidates
from pipelines.common.metrics import MetricsError, read_metrics
from pipelines.common.run_record import RUN_FILE, recorded_run, run_path
from pipelines.report.data import ReportError
from pipelines.shards import MANIFEST_NAME, ShardError, load_manifest, read_shard


def _resolve(path: str | Path, base: Path) -> Path:
    path = Path(path)
    return (path if path.is_absolute() else base / path).resolve()


def find_shards(run_dir: Path) -> Path | None:
    """Return the sibling folder whose manifest's `source.path` is `run_dir`, or None."""
    target = Path(run_dir).resolve()
    for manifest in sorted(target.parent.glob(f"*/{MANIFEST_NAME}")):
        try:
            source = json.loads(manifest.read_text()).get("source") or {}
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
        path = source.get("path") if isinstance(source, dict) else None
        if isinstance(path, str) and _resolve(path, manifest.parent) == target:  # a list: several sources mixed
            return manifest.parent
    return None


def _strings(obj: Any) -> list[str]:
    """Every string value inside a JSON value, recursively."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def find_training(shard_dir: Path) -> Path | None:
    """Return the training run whose run.json names `shard_dir` or its manifest, or None.

    Args:
        shard_dir: the shard folder; its siblings are tried first, then the layouts' runs (`run_candidates`).
    """
    shard_dir = Path(shard_dir).resolve()
    targets = {shard_dir, shard_dir / MANIFEST_NAME}
    candidates = [*sorted(shard_dir.parent.glob(f"*/{RUN_FILE}")), *(run_path(c) for c in run_candidates(shard_dir))]
    for run_json in candidates:
        if not (run_json.parent / "metrics.jsonl").is_file():
            continue
        values = _strings(recorded_run(run_json.parent))
        if any(_resolve(v, run_json.parent) in targets for v in values if "/" in v or v.endswith(".json")):
            return run_json.parent
    return None


def find_ablation(run_dir: Path) -> dict[str, str] | None:
    """Return {"variant", "report"} when `run_dir` is a variant's curate dir in an ablation, else None.

    `report` is the ablation's report.html relative to `run_dir` (a link that works wherever the folder moves).
    """
    run_dir = Path(run_dir).resolve()
    ablation = read_json(run_dir.parent.parent / "ablation.json")
    if run_dir.name != "curated" or not isinstance(ablation, dict):
        return None
    names = [v.get("name") for v in ablation.get("variants") or [] if isinstance(v, dict)]
    if run_dir.parent.name not in names:
        return None
    return {"variant": run_dir.parent.name, "report": "../../report.html"}


def doc_token_counts(shard_paths: list[Path], eot: int) -> np.ndarray:
    """Tokens per document (without its EOT) across shards of one split, read in order.

    A document may continue across a shard boundary, so positions are taken over the split as a whole.
    """
    starts, offset = [], 0
    for path in shard_paths:
        tokens = read_shard(path)
        starts.append(np.flatnonzero(tokens == eot) + offset)
        offset += tokens.size
    if not offset:
        return np.zeros(0, dtype=np.int64)
    positions = np.concatenate(starts)
    if positions.size == 0 or positions[0] != 0:
        raise ReportError(f"{shard_paths[0]}: does not start with EOT ({eot}); not a document-aligned shard set")
    return np.diff(np.append(positions, offset)) - 1


def load_tokens(shard_dir: Path) -> dict[str, Any]:
    """Read a shard set's manifest and its shards.

    Args:
        shard_dir: the tokenize output folder (holding manifest.json).

    Returns:
        {"dir", "manifest": {...totals...}, "splits": [{split, shards, documents, tokens, manifest_documents,
        manifest_tokens}], "doc_tokens": np.ndarray over all splits}.

    Raises:
        ReportError: a missing or malformed manifest or shard, naming the file.
    """
    shard_dir = Path(shard_dir)
    try:
        manifest = load_manifest(shard_dir)
    except ShardError as e:
        raise ReportError(str(e)) from e
    eot = int(manifest.get("eot", 50256))
    by_split: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["shards"]:
        by_split.setdefault(entry["split"], []).append(entry)
    splits, lengths = [], []
    for split in sorted(by_split, key=lambda s: (s != "train", s)):
        entries = by_split[split]
        try:
            counts = doc_token_counts([shard_dir / e["path"] for e in entries], eot)
        except (ShardError, OSError) as e:
            raise ReportError(str(e)) from e
        lengths.append(counts)
        splits.append(
            {
                "split": split,
                "shards": len(entries),
                "documents": int(counts.size),
                "tokens": int(counts.sum() + counts.size),
                "manifest_documents": (manifest.get("documents") or {}).get(split),
                "manifest_tokens": (manifest.get("total_tokens") or {}).get(split),
            }
        )
    return {
        "dir": str(shard_dir),
        "source": manifest.get("source"),
        "splits": splits,
        "doc_tokens": np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64),
    }


def load_training(train_dir: Path) -> dict[str, Any]:
    """Read a training run's `metrics.jsonl` (step and eval events).

    Returns:
        {"dir", "steps": [(step, loss)], "evals": [(step, val_loss)], "by_source": {name: [(step, val_loss)]} (a
        mixture's val loss per source, `pipelines.mix`; empty otherwise), "last": {...}, "status"}.

    Raises:
        ReportError: a line that is not JSON, naming the file and line.
    """
    train_dir = Path(train_dir)
    path = train_dir / "metrics.jsonl"
    if not path.is_file():
        raise ReportError(f"{path}: missing; {train_dir} is not a training run")
    steps, evals, last = [], [], {}
    by_source: dict[str, list[tuple[int, float]]] = {}
    try:
        records = read_metrics(path)
    except MetricsError as e:
        raise ReportError(str(e)) from e
    for event in records:
        if event.get("type") == "step" and "loss" in event:
            steps.append((int(event["step"]), float(event["loss"])))
            last = event
        elif event.get("type") == "eval" and "val_loss" in event:
            evals.append((int(event["step"]), float(event["val_loss"])))
            for name, loss in (event.get("val_loss_by_source") or {}).items():
                by_source.setdefault(name, []).append((int(event["step"]), float(loss)))
    run = recorded_run(train_dir)
    status = run.get("status") if run is not None else None
    return {
        "dir": str(train_dir),
        "steps": steps,
        "evals": evals,
        "by_source": by_source,
        "last": last,
        "status": status,
    }
