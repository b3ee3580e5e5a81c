"""Quality classifier: scoring throughput per core next to the heuristic filters, and score-once-threshold-later.

1. Scoring rate, in one process, on the shared web texts (web-text.jsonl.gz, 580 documents; the built-in demo
   articles where the corpora are absent): documents per CPU-second (`time.process_time`, so per core and barely
   moved by other processes' load) of the quality model's score (normalise + fastText predict), of the GPT-2
   token count the score pass adds, of the whole `QualityScorer` step (both, in batches, as curate runs it, with
   its once-per-task model check and load, which is also shown alone), and
   of FineForge's four heuristic filters as one pipeline (Gopher repetition -> Gopher quality -> C4 -> FineWeb,
   warm tokenizer memo), with the ratios. The model is `--model`, or one trained here on the DCLM-labelled texts
   with the default settings (800 MB; `--buckets` makes it smaller).
2. `--curate`: a curate run with the quality stage (`keep_fraction 0.1`, DCLM's top 10%) over the trafilatura-eval
   pages, the htmldate WARC and web-text.jsonl.gz, then a rerun into the same output with only a threshold
   changed: both wall times (in this process, after the imports) and CPU times (this process and its children,
   less sensitive to the load of a shared machine), their ratios, and which steps were reused.

Run: `.venv/bin/python -m benchmarks.quality [--model M.bin] [--buckets N] [--curate] [--workers N]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from datatrove.data import Document

from benchmarks.curate import drain, fast_heuristics
from orchestration.demo_data import demo_texts
from pipelines.quality.config import ClassifierSettings
from pipelines.quality.examples import read_labelled
from pipelines.quality.model import QualityModel
from pipelines.quality.steps import QualityScorer
from pipelines.quality.train import train_classifier
from tests.conftest import corpora_path


def texts() -> tuple[list[str], str]:
    """The benchmark texts and where they come from."""
    path = corpora_path() / "web-text.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt") as f:
            return [json.loads(line)["text"] for line in f], "shared web texts"
    return demo_texts(580), "built-in demo articles (shared corpora absent)"


def cpu_rate(n: int, work: Callable[[], object]) -> float:
    """Documents per CPU-second of this process for one call of `work` (after one untimed warm-up call)."""
    work()
    start = time.process_time()
    work()
    return n / max(time.process_time() - start, 1e-9)


def dclm_model(folder: Path, buckets: int) -> Path:
    """A classifier trained on the DCLM-labelled texts (default settings but the bucket count)."""
    data = corpora_path() / "dclm-quality" / "majority_data.jsonl"
    if not data.exists():
        raise SystemExit(f"{data} is absent: give --model")
    model = folder / "dclm.bin"
    card = train_classifier(read_labelled([str(data)]), model, ClassifierSettings(buckets=buckets))
    print(f"trained {model} ({model.stat().st_size / 2**20:,.0f} MB): held-out AUC {card['auc']:.3f}")
    return model


def bench_scoring(model_path: Path) -> None:
    """Scoring against the heuristic stack, docs/s per core, side by side."""
    docs, source = texts()
    model = QualityModel.load(model_path)
    from model.tokenizer import get_encoding

    encoding = get_encoding()
    scorer = QualityScorer(str(model_path))
    heuristics = list(fast_heuristics().values())
    rates = {
        "quality score (normalise + fastText)": cpu_rate(len(docs), lambda: model.score(docs)),
        "GPT-2 token count": cpu_rate(len(docs), lambda: encoding.encode_ordinary_batch(docs, num_threads=1)),
        "QualityScorer step (incl. model load)": cpu_rate(
            len(docs), lambda: drain([scorer], [Document(text=t, id=str(i)) for i, t in enumerate(docs)])
        ),
    }
    stack = cpu_rate(len(docs), lambda: drain(heuristics, [Document(text=t, id=str(i)) for i, t in enumerate(docs)]))
    start = time.process_time()
    QualityModel.load(model_path)
    load_s = time.process_time() - start
    print(f"\n{len(docs)} {source}; documents per CPU-second (one core)")
    print(
        f"model {model_path.stat().st_size / 2**20:,.0f} MB: sha256 check and load {load_s:.2f} CPU-s, once per task"
    )
    print(f"{'':<40}{'docs/s':>10}{'vs heuristics':>15}")
    step = rates["QualityScorer step (incl. model load)"]
    rates["QualityScorer step (load excluded)"] = len(docs) / (len(docs) / step - load_s)
    for name, rate in rates.items():
        print(f"{name:<40}{rate:>10,.0f}{rate / stack:>14.2f}x")
    print(f"{'four heuristic filters (warm)':<40}{stack:>10,.0f}{1:>14.2f}x", flush=True)


def bench_curate(model: Path, workers: int) -> None:
    """First curate run with the quality stage against a threshold-only rerun into the same output."""
    from pipelines.curate import CurateConfig, run_curate

    corpora = corpora_path()
    inputs = [
        str(corpora / "trafilatura-eval" / "html"),
        str(corpora / "htmldate" / "htmldate-multilingual.warc.gz"),
        str(corpora / "web-text.jsonl.gz"),
    ]
    base = {"quality": {"enabled": True, "model": str(model)}}
    with tempfile.TemporaryDirectory(prefix="ff-quality-") as tmp:
        out = Path(tmp) / "curated"
        runs = []
        for quality in ({"keep_fraction": 0.1}, {"threshold": 0.5}):
            cfg = CurateConfig.model_validate(base | {"quality": base["quality"] | quality})
            wall, cpu = time.perf_counter(), cpu_seconds()
            summary = run_curate(cfg, inputs, out, workers=workers)
            runs.append((quality, time.perf_counter() - wall, cpu_seconds() - cpu, summary))
    print(f"\ncurate with the quality stage, {workers} worker(s), into one output folder")
    for quality, wall, cpu, summary in runs:
        steps = ", ".join(f"{s['name']} {s['status']}" for s in summary["steps"])
        counts = f"docs in {summary['docs_in']:,}, scored {summary['quality']['scored']:,}"
        counts += f", passed {summary['quality']['selected']:,}, out {summary['docs_out']:,}"
        print(f"{json.dumps(quality):<24} wall {wall:7.1f} s  CPU {cpu:7.1f} s  {counts}  [{steps}]")
    (_, wall_1, cpu_1, _), (_, wall_2, cpu_2, _) = runs
    print(f"rerun / first run: wall {wall_2 / wall_1:.1%}, CPU {cpu_2 / cpu_1:.1%} (target: at most 20%)", flush=True)


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the extraction sandboxes, worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Parse arguments; run the scoring comparison and, with --curate, the reuse measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a model from `fineforge quality train`")
    parser.add_argument("--buckets", type=int, default=ClassifierSettings().buckets, help="buckets of a new model")
    parser.add_argument("--curate", action="store_true", help="also time a first run against a threshold rerun")
    parser.add_argument("--workers", type=int, default=1, help="curate workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ff-quality-model-") as tmp:
        model = args.model or dclm_model(Path(tmp), args.buckets)
        bench_scoring(model)
        if args.curate:
            bench_curate(model, args.workers)


if __name__ == "__main__":
    main()
