"""Loss regression: the first losses of a tiny seeded run on real web text must stay what they were.

The reference (tests/trainer_reference_losses.json) was produced by this test with
`FINEFORGE_UPDATE_REFERENCE=1 .venv/bin/pytest tests/test_trainer_regression.py` on torch 2.13.0 (CPU).
A deliberate numerical change (init, optimizer, data order, schedule) means regenerating it in the same
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
    reference = json.loads(REFERENCE.read_text())["losses"]
    assert losses == pytest.approx(reference, rel=1e-4)
