"""`fineforge mix` on real shard sets written by the real tokenize: shares, whole documents, upsampling and its
limit, byte-identity across workers, resume after kill -9, and every bad input as one `error:` line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from model.tokenizer import EOT_TOKEN
from pipelines.mix import MixError, parse_source, run_mix
from pipelines.shards import read_shard, verify
from pipelines.tokenize import run_tokenize
from tests.builtin_text import builtin_web_texts, write_jsonl_gz

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARD_TOKENS = 20_000  # several shards per source, so documents cross shard boundaries in the sources


def _documents(folder: Path, split: str = "train") -> list[bytes]:
    """Every [EOT, doc...] unit of a shard set's split, as bytes, in stream order."""
    manifest = json.loads((folder / "manifest.json").read_text())
    stream = np.concatenate([read_shard(folder / e["path"]) for e in manifest["shards"] if e["split"] == split])
    starts = [*np.flatnonzero(stream == EOT_TOKEN).tolist(), stream.size]
    return [stream[a:b].tobytes() for a, b in zip(starts, starts[1:], strict=False)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real shard sets of disjoint built-in texts: web (big), edu (middle), wiki (small, 40 documents)."""
    base = tmp_path_factory.mktemp("mix_sources")
    texts = builtin_web_texts()
    parts = {"web": texts[:500], "edu": texts[500:860], "wiki": texts[860:900]}
    out = {}
    for name, part in parts.items():
        data = write_jsonl_gz(base / f"{name}.jsonl.gz", part)
        out[name] = base / name
        run_tokenize([str(data)], out[name], shard_tokens=SHARD_TOKENS, val_tokens=2_000 if name != "wiki" else 500)
    return out


def _owner(sources: dict[str, Path]) -> dict[bytes, str]:
    owner: dict[bytes, str] = {}
    for name, folder in sources.items():
        for doc in _documents(folder):
            owner.setdefault(doc, name)
    return owner


def test_shares_are_within_half_a_percent_of_the_weights(sources: dict[str, Path], tmp_path: Path) -> None:
    specs = [parse_source(f"{n}={sources[n]}:{w}") for n, w in (("web", 5), ("edu", 3), ("wiki", 2))]
    manifest = run_mix(specs, tmp_path / "mix", 100_000, shard_tokens=SHARD_TOKENS)
    verify(tmp_path / "mix")
    owner = _owner(sources)
    counted: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    for doc in _documents(tmp_path / "mix"):
        counted[owner[doc]] += len(doc) // 2  # KeyError: a document that is not one source's whole document
        docs[owner[doc]] += 1
    total = sum(counted.values())
    assert total == manifest["total_tokens"]["train"]
    for entry, weight in zip(manifest["sources"], (0.5, 0.3, 0.2), strict=True):
        assert abs(counted[entry["name"]] / total - weight) < 0.005, (entry["name"], counted)
        assert entry["train_tokens"] == counted[entry["name"]] and entry["documents"] == docs[entry["name"]]
        assert entry["weight"] == pytest.approx(weight)
        assert entry["sha256"] == hashlib.sha256((sources[entry["name"]] / "manifest.json").read_bytes()).hexdigest()
    # each source's val split is kept whole and apart, recorded with its source
    for name in ("web", "edu", "wiki"):
        val = [e for e in manifest["shards"] if e.get("source") == name]
        assert val and all(e["split"] == "val" for e in val)
        copied = b"".join(read_shard(tmp_path / "mix" / e["path"]).tobytes() for e in val)
        assert copied == b"".join(_documents(sources[name], "val"))


def test_upsampling_repeats_whole_documents_up_to_max_epochs(sources: dict[str, Path], tmp_path: Path) -> None:
    wiki_tokens = json.loads((sources["wiki"] / "manifest.json").read_text())["total_tokens"]["train"]
    tokens = 5 * wiki_tokens  # wiki's half needs 2.5 passes over it
    specs = [parse_source(f"wiki={sources['wiki']}:1"), parse_source(f"web={sources['web']}:1")]
    manifest = run_mix(specs, tmp_path / "mix", tokens, shard_tokens=SHARD_TOKENS, max_epochs=3)
    wiki = manifest["sources"][0]
    assert wiki["epochs"] == pytest.approx(2.5, abs=0.05)
    originals = Counter(_documents(sources["wiki"]))
    repeats = Counter(d for d in _documents(tmp_path / "mix") if d in originals)
    assert set(repeats) == set(originals)  # two whole passes cover every document
    assert set(repeats.values()) <= {2, 3} and sum(repeats.values()) == wiki["documents"]

    result = CliRunner().invoke(
        app,
        ["mix", "--source", f"wiki={sources['wiki']}:1", "--source", f"web={sources['web']}:1"]
        + ["--tokens", str(tokens), "--output", str(tmp_path / "refused"), "--max-epochs", "2"],
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: source 'wiki' ({sources['wiki'] / 'manifest.json'}) has {wiki_tokens:,} train tokens in "
        f"{json.loads((sources['wiki'] / 'manifest.json').read_text())['documents']['train']:,} documents; its share "
        f"of {round(tokens / 2):,} tokens would need 2.5 epochs, more than --max-epochs 2: lower its weight or "
        "--tokens, or raise --max-epochs"
    )
    assert not (tmp_path / "refused").exists()


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def test_output_is_byte_identical_for_any_worker_count(sources: dict[str, Path], tmp_path: Path) -> None:
    specs = [parse_source(f"web={sources['web']}:0.6"), parse_source(f"edu={sources['edu']}:0.4")]
    one = run_mix(specs, tmp_path / "one", 60_000, shard_tokens=5_000, seed=3)
    two = run_mix(specs, tmp_path / "two", 60_000, shard_tokens=5_000, seed=3, workers=2)
    strip = [{k: v for k, v in m.items() if k != "created"} for m in (one, two)]
    assert strip[0] == strip[1] and len(one["shards"]) > 12
    one_files, two_files = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    one_files.pop("manifest.json"), two_files.pop("manifest.json")
    assert one_files == two_files
    other_seed = run_mix(specs, tmp_path / "seed4", 60_000, shard_tokens=5_000, seed=4)
    assert other_seed["shards"][0]["sha256"] != one["shards"][0]["sha256"]


KILLABLE_MIX = """
import sys
from pipelines.mix import parse_source, run_mix
specs = [parse_source(s) for s in sys.argv[3:]]
run_mix(specs, sys.argv[1], int(sys.argv[2]), shard_tokens=1_025, max_epochs=4)
"""


def test_resume_after_kill_9_redoes_only_missing_shards(sources: dict[str, Path], tmp_path: Path) -> None:
    args = [f"web={sources['web']}:0.7", f"edu={sources['edu']}:0.3"]
    tokens = 600_000  # about 590 shards of 1,025 tokens: the kill lands while they are written
    reference = tmp_path / "reference"
    run_mix([parse_source(a) for a in args], reference, tokens, shard_tokens=1_025, max_epochs=4)
    out = tmp_path / "out"
    done = out / ".mix" / "done"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_MIX, str(out), str(tokens), *args], cwd=REPO_ROOT)
    deadline = time.monotonic() + 300  # a generous wait for the first 20 shards on a loaded machine
    while proc.poll() is None and time.monotonic() < deadline and len(list(done.glob("*.json"))) < 20:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the mix ended before it could be killed"
    assert not (out / "manifest.json").exists()
    kept = {p.name: p.stat().st_ino for p in out.glob("train_*.bin") if (done / f"{p.name}.json").exists()}
    assert kept
    run_mix([parse_source(a) for a in args], out, tokens, shard_tokens=1_025, max_epochs=4)
    assert {name: (out / name).stat().st_ino for name in kept} == kept  # finished shards were not rewritten
    expected, got = _tree(reference), _tree(out)
    expected.pop("manifest.json"), got.pop("manifest.json")
    assert got == expected
    verify(out)


def _relabelled(source: Path, dest: Path, **fields: object) -> Path:
    """A copy of a shard set whose manifest claims another tokenizer or vocabulary."""
    dest.mkdir()
    manifest = json.loads((source / "manifest.json").read_text())
    for entry in manifest["shards"]:
        (dest / entry["path"]).write_bytes((source / entry["path"]).read_bytes())
    (dest / "manifest.json").write_text(json.dumps({**manifest, **fields}))
    return dest


BAD = {
    "zero weight": (["web={web}:0"], "weight must be a positive number, got 0"),
    "negative weight": (["web={web}:-0.5"], "weight must be a positive number, got -0.5"),
    "weight not a number": (["web={web}:lots"], "weight 'lots' is not a number"),
    "duplicate name": (["web={web}:1", "web={edu}:1"], "--source names must be unique; repeated: web"),
    "not a shard set": (["web={web}:1", "raw={raw}:1"], "manifest.json: missing; no manifest"),
    "other tokenizer": (["web={web}:1", "odd={odd}:1"], "tokenizer 'cl100k_base', but source 'web'"),
    "other vocabulary": (["web={web}:1", "wide={wide}:1"], "vocab_size 50304, but source 'web'"),
    "share no source can fill": (["wiki={wiki}:1"], "more than --max-epochs 4"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_and_writes_nothing(case: str, sources: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("not shards")
    folders = {**{k: str(v) for k, v in sources.items()}, "raw": str(tmp_path / "raw")}
    if case == "other tokenizer":
        folders["odd"] = str(_relabelled(sources["edu"], tmp_path / "odd", tokenizer="cl100k_base"))
    if case == "other vocabulary":
        folders["wide"] = str(_relabelled(sources["edu"], tmp_path / "wide", vocab_size=50304))
    specs, message = BAD[case]
    args = ["mix", "--tokens", "1000000", "--output", str(tmp_path / "out")]
    for spec in specs:
        args += ["--source", spec.format(**folders)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_it_did_not_write(sources: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(MixError, match="not empty and not a mix folder"):
        run_mix([parse_source(f"web={sources['web']}:1")], out, 10_000, shard_tokens=SHARD_TOKENS)
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
