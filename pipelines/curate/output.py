"""The curate output folder: whose it is, what may be replaced in it, and publishing a run's results into it.

FineForge deletes only what it wrote. A curate output folder is marked as FineForge's by `.fineforge-curate.json`,
which also lists every file curate published into `data/`, `rejects/`, `quarantine/` and `quality/`. Before anything
runs, `CurateOutput.claim` checks the folder:

- an empty or new folder, or one marked as a curate output, is taken (and marked);
- a non-empty folder without the mark is refused unless `overwrite` is set (as `fineforge tokenize` does);
- a file in `data/`, `rejects/`, `quarantine/` or `quality/` that curate did not publish there is never deleted
  silently: one of curate's own kinds (`data/*.parquet`, `rejects/<stage>/*.parquet`, `quarantine/*.jsonl`,
  `quality/*.parquet`) is replaced only with `overwrite`, anything else (a note, a user's own file) stops the
  run, naming it;
- an input file inside the output folder is refused whatever the flags: publishing would replace it.

Publishing replaces each of the folders by the run's (hard links from the steps' work folders, then one rename each;
a folder the run has no source for, `quality/` with the quality stage off, is removed).
The mark lists the union of the old and new files while the folders are swapped and only the new ones afterwards,
so a crash in between never leaves a file of ours that looks foreign to the rerun. Folders written by FineForge
before the mark existed are recognised by their work folders (`.work/<run_id>/job.json`): there, files of curate's
own kinds count as published.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from pipelines.common.files import OutputFolderError, link_or_copy, make_output_dir, read_json, write_json_atomic
from pipelines.common.inputs import InputFile
from pipelines.common.locks import LOCK_FILE
from pipelines.curate.summary import FILENAME as SUMMARY_FILE

OWNER_FILE = ".fineforge-curate.json"
LOG_FILE = "curate.log"  # datatrove's log of this folder's runs, appended (`fineforge curate` without --verbose)
PUBLISHED_DIRS = ("data", "rejects", "quarantine", "quality", "dedup_index", "clusters")
_OWN_KINDS = {
    "data": ("*.parquet",),
    "rejects": ("*/*.parquet",),
    "quarantine": ("*.jsonl",),
    "quality": ("*.parquet",),
    "dedup_index": ("*.npy", "ids.parquet", "meta.json"),
    "clusters": ("*.parquet",),
}
_SHOWN = 5  # file names quoted in an error


def _files(folder: Path) -> list[str]:
    """Every file (and link) under `folder`, as sorted POSIX paths relative to it."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _own_kind(name: str, relative: str) -> bool:
    return any(Path(relative).match(pattern) for pattern in _OWN_KINDS[name])


def _legacy_owned(output_dir: Path) -> bool:
    """Whether the folder holds work folders of a curate run from before the ownership mark."""
    return any((output_dir / ".work").glob("*/job.json"))


def _quote(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
    return ", ".join(paths[:_SHOWN]) + more


class CurateOutput:
    """The output folder of curate runs, as far as curate may change it.

    Args:
        path: the output folder (absolute).
        overwrite: replace files of curate's own kinds that another run or tool left there.
    """

    def __init__(self, path: Path, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.owner_file = self.path / OWNER_FILE

    def _record(self) -> dict | None:
        record = read_json(self.owner_file)
        return record if isinstance(record, dict) and record.get("stage") == "curate" else None

    def published(self) -> dict[str, list[str]]:
        """The files curate published into each folder (for a legacy folder: those of curate's own kinds)."""
        record = self._record()
        if record is not None:
            listed = record.get("published") or {}
            return {name: list(listed.get(name) or []) for name in PUBLISHED_DIRS}
        if _legacy_owned(self.path):
            return {name: [f for f in _files(self.path / name) if _own_kind(name, f)] for name in PUBLISHED_DIRS}
        return {name: [] for name in PUBLISHED_DIRS}

    def owned(self) -> bool:
        """Whether the folder is a curate output folder (marked, or from before the mark)."""
        return self._record() is not None or _legacy_owned(self.path)

    def check_replaceable(self) -> None:
        """Raise unless replacing `data/`, `rejects/` and `quarantine/` deletes only what curate may delete.

        Raises:
            OutputFolderError: naming files curate did not publish there (or, without `overwrite`, files of its
                own kinds that another run or tool left there).
        """
        published = self.published()
        foreign, ours = [], []
        for name in PUBLISHED_DIRS:
            for relative in _files(self.path / name):
                if relative not in published[name]:
                    (ours if _own_kind(name, relative) else foreign).append(f"{name}/{relative}")
        if foreign:
            raise OutputFolderError(
                f"{self.path}: {_quote(foreign)} {'was' if len(foreign) == 1 else 'were'} not written by FineForge, "
                "and curate replaces data/, rejects/ and quarantine/ as a whole; move them out of the output folder "
                "or choose another --output"
            )
        if ours and not self.overwrite:
            raise OutputFolderError(
                f"{self.path}: {_quote(ours)} {'was' if len(ours) == 1 else 'were'} not written by this curate "
                "output's runs; choose another --output, or replace them with --overwrite"
            )

    def claim(self, files: Iterable[InputFile]) -> None:
        """Make the folder this curate output's, or raise naming what is in the way (see the module docstring).

        Args:
            files: the run's input files (none may lie inside the output folder).

        Raises:
            OutputFolderError: the folder cannot be used as it is.
        """
        inside = [f.url for f in files if "://" not in f.url and Path(f.url).resolve().is_relative_to(self.path)]
        if inside:
            raise OutputFolderError(
                f"input {_quote(inside)} lies inside the output folder {self.path}, where curate writes its results; "
                "choose an --output outside the inputs"
            )
        make_output_dir(self.path)
        if not self.owned():
            present = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)
            if present and not self.overwrite:
                raise OutputFolderError(
                    f"{self.path}: not empty ({_quote(present)}) and not a curate output folder; choose an empty or "
                    "new --output, or write into it anyway with --overwrite (curate replaces only data/, rejects/, "
                    f"quarantine/ and {SUMMARY_FILE}, and only files of its own kinds)"
                )
        self.check_replaceable()
        self._write_record(self.published())

    def publish(self, sources: dict[str, list[Path]]) -> None:
        """Replace each published folder by the union of its sources (hard links where possible).

        Args:
            sources: for each of PUBLISHED_DIRS, the run's folders that make it up (their files are merged; a
                missing source adds nothing); a name without sources is published empty, that is removed.

        Raises:
            OutputFolderError: files appeared there since `claim` that curate may not delete.
        """
        self.check_replaceable()
        before = self.published()
        new = {
            name: sorted({f for source in sources.get(name, []) for f in _files(source)}) for name in PUBLISHED_DIRS
        }
        self._write_record({name: sorted(set(before[name]) | set(new[name])) for name in PUBLISHED_DIRS})
        for name in PUBLISHED_DIRS:
            target, staging = self.path / name, self.path / f".{name}.publishing"
            shutil.rmtree(staging, ignore_errors=True)
            if name not in sources:
                shutil.rmtree(target, ignore_errors=True)
                continue
            staging.mkdir(parents=True)
            for source in sources[name]:
                if source.exists():
                    shutil.copytree(source, staging, copy_function=link_or_copy, dirs_exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        self._write_record(new)

    def _write_record(self, published: dict[str, list[str]]) -> None:
        write_json_atomic(self.owner_file, {"stage": "curate", "published": published})
