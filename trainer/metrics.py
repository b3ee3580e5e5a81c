"""What a training run reports: llm.c-style lines on stdout, `metrics.jsonl`, TensorBoard when installed.

Only rank 0 reports. Each event is one JSON object in `RUN_DIR/metrics.jsonl` (`type` "step", "eval" or
"sample"; read back with `pipelines.common.metrics.read_metrics`) and one printed line, e.g.
`step  540/32000 | loss 4.123456 | norm 0.3142 | lr 5.99e-04 | 1234.56 ms | 41.2% MFU | 150234 tok/s`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.common.metrics import METRICS_FILE, read_metrics
from trainer.dist import print0


def format_step(step: int, steps: int, rec: dict[str, Any]) -> str:
    """One log line in llm.c's format, e.g. `step  540/32000 | loss 4.123456 | ... | 150234 tok/s`."""
    mfu = f"{rec['mfu']:.1f}%" if rec["mfu"] is not None else "n/a"
    return (
        f"step {step:4d}/{steps} | loss {rec['loss']:.6f} | norm {rec['norm']:.4f} | lr {rec['lr']:.2e} | "
        f"{rec['ms']:.2f} ms | {mfu} MFU | {rec['tok_per_s']:.0f} tok/s"
    )


def format_event(rec: dict[str, Any], steps: int) -> str:
    """The printed line of any event (step, eval or sample)."""
    if rec["type"] == "step":
        return format_step(rec["step"], steps, rec)
    if rec["type"] == "eval":
        return f"step {rec['step']:4d}/{steps} | val loss {rec['val_loss']:.6f}"
    return f"step {rec['step']:4d}/{steps} | sample: {rec['text']!r}"


class MetricsLog:
    """metrics.jsonl plus TensorBoard scalars; opened by rank 0 only.

    Args:
        run_dir: the run directory.
        resume_step: the step training resumes from; records after it (left by a run killed after its last
            checkpoint) are dropped, so every step appears once.
        tensorboard: also write TensorBoard events when the package is installed.
    """

    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool):
        self.path = run_dir / METRICS_FILE
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a")  # noqa: SIM115 - closed by close()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        """Append one event and mirror its numbers to TensorBoard."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("type", "step") and isinstance(value, int | float):
                    self.tb.add_scalar(f"{record['type']}/{key}", value, record["step"])
            if record["type"] == "sample":
                self.tb.add_text(f"sample/{record['prompt']}", record["text"], record["step"])

    def close(self) -> None:
        """Flush and close."""
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class Reporter:
    """Prints each event on rank 0 and, where a MetricsLog is open, records it."""

    def __init__(self, steps: int, log: MetricsLog | None):
        self.steps = steps
        self.log = log

    def __call__(self, record: dict[str, Any]) -> None:
        """Print and record one event."""
        print0(format_event(record, self.steps))
        if self.log is not None:
            self.log.write(record)
