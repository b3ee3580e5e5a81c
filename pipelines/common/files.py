"""Files that readers must never see half-written: atomic writes with fsync, and the JSON contract files.

Every contract file (`summary.json`, `manifest.json`, `run.json`, checkpoints, shards) is written to a temporary
sibling `<name>.<12 hex digits>.tmp`, flushed and fsynced, then renamed over the final name, so a reader (or a rerun
after `kill -9` or a power cut) sees the old file or the complete new one, never a partial one. The random part makes
the temporary name unique to one writer: two writers of one file never write into or rename each other's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

TMP_PATTERN = r"\.[0-9a-f]{12}\.tmp"  # what `atomic_write` appends to a file's name while writing it


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path`; when the block succeeds, fsync it and rename it to `path`.

    Args:
        path: the final file.
        mode: "wb" or "w" (text is written as UTF-8).

    Yields:
        The open temporary file. If the block raises, `path` is untouched and the temporary file is removed.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def temp_sibling(path: Path) -> Path:
    """A new temporary name beside `path`: `<name>.<12 hex digits>.tmp` (`TMP_PATTERN`)."""
    return path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")


def sync_and_rename(tmp: Path, path: Path) -> None:
    """Fsync the written file `tmp`, then rename it to `path` (the end of an atomic write); `tmp` is removed if
    either fails."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented UTF-8 JSON (a trailing newline) through `atomic_write`.

    Args:
        path: destination file.
        obj: JSON-serialisable data.

    Returns:
        The path written.
    """
    with atomic_write(path, "w") as f:
        f.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any | None:
    """Read a JSON contract file; None when it is missing or not valid JSON (an unfinished or foreign file).

    Args:
        path: the file.

    Returns:
        The parsed value, or None.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def load_contract(path: Path, fields: tuple[str, ...], error: type[Exception], missing: str) -> dict[str, Any]:
    """Read a JSON contract file (summary, manifest, run record) and check that it has its top-level fields.

    Args:
        path: the file.
        fields: fields every reader relies on.
        error: the exception type to raise (the caller's own, e.g. ShardError).
        missing: what its absence means, e.g. "the shard set is missing or incomplete".

    Returns:
        The parsed object.

    Raises:
        error: the file is missing, not JSON, not an object, or lacks a field; the message names the file.
    """
    if not path.is_file():
        raise error(f"{path}: missing; {missing}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise error(f"{path}: not a JSON object but a {type(data).__name__}")
    if absent := [field for field in fields if field not in data]:
        raise error(f"{path}: lacks the field(s) {', '.join(repr(f) for f in absent)}")
    return data


class OutputFolderError(ValueError):
    """An output folder that cannot be used (a file, unwritable, or holding files FineForge may not replace)."""


def make_output_dir(path: str | Path) -> Path:
    """Create an output folder (and its parents) or say in one line why it cannot be one.

    Args:
        path: the folder.

    Returns:
        The folder, which exists and is writable.

    Raises:
        OutputFolderError: the path is a file, or the folder cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{path}: is a file, not a folder; give a folder as the output")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputFolderError(f"{path}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{path}: the output folder is not writable")
    return path


def check_replaceable(path: Path, ours: bool, what: str, option: str, error: type[ValueError]) -> None:
    """Refuse an output file path that is a folder, or that holds a file FineForge did not write.

    FineForge recognises its own files by a stamp it writes into them (a quality model's card names its `format`;
    an HTML report begins with the page head every report has); an existing file without it is someone else's,
    and FineForge never replaces it.

    Args:
        path: the file about to be written.
        ours: whether `path` carries FineForge's stamp (the caller reads it; False where nothing is there).
        what: what FineForge writes there, for the message ("a FineForge report").
        option: the option that named the path ("--html").
        error: the caller's exception type (a ValueError, so the CLI says it in one line).

    Raises:
        error: naming the path and the problem.
    """
    if path.is_dir():
        raise error(f"{path}: is a folder; {option} names the file to write")
    if path.exists() and not ours:
        raise error(
            f"{path}: exists and is not {what}; FineForge replaces only files it wrote: choose another {option}"
        )


class SettingsFileError(ValueError):
    """A settings file (YAML) that cannot be read; the message names the file, the line and the problem."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error.

    PyYAML keeps the last of two equal keys without a word, so a section pasted twice (`filters:` ... `filters:`)
    silently loses the first; YAML 1.2 itself requires the keys of a mapping to be unique. A merge key
    (`<<: *anchor`) may still be overridden by an explicit key, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct a mapping after checking that no scalar key occurs twice in it.

        Raises:
            yaml.constructor.ConstructorError: a repeated key, marked at its second occurrence.
        """
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first[key]})", key_node.start_mark
                )
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML settings file that must hold a mapping (an empty file is an empty mapping).

    Every YAML file FineForge reads goes through here, so every one refuses a key written twice.

    Args:
        path: the file.

    Returns:
        The mapping.

    Raises:
        SettingsFileError: the file is missing, not text, not valid YAML (naming line and column; a key written
            twice in one mapping included) or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsFileError(f"{path}: no such settings file") from None
    except UnicodeDecodeError as e:
        raise SettingsFileError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SettingsFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SettingsFileError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SettingsFileError(f"{path}: expected a YAML mapping of settings at the top level, got a {kind}")
    return data


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link `src` to `dst` (no bytes copied), or copy it where links are impossible (other filesystem)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
