"""Proxy scales: the model sizes data ablations are run at in practice, with token budgets and their cost, so a
user picks a scale knowingly (`fineforge ablate --scale NAME`).

Every cost below is CITED, none is measured by FineForge (this project had no GPU to measure on). The rates come
from llm.c's reference scripts (github.com/karpathy/llm.c at f1e2ace, `scripts/run_gpt2_124M.sh` and
`scripts/run_gpt2_350M.sh`): GPT-2 124M at 524,288 tokens per step ran about 300 ms a step on 8x A100 80GB SXM
(10B tokens in 94 min, 12.6 A100-hours), GPT-2 350M ("d24") about 820 ms a step (31.5B tokens in 13.7 h, 110
A100-hours). The GPU-hours of a scale are that rate times its token budget, on A100s with llm.c's CUDA code;
FineForge's PyTorch trainer, another GPU or one GPU instead of eight will differ, so treat them as the order of
magnitude, and measure your own with a short run first.

Token budgets are about 20 tokens per parameter (the compute-optimal ratio of Hoffmann et al. 2022), the size
DCLM's smallest competition scale uses (400M parameters, 8.2B tokens: Li et al. 2024, table 1). For comparison,
FineWeb's ablations trained 1.82B-parameter models on 28B tokens, and confirmed the winners at 350B (Penedo et
al. 2024, section 3): these scales are smaller and cheaper, and so see less of the tasks that emerge late
(the planner, `plan.py`, says which tasks carry signal at the scale run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

A100_SECONDS_PER_TOKEN = {  # 8 GPUs x seconds per step / tokens per step, from the llm.c scripts above
    "d12": 8 * 0.300 / 524_288,
    "d24": 8 * 0.820 / 524_288,
}


@dataclass(frozen=True)
class ProxyScale:
    """A named ablation scale: the model, its training recipe, and the token budget per run."""

    name: str
    model: str
    params: str
    tokens: int
    seq_len: int
    batch_tokens: int
    lr: float  # llm.c's learning rate for that size (`-l` in its script)

    @property
    def a100_hours(self) -> float:
        """Cited-rate GPU-hours of one run (see the module docstring: derived from llm.c, not measured)."""
        return A100_SECONDS_PER_TOKEN[self.model] * self.tokens / 3600

    def settings(self) -> dict[str, Any]:
        """The ablation arguments this scale fills in (explicit arguments win)."""
        return {"model": self.model, "tokens": self.tokens, "seq_len": self.seq_len,
                "batch_tokens": self.batch_tokens, "lr": self.lr}  # fmt: skip


SCALES: dict[str, ProxyScale] = {
    scale.name: scale
    for scale in [
        ProxyScale("d12-124m", "d12", "124M", 2_500_000_000, 1024, 524_288, 6e-4),
        ProxyScale("d24-350m", "d24", "350M", 7_000_000_000, 1024, 524_288, 3e-4),
    ]
}


def scale_table() -> str:
    """The scales as text lines: name, model, tokens, cited A100-hours per run."""
    return "; ".join(
        f"{s.name}: {s.params} ({s.model}), {s.tokens / 1e9:g}B tokens, ~{s.a100_hours:.0f} A100-hours per run (cited)"
        for s in SCALES.values()
    )
