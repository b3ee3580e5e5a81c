"""Acceptance of issue 13: the ablation loop finds a real difference between recipes on real text.

Real English web text from the shared corpora (DCLM and dolma documents) mixed with planted junk, about half of
the documents (`orchestration.ablation_data`); the evaluation set is the 40 C4 documents, which are not in the
input. `fineweb` (the default recipe) against `nofilter` (`configs/nofilter.yaml`): tiny model, two seeds,
equal tokens. The FineWeb variant's bits per byte must be lower by more than the spread across seeds, and the
report must say so. Sizing (tokens, learning rate) and the measured numbers: README "Ablations" and
`python -m benchmarks.ablate`.
"""

from __future__ import annotations

import json
import re

import pytest

from orchestration.ablation_data import shared_corpus_texts, write_ablation_corpus
from pipelines.ablate.job import run_ablation
from pipelines.ablate.spec import AblationSpec, Variant
from tests.conftest import REPO_ROOT

# Per run: 98 steps of 512 tokens. Measured (README "Ablations", `python -m benchmarks.ablate --tokens 50000
# --eval-points 2 --training-concurrency 2`): gap 0.094 bpb, 4.7x the larger seed spread 0.020; at 100k tokens
# 0.110 and 6.7x, for about 45% more CPU time.
TOKENS = 50_000


@pytest.mark.slow
def test_fineweb_beats_nofilter_beyond_seed_noise(corpora, tmp_path):
    clean, held_out = shared_corpus_texts(corpora)
    corpus = write_ablation_corpus(clean, held_out, tmp_path / "corpus")
    junk = sum(n for kind, n in corpus["counts"].items() if kind != "clean")
    assert 0.45 <= junk / corpus["documents"] <= 0.55
    held = {json.loads(line)["text"] for line in open(corpus["eval"])}
    assert not held & {json.loads(line)["text"] for line in open(corpus["input"])}

    spec = AblationSpec(
        inputs=[corpus["input"]],
        variants=[
            Variant(name="fineweb", config=str(REPO_ROOT / "configs" / "fineweb.yaml")),
            Variant(name="nofilter", config=str(REPO_ROOT / "configs" / "nofilter.yaml")),
        ],
        eval_data=[corpus["eval"]],
        out=str(tmp_path / "ablation"),
        model="tiny",
        lr=3e-3,  # the README's recorded runs; the tiny preset's lr before issue 20 (now 1e-3)
        tokens=TOKENS,
        seeds=[0, 1],
        eval_points=2,  # scoring 18.6k tokens costs about 36 training steps: two points keep the test short
        training_concurrency=2,  # the two seeds of a variant side by side, one core each
    )
    record = run_ablation(spec, echo=print)
    summary = {row["variant"]: row for row in record["summary"]}
    fineweb, nofilter = summary["fineweb"], summary["nofilter"]
    gap = nofilter["mean"] - fineweb["mean"]
    spread = max(fineweb["spread"], nofilter["spread"])
    print(f"fineweb {fineweb}\nnofilter {nofilter}\ngap {gap:.4f} bpb, spread {spread:.4f}")
    assert gap > spread, (gap, spread)
    assert fineweb["max"] < nofilter["min"]  # every fineweb seed beats every nofilter seed
    (verdict,) = record["verdicts"]
    assert verdict["best"] == "fineweb" and verdict["decisive"]
    assert {o["documents"] for o in record["overlap"]} == {0}  # the evaluation set is held out
    html = (tmp_path / "ablation" / "report.html").read_text()
    assert re.search(r'data-decisive="true">eval: fineweb is better \(bpb [0-9.]+ vs nofilter', html)
