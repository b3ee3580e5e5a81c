"""Does the ablation loop find a real difference, and what does it cost? fineweb against nofilter, measured.

Builds the ablation test bed (`orchestration.ablation_data`: the shared corpora's real English text with planted
junk, about half of the documents, and 40 held-out C4 documents as the evaluation set), runs `fineforge ablate`
with the FineWeb recipe (`configs/fineweb.yaml`) against no curation (`configs/nofilter.yaml`), and prints each
run's bits per byte, the spread across seeds, the gap between the recipes and their ratio, the verdict, and the
time: wall clock and the CPU seconds of this process and its children (the curate workers and trainers), which
other load on a shared machine affects far less than wall time.

    python -m benchmarks.ablate [--out DIR] [--tokens 100000] [--lr 3e-3] [--batch-tokens 512] [--seeds 0,1] \
        [--eval-points 4] [--training-concurrency 1]

`--eval-points 2 --training-concurrency 2` runs exactly what `tests/test_ablate_acceptance.py` runs.

Needs ../shared/corpora (or FINEFORGE_CORPORA). A finished DIR is reused: rerun with a new --out to measure again.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from orchestration.ablation_data import shared_corpus_texts, write_ablation_corpus
from pipelines.ablate.job import run_ablation
from pipelines.ablate.spec import AblationSpec, Variant, parse_seeds

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="ablation folder (default: a new temporary one)")
    parser.add_argument(
        "--corpora", type=Path, default=Path(os.environ.get("FINEFORGE_CORPORA", REPO.parent / "shared" / "corpora"))
    )
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--lr", type=float, default=3e-3)  # the README's recorded run (the tiny preset's lr then)
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--eval-points", type=int, default=4)
    parser.add_argument("--training-concurrency", type=int, default=1, help="runs of a variant trained at once")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="ablate-bench-"))
    clean, held_out = shared_corpus_texts(args.corpora)
    corpus = write_ablation_corpus(clean, held_out, out / "corpus")
    print(f"corpus: {corpus['documents']} documents {corpus['counts']}, eval {corpus['eval_documents']} documents")
    spec = AblationSpec(
        inputs=[corpus["input"]],
        variants=[
            Variant(name="fineweb", config=str(REPO / "configs" / "fineweb.yaml")),
            Variant(name="nofilter", config=str(REPO / "configs" / "nofilter.yaml")),
        ],
        eval_data=[corpus["eval"]],
        out=str(out / "ablation"),
        tokens=args.tokens,
        lr=args.lr,
        batch_tokens=args.batch_tokens,
        seeds=parse_seeds(args.seeds),
        eval_points=args.eval_points,
        training_concurrency=args.training_concurrency,
    )
    wall, cpu = time.perf_counter(), cpu_seconds()
    record = run_ablation(spec, echo=lambda line: None)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu

    print(f"settings: {spec.tokens_trained:,} tokens per run, lr {record['settings']['lr']}, "
          f"batch {record['settings']['batch_tokens']}, seq_len {record['settings']['seq_len']}")  # fmt: skip
    for variant in record["variants"]:
        print(f"{variant['name']:<9} {variant['docs_out']:>5} docs kept, {variant['train_tokens']:>8,} train tokens, "
              f"{variant['epochs']} epochs")  # fmt: skip
    for row in record["results"]:
        print(f"{row['variant']:<9} seed {row['seed']}: {row['metric']} {row['value']:.4f}")
    means = {}
    for row in record["summary"]:
        means[row["variant"]] = row["mean"]
        print(f"{row['variant']:<9} mean {row['mean']:.4f}  spread (max - min) {row['spread']:.4f}")
    gap = means["nofilter"] - means["fineweb"]
    spread = max(row["spread"] for row in record["summary"])
    print(f"gap nofilter - fineweb {gap:.4f} bpb; largest seed spread {spread:.4f}; gap / spread "
          f"{gap / spread if spread else float('inf'):.1f}")  # fmt: skip
    for verdict in record["verdicts"]:
        print(verdict["text"])
    print(f"time: {wall:.0f} s wall, {cpu:.0f} CPU s (load average {os.getloadavg()[0]:.1f}); report: "
          f"{Path(spec.out) / 'report.html'}")  # fmt: skip


if __name__ == "__main__":
    main()
