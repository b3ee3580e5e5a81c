"""Loss regression: the first losses of a tiny seeded run on the built-in web text must stay what they were.

How the reference (tests/trainer_reference_losses.json) was produced: the `trainer_shards` fixture encodes
`tests.builtin_text.builtin_web_texts()` (880 demo articles plus the multilingual and edge documents, about
377k tokens) with `tests.trainer_helpers.write_test_shards`, and this test trains the `tiny` preset on it
for 10 steps (`TINY_FLAGS`: 2 x 32 tokens per micro step, 128 tokens per step, seed 1337) on torch 2.13.0
(CPU), run as

    FINEFORGE_UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_trainer_regression.py

which writes the file and then skips (a reference compared with itself proves nothing). A deliberate
numerical change (init, optimizer, data order, schedule, the built-in text) means regenerating it in the same
commit; anything else that moves these numbers is a regression. The tolerance (rel 1e-4) leaves room for
CPU kernels that round differently on other machines, far below the ~1e-2 a real change causes per step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.trainer_helpers import run_trainer, step_losses, trainer_cmd

REFERENCE = Path(__file__).with_name("trainer_reference_losses.json")
STEPS = 10


def test_first_losses_match_the_reference(trainer_shards, tmp_path):
    run_trainer(trainer_cmd(trainer_shards, tmp_path / "run", STEPS))
    losses = [step_losses(tmp_path / "run")[s] for s in range(1, STEPS + 1)]
    if os.environ.get("FINEFORGE_UPDATE_REFERENCE"):
        REFERENCE.write_text(json.dumps({"steps": STEPS, "losses": losses}, indent=2) + "\n")
        pytest.skip(f"FINEFORGE_UPDATE_REFERENCE is set: wrote {REFERENCE}; rerun without it to compare")
    reference = json.loads(REFERENCE.read_text())["losses"]
    assert losses == pytest.approx(reference, rel=1e-4)
