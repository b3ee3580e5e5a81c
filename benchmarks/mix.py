"""Mix throughput against `cp` of the same bytes, side by side, and peak memory at two corpus sizes.

Sources: the built-in web text (`tests/builtin_text.py`) tokenized once by the real `run_tokenize`, its document
stream then tiled into two shard sets ("web", "edu", with manifests, 10M-token shards) of `size / 2` tokens each,
so the sources hold real GPT-2 documents at any size without paying BPE for every token. For each size, in turn,
best of `--repeat`:

- mix: `python -m cli mix --source web=..:0.6 --source edu=..:0.4 --tokens 0.8 x size` (one worker) in a child
  process: indexing every source document, picking, gathering, sha256 and fsync of every shard, the manifest;
- start: a child that only imports what that command imports (`cli`, `pipelines.mix`), so "mix work" = mix - start;
- cp: `cp --reflink=never -r` of the finished mixture's folder, then `sync` of its shards (the same bytes, made
  as durable as the mix makes its own);
- cp+sha256sum: the same copy, then `sha256sum` of the copied shards: the copy plus the checksum every shard
  set's manifest needs, which mix computes too (coreutils' sha256sum may lack the SHA-NI instructions);
- cp+openssl: the same with `openssl dgst -sha256` (when installed), the OpenSSL code `hashlib` uses in mix.

Times are wall seconds and CPU seconds (user + system of the child and its children); tokens/s per core is
mixed tokens / CPU seconds, which load from other sessions on this shared machine distorts less than wall time.
Each baseline's ratio to mix is printed per core and in wall time. Peak memory is the mix child's peak anonymous
resident memory (RssAnon, polled every 5 ms): the memory a mix needs. The source and output pages it maps are
page cache, shared and reclaimable; VmHWM, which counts them, is printed beside it.
Run: `.venv/bin/python -m benchmarks.mix [--sizes 40000000 160000000] [--repeat 2]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model.tokenizer import EOT_TOKEN, VOCAB_SIZE
from pipelines.shards import MANIFEST_FORMAT, Manifest, read_shard, shard_name, write_manifest, write_shard
from pipelines.tokenize import run_tokenize
from tests.builtin_text import builtin_web_texts, write_jsonl_gz

SHARD_TOKENS = 10_000_000
REPO_ROOT = Path(__file__).resolve().parents[1]
# baseline name -> checksum command run on the copied shards after the copy (none for plain cp)
BASELINES = {"cp": "", "cp+sha256sum": "sha256sum"} | (
    {"cp+openssl": "openssl dgst -sha256"} if shutil.which("openssl") else {}
)


def base_stream(folder: Path) -> np.ndarray:
    """The built-in web text tokenized by `run_tokenize` (train split, [EOT, doc...] units)."""
    data = write_jsonl_gz(folder / "builtin.jsonl.gz", builtin_web_texts())
    manifest = run_tokenize([str(data)], folder / "base", val_tokens=0)
    return np.concatenate([read_shard(folder / "base" / e["path"]) for e in manifest["shards"]])


def tiled_source(folder: Path, stream: np.ndarray, tokens: int, offset: int) -> Path:
    """A shard set of about `tokens` tokens: whole documents of `stream` repeated, starting at document `offset`."""
    starts = np.flatnonzero(stream == EOT_TOKEN)
    rolled = np.concatenate([stream[starts[offset] :], stream[: starts[offset]]])
    tiled = np.tile(rolled, -(-tokens // rolled.size))
    cut = int(np.flatnonzero(tiled[: tokens + 1] == EOT_TOKEN)[-1])  # whole documents only
    folder.mkdir(parents=True)
    shards = []
    for index, lo in enumerate(range(0, cut, SHARD_TOKENS)):
        piece = tiled[lo : min(lo + SHARD_TOKENS, cut)]
        sha = write_shard(folder / shard_name("train", index), piece)
        docs = int((piece == EOT_TOKEN).sum())
        shards.append({"path": shard_name("train", index), "split": "train", "tokens": int(piece.size),
                       "documents": docs, "sha256": sha})  # fmt: skip
    totals = {"train": cut, "val": 0}
    documents = {"train": sum(s["documents"] for s in shards), "val": 0}
    manifest = Manifest(format=MANIFEST_FORMAT, tokenizer="gpt2", vocab_size=VOCAB_SIZE, eot=EOT_TOKEN,
                        shards=shards, total_tokens=totals, documents=documents)  # fmt: skip
    write_manifest(folder, manifest)
    return folder


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k in ("RssAnon", "VmHWM")}


def timed(cmd: list[str]) -> dict[str, float]:
    """Run `cmd`; return its wall and CPU seconds and its peak anonymous and total resident memory (MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    anon = hwm = 0
    while proc.poll() is None:
        status = _status(proc.pid)
        anon, hwm = max(anon, status.get("RssAnon", 0)), max(hwm, status.get("VmHWM", 0))
        time.sleep(0.005)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "anon_mb": anon / 1024, "hwm_mb": hwm / 1024}


def measure(root: Path, stream: np.ndarray, size: int, repeat: int) -> dict[str, object]:
    """Mix, start-up alone and each baseline at one corpus size, alternately, best of `repeat` each (by CPU s)."""
    web = tiled_source(root / f"web-{size}", stream, size // 2, 0)
    edu = tiled_source(root / f"edu-{size}", stream, size // 2, 400)
    mix = [sys.executable, "-m", "cli", "mix", "--source", f"web={web}:0.6", "--source", f"edu={edu}:0.4"]
    mix += ["--tokens", str(int(0.8 * size)), "--shard-tokens", str(SHARD_TOKENS)]
    start = [sys.executable, "-c", "import cli, pipelines.mix"]
    runs: dict[str, list[dict[str, float]]] = {"mix": [], "start": [], **{name: [] for name in BASELINES}}
    for i in range(repeat):
        out = root / f"mix-{size}-{i}"
        runs["mix"].append(timed([*mix, "--output", str(out)]))
        runs["start"].append(timed(start))
        for name, checksum in BASELINES.items():
            copy = root / f"{name}-{size}-{i}"
            copied = f"cp --reflink=never -r {out} {copy} && sync {copy}/*.bin"
            runs[name].append(
                timed(["sh", "-c", f"{copied} && {checksum} {copy}/*.bin >/dev/null" if checksum else copied])
            )
            shutil.rmtree(copy)
    manifest = json.loads((root / f"mix-{size}-0" / "manifest.json").read_text())
    tokens = manifest["total_tokens"]["train"]
    best = {name: min(r, key=lambda m: m["cpu_s"]) for name, r in runs.items()}
    for i in range(repeat):
        shutil.rmtree(root / f"mix-{size}-{i}")
    rates = {"mix": (best["mix"]["cpu_s"] - best["start"]["cpu_s"], best["mix"]["wall_s"] - best["start"]["wall_s"])}
    rates |= {name: (best[name]["cpu_s"], best[name]["wall_s"]) for name in BASELINES}
    return {
        "corpus_tokens": size,
        "mix_tokens": tokens,
        **best,
        "tok_per_cpu_s": {name: tokens / cpu for name, (cpu, _) in rates.items()},
        "tok_per_wall_s": {name: tokens / wall for name, (_, wall) in rates.items()},
    }


def main() -> None:
    """Parse the flags, run both sizes and print one JSON line per size plus every baseline's ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[40_000_000, 160_000_000], help="corpus tokens")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per measurement (the best counts)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mix-") as tmp:
        root = Path(tmp)
        stream = base_stream(root)
        results = [measure(root, stream, size, args.repeat) for size in args.sizes]
    for r in results:
        print(json.dumps(r))
        cpu, wall = ({k: v / 1e6 for k, v in r[key].items()} for key in ("tok_per_cpu_s", "tok_per_wall_s"))
        print(
            f"{r['corpus_tokens']:,} corpus tokens -> {r['mix_tokens']:,} mixed | mix {cpu['mix']:.0f}M tok/s per "
            f"core, {wall['mix']:.0f}M tok/s wall (start-up of {r['start']['cpu_s']:.2f} CPU s taken off) | "
            f"mix peak anon {r['mix']['anon_mb']:.0f} MB (VmHWM {r['mix']['hwm_mb']:.0f})"
        )
        for name in BASELINES:
            print(
                f"  {name}: {cpu[name]:.0f}M tok/s per core, {wall[name]:.0f}M tok/s wall | {name}/mix: per core "
                f"{cpu[name] / cpu['mix']:.2f}x, wall {wall[name] / wall['mix']:.2f}x"
            )
    small, large = results
    print(
        f"corpus x{large['corpus_tokens'] / small['corpus_tokens']:.1f}: mix peak anon memory "
        f"x{large['mix']['anon_mb'] / small['mix']['anon_mb']:.2f} ({small['mix']['anon_mb']:.0f} -> "
        f"{large['mix']['anon_mb']:.0f} MB); start-up alone {small['start']['anon_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
