"""The lineage of a run (`run.json`): what it trained on, how, by which code; and the rule that keeps it true.

`run.json` names the manifest (path and sha256) and the curate run and config hash the shards came from, so a
checkpoint traces back to the crawl and thresholds that shaped it. A run directory belongs to one shard set:
resuming it on another is refused before step 1.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.common.run_record import recorded_run

REPO_ROOT = Path(__file__).resolve().parents[1]


class LineageError(ValueError):
    """A run directory that belongs to another shard set."""


def git_commit() -> str | None:
    """The git commit of the FineForge checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_record(
    config: dict[str, Any],
    manifest_path: Path,
    manifest_sha256: str,
    manifest: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The lineage part of run.json: what was trained on (manifest and its source), how, and by which code.

    Args:
        config: the full TrainConfig as a dict.
        manifest_path: the manifest trained on.
        manifest_sha256: its sha256.
        manifest: its contents.
        extra: further fields (model config, world size, device, resumed_from).

    Returns:
        The record, with status "running".
    """
    return {
        "status": "running",
        "run_dir": str(Path(config["out"]).resolve()),
        "manifest": {
            "path": str(manifest_path),
            "sha256": manifest_sha256,
            "config_hash": manifest.get("config_hash"),  # the tokenize settings' hash, when recorded
        },
        "source": {k: (manifest.get("source") or {}).get(k) for k in ("run_id", "config_hash")},
        **_mixture_sources(manifest),
        "config": config,
        **extra,
        "fineforge_version": metadata.version("fineforge"),
        "git_commit": git_commit(),
        "started": datetime.now(UTC).isoformat(),
    }


def _mixture_sources(manifest: dict[str, Any]) -> dict[str, Any]:
    """`sources` of a mixture's manifest (`pipelines.mix`) as run.json names them; nothing for one source."""
    if not manifest.get("sources"):
        return {}
    keys = ("name", "weight", "manifest", "sha256", "run_id", "config_hash", "train_tokens")
    return {"sources": [{k: s.get(k) for k in keys} for s in manifest["sources"]]}


def check_same_data(run_dir: Path, manifest_path: Path, manifest_sha256: str) -> None:
    """Refuse to resume a run directory whose checkpoints were trained on another shard set.

    Raises:
        LineageError: run.json names a manifest with other bytes.
    """
    recorded = (recorded_run(run_dir) or {}).get("manifest")
    if not isinstance(recorded, dict):
        return  # no lineage recorded (a checkpoint copied in by hand): nothing to compare against
    if recorded.get("sha256") != manifest_sha256:
        raise LineageError(
            f"{run_dir}: its checkpoints were trained on {recorded.get('path')} (manifest sha256 "
            f"{recorded.get('sha256')}), not on {manifest_path} (sha256 {manifest_sha256}); "
            "train into a new --out to start a run on these shards"
        )
