"""Fixed evaluation sets: read once, tokenized once, scored the same way for every run of an ablation.

Two kinds, told apart by the first record of the file:

- `text`: JSONL (plain or compressed) or Parquet with a `text` field, read by the tokenize stage's reader
  (`pipelines.tokenize.inputs`, so a bad record is an error naming the file and line). Metric: bits per byte
  (`trainer.evaluate.text_loss`), comparable across tokenizers and variants.
- `multiple_choice`: JSONL in HellaSwag's format (`ctx`, 4 `endings`, `label`), or a task of the early-signal
  suite (`--eval-suite`, `trainer.evals`). Metric: `acc_norm`, each choice scored by its log-probability per
  character after its context, exactly as `fineforge eval suite` (and `fineforge eval hellaswag`) scores it.
- `aggregate`: `centered`, the suite's mean chance-centred acc_norm (`trainer.evals.suite.aggregate`), computed
  from the suite's task values at each point; nothing is prepared for it.

`prepare_eval_set` writes `DIR/eval/<name>/`: `tokens.npy` (text: the `[EOT, doc...]` stream) or `items.json`
(multiple choice: per choice the context and continuation tokens, the continuations' characters, the label),
`hashes.json` (the normalised-text hash of each document, for overlap with the curated data) and `set.json` last,
keyed by the file's sha256 and the task, so a changed file is prepared again and an unchanged one never is. The
set's name is the file name without its extensions (a suite task's set is named after the task).

Overlap: a document of an eval set that also occurs in a variant's curated data, by exact match of the hash of
its normalised text (lower case, punctuation and diacritics removed, whitespace collapsed: datatrove's
`simplify_text`, the normalisation MinHash dedup shingles). For a multiple-choice item the document is the
context followed by its correct continuation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq
from datatrove.utils.text import TextNormConfig

from model.tokenizer import EOT_TOKEN, encode
from pipelines.common.files import atomic_write, read_json, read_yaml_mapping, write_json_atomic
from pipelines.common.hashing import file_sha256
from pipelines.common.inputs import InputError, InputFile, discover, iter_json_lines
from pipelines.curate.dedup import normalize_for_shingles
from pipelines.shards import TOKEN_DTYPE
from pipelines.tokenize.inputs import iter_text_batches
from trainer.evals.data import iter_records
from trainer.evals.suite import Encoded, aggregate, encode_item
from trainer.evals.tasks import TASKS, Item, to_item

Kind = Literal["text", "multiple_choice", "aggregate"]
METRICS: dict[str, str] = {"text": "bpb", "multiple_choice": "acc_norm", "aggregate": "centered"}
LOWER_IS_BETTER = {"bpb": True, "acc_norm": False, "centered": False}
AGGREGATE = "centered"
SET_FILE = "set.json"
_NORM = TextNormConfig()


class EvalSetError(ValueError):
    """An evaluation set that cannot be used; the message names the file and the record."""


@dataclass(frozen=True)
class EvalSet:
    """A prepared evaluation set (the `eval_sets` entry of ablation.json, plus where its tokens are)."""

    name: str
    path: str
    kind: Kind
    size: int  # documents (text) or items (multiple choice)
    tokens: int
    sha256: str
    dir: str
    task: str | None = None  # the suite task whose formulation scores a multiple-choice set
    random: float | None = None  # chance level of a multiple-choice set

    @property
    def metric(self) -> str:
        """`bpb` for text, `acc_norm` for multiple choice, `centered` for the suite's aggregate."""
        return METRICS[self.kind]

    @property
    def score_key(self) -> str:
        """What a recorded score of this set depends on: the file's sha256, and for multiple choice the task whose
        formulation scored it (scores from before the suite, by mean token loss, carry no task and are redone)."""
        return f"{self.sha256}:{self.task}" if self.kind == "multiple_choice" else self.sha256

    def entry(self) -> dict[str, Any]:
        """The set as ablation.json lists it."""
        return {"name": self.name, "path": self.path, "kind": self.kind, "size": self.size, "tokens": self.tokens}


def eval_set_name(path: str | Path) -> str:
    """The name of an evaluation set: its file name without extensions (`c4-val.jsonl.gz` -> `c4-val`)."""
    return Path(str(path).rstrip("/")).name.split(".")[0] or "eval"


def normalised_hash(text: str) -> str:
    """A 16-hex-digit hash of the normalised text (see the module docstring)."""
    return hashlib.blake2b(normalize_for_shingles(text, _NORM).encode(), digest_size=8).hexdigest()


def check_eval_file(path: str) -> InputFile:
    """Return the one local JSONL or Parquet file an evaluation set names (its records are read later).

    Raises:
        EvalSetError: a missing path, a folder, a URL or another format, naming the path.
    """
    try:
        found = discover(path, ("jsonl", "parquet"))
    except InputError as e:
        raise EvalSetError(str(e)) from e
    if len(found.files) != 1 or "://" in found.files[0].url:
        raise EvalSetError(f"{path}: an evaluation set must be one local JSONL or Parquet file")
    return found.files[0]


def detect_kind(file: InputFile) -> Kind:
    """Tell a text set from a multiple-choice set by the file's format and its first record.

    Raises:
        EvalSetError: a JSONL file whose first record has neither `text` nor `ctx` and `endings`.
    """
    if file.format == "parquet":
        return "text"
    path = file.url
    try:
        for lineno, record in iter_json_lines(path):
            if {"ctx", "endings", "label"} <= record.keys():
                return "multiple_choice"
            if "text" in record:
                return "text"
            raise EvalSetError(
                f"{path}: line {lineno}: neither a text record (a 'text' field) nor a HellaSwag item "
                f"('ctx', 'endings', 'label'); found {', '.join(record)}"
            )
    except InputError as e:
        raise EvalSetError(str(e)) from e
    raise EvalSetError(f"{path}: holds no records")


def read_texts(file: InputFile) -> list[str]:
    """The documents of a text set, in file order.

    Raises:
        EvalSetError: a missing or non-string text, invalid JSON or an unreadable file, naming the record.
    """
    try:
        return [text for batch in iter_text_batches([file], "text") for text in batch]
    except InputError as e:
        raise EvalSetError(str(e)) from e


def read_choices(path: str, task: str = "hellaswag") -> list[Item]:
    """The items of a task file (HellaSwag's format by default), each checked as `fineforge eval suite` checks it.

    Raises:
        EvalSetError: a malformed record or an unreadable file, naming the file and line.
    """
    try:
        return [to_item(TASKS[task], record, where) for where, record in iter_records(Path(path))]
    except ValueError as e:  # InputError included
        raise EvalSetError(str(e)) from e


def read_eval_set(file: InputFile, task: str | None = None) -> tuple[Kind, list[Any]]:
    """Read and check a whole evaluation set: what `Ablation.plan` asks of each set before anything is written.

    Args:
        file: the set's file (`check_eval_file`).
        task: the suite task the file holds (None: a text set or a HellaSwag-format file, told by its records).

    Returns:
        (kind, the documents of a text set or the items of a multiple-choice set).

    Raises:
        EvalSetError: an unreadable file, a bad record, a set without items, or a text set whose documents are all
            blank (it has no byte to score: bits per byte would divide by zero after every run has trained).
    """
    kind = "multiple_choice" if task else detect_kind(file)
    if kind == "text":
        texts = read_texts(file)
        if not any(text.strip() for text in texts):
            raise EvalSetError(
                f"{file.url}: a text evaluation set needs at least one document with text; all {len(texts)} are blank"
            )
        return kind, texts
    items = read_choices(file.url, task or "hellaswag")
    if not items:
        raise EvalSetError(f"{file.url}: holds no multiple-choice items")
    return kind, items


def text_stream(texts: list[str]) -> np.ndarray:
    """GPT-2 tokens of the documents as one stream, `<|endoftext|>` before each (the shards' layout)."""
    parts = [np.array([EOT_TOKEN, *encode(t)], dtype=TOKEN_DTYPE) for t in texts]
    return np.concatenate(parts) if parts else np.empty(0, TOKEN_DTYPE)


def prepare_eval_set(path: str, name: str, cache_dir: Path, task: str | None = None) -> EvalSet:
    """Read, check and tokenize an evaluation set into `cache_dir` once (reused while the file is unchanged).

    Args:
        path: the set's file.
        name: its name in results and reports.
        cache_dir: its folder (`DIR/eval/<name>`).
        task: the suite task of a suite file (None: told by the records; HellaSwag's format is `hellaswag`).

    Returns:
        The prepared set.

    Raises:
        EvalSetError: an unusable file (missing, empty, unknown kind, bad record), naming it.
    """
    file = check_eval_file(path)
    sha = file_sha256(file.url)
    recorded = read_json(cache_dir / SET_FILE)
    task = task or ("hellaswag" if detect_kind(file) == "multiple_choice" else None)
    # a set prepared before sets had a task ("-") is prepared again: its items.json has the old layout
    if isinstance(recorded, dict) and (recorded.get("sha256"), recorded.get("name"), recorded.get("task", "-")) == (
        sha,
        name,
        task,
    ):
        return EvalSet(**recorded)
    kind, records = read_eval_set(file, task)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        texts = records
        stream = text_stream(texts)
        with atomic_write(cache_dir / "tokens.npy") as f:
            np.save(f, stream)
        hashes, size, tokens = [normalised_hash(t) for t in texts], len(texts), int(stream.size)
        random = None
    else:
        items: list[Item] = records
        encoded = [encode_item(item) for item in items]
        write_json_atomic(cache_dir / "items.json", [[e.pairs, e.chars, e.label] for e in encoded])
        hashes = [normalised_hash("".join(item.choices[item.label])) for item in items]
        size, tokens = len(items), sum(len(c) + len(t) for e in encoded for c, t in e.pairs)
        random = sum(1 / len(item.choices) for item in items) / size
    write_json_atomic(cache_dir / "hashes.json", hashes)
    prepared = EvalSet(name, file.url, kind, size, tokens, sha, str(cache_dir), task, random)
    write_json_atomic(cache_dir / SET_FILE, asdict(prepared))
    return prepared


def load_stream(eval_set: EvalSet) -> np.ndarray:
    """The token stream of a prepared text set."""
    return np.load(Path(eval_set.dir) / "tokens.npy")


def load_items(eval_set: EvalSet) -> list[Encoded]:
    """The tokenized items of a prepared multiple-choice set."""
    items = json.loads((Path(eval_set.dir) / "items.json").read_text())
    return [Encoded([(c, t) for c, t in pairs], chars, label) for pairs, chars, label in items]


def aggregate_set(parts: list[EvalSet]) -> EvalSet:
    """The `centered` pseudo-set over the suite's prepared task sets (its sha256 changes with any of theirs)."""
    digest = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
    return EvalSet(AGGREGATE, "", "aggregate", len(parts), 0, digest, "")


def add_aggregate(values: dict[str, float], parts: list[EvalSet]) -> None:
    """Set `values["centered"]` from the values of the suite's task sets `parts`, once every one has a value."""
    if parts and all(p.name in values for p in parts):
        values[AGGREGATE] = aggregate({p.name: {"acc_norm": values[p.name], "random": p.random} for p in parts})


def load_hashes(eval_set: EvalSet) -> list[str]:
    """The normalised-text hash of each document or item of a prepared set."""
    return json.loads((Path(eval_set.dir) / "hashes.json").read_text())


def data_hashes(data_dir: Path) -> set[str]:
    """Normalised-text hashes of every document in a curate output's `data/*.parquet`."""
    found: set[str] = set()
    for path in sorted(Path(data_dir).glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(columns=["text"], batch_size=1024):
            found.update(normalised_hash(t) for t in batch.column(0).to_pylist() if t is not None)
    return found


class Scorer:
    """Scores models on prepared evaluation sets, each set's tokens loaded once.

    Args:
        seq_len: the context of a text window (the runs' training sequence length).
        device: torch device (default: CUDA when available, else the CPU).
    """

    def __init__(self, seq_len: int, device: str | None = None):
        import torch

        self.seq_len = seq_len
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._loaded: dict[str, Any] = {}

    def _data(self, eval_set: EvalSet) -> Any:
        key = f"{eval_set.dir}:{eval_set.sha256}"
        if key not in self._loaded:
            self._loaded[key] = load_stream(eval_set) if eval_set.kind == "text" else load_items(eval_set)
        return self._loaded[key]

    def score(self, model: Any, eval_sets: list[EvalSet]) -> dict[str, float]:
        """Each set's metric for one model: bits per byte (text) or acc_norm (multiple choice).

        Args:
            model: a GPT in eval mode on this scorer's device.
            eval_sets: the sets to score.

        Returns:
            {set name: value}.
        """
        from trainer.evals.suite import score_items
        from trainer.evaluate import text_loss

        values = {}
        for eval_set in eval_sets:
            if eval_set.kind == "aggregate":  # computed from the others (`add_aggregate`)
                continue
            data = self._data(eval_set)
            if eval_set.kind == "text":
                values[eval_set.name] = text_loss(model, data, self.seq_len, self.device)["bpb"]
            else:
                values[eval_set.name] = score_items(model, data, self.device)["acc_norm"]
        return values


def trained_seq_len(path: Path) -> int | None:
    """The sequence length a model was trained with, where its files say so (else None).

    A training checkpoint records its config; a run folder (or its `hf/` export) has the run's `config.yaml`.
    Scoring beyond it would use position embeddings the model never trained.
    """
    from trainer.checkpoint import load_checkpoint

    if path.is_file():
        return (load_checkpoint(path).get("config") or {}).get("seq_len")
    for config in (path / "config.yaml", path.parent / "config.yaml"):
        data = read_yaml_mapping(config) if config.is_file() else {}
        if isinstance(data.get("seq_len"), int):
            return data["seq_len"]
    return None


def evaluate_text(checkpoint: str | Path, data: str | Path, seq_len: int | None = None) -> dict[str, Any]:
    """Loss and bits per byte of a model on a text set: what `fineforge eval text` prints.

    Args:
        checkpoint: a training checkpoint, a Hugging Face GPT-2 folder or a run folder.
        data: JSONL (plain or compressed) or Parquet with a `text` field.
        seq_len: window length; default the model's training sequence length where recorded, else its context.

    Returns:
        {"checkpoint", "data", "documents", "seq_len", "tokens", "bytes", "loss", "bpb"}.

    Raises:
        FileNotFoundError: no model at `checkpoint`.
        EvalSetError: an unusable text file (naming the record); ValueError: a bad checkpoint or seq_len.
    """
    import torch

    from trainer.checkpoint import load_model, resolve_model_path
    from trainer.evaluate import text_loss

    file = check_eval_file(str(data))
    if detect_kind(file) != "text":
        raise EvalSetError(f"{data}: a multiple-choice file; score it with `fineforge eval suite` or `eval hellaswag`")
    texts = read_texts(file)
    stream = text_stream(texts)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(checkpoint, device)
    if seq_len is None:
        seq_len = trained_seq_len(resolve_model_path(Path(checkpoint))) or model.config.block_size
    result = text_loss(model, stream, seq_len, device)
    return {"checkpoint": str(checkpoint), "data": str(data), "documents": len(texts), "seq_len": seq_len, **result}
