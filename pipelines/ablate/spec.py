"""What an ablation is: raw inputs, recipe variants, fixed evaluation sets, and one training recipe for all runs.

`AblationSpec` holds the command's arguments, validated on construction (unknown fields, duplicate or unsafe
variant names, repeated seeds and out-of-range numbers are errors naming the value). `train_settings` turns it
into the one trainer config every run shares; only `--data`, `--out` and `--seed` differ between runs.

Equal tokens: every run trains `steps = ceil(tokens / batch_tokens)` optimizer steps of `batch_tokens` tokens,
so `tokens_trained = steps x batch_tokens` (at most one batch above `--tokens`). A variant with fewer curated
tokens than that repeats its data; `epochs = tokens_trained / train_tokens` is recorded for each variant.

Evaluation points: each run checkpoints every `steps / eval_points` steps (4 by default); the ablation scores
every checkpoint on the fixed sets (the eval curves), and the last one gives the results. The checkpoints also
bound the work a crash loses to one `eval_points`-th of a run. Scoring costs a forward pass over each set per
point: on the tiny model, 40 C4 documents (18.6k tokens) take about as long as 36 training steps of 512
tokens, so large sets or many points make the scoring, not the training, the slow part.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.ablate.record import ABLATION_FILE
from trainer.config import SEED_LIMIT, TRAIN_PRESETS, TrainConfig

DEFAULT_TOKENS = 200_000  # the tiny model's sizing run (issue 13); see README "Ablations" for the measured noise
DEFAULT_EVAL_POINTS = 4  # checkpoints scored per run: the eval curve's points; a crash loses a quarter run at most
WARMUP_SHARE = 0.1  # at most a tenth of the steps warm up, so short ablation runs still decay their learning rate
ABLATION_PROMPTS = ["The meaning of life is", "In the spring", "The best way to learn a language is"]
SAMPLE_TOKENS = 40
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# What an ablation writes at the top of DIR, beside the variant folders (`pipelines.ablate.job` lays it out); a
# variant may not take one of these names, or its folder and the file would collide once the runs are done.
SPEC_FILE = "ablation-spec.json"
TRAIN_FILE = "train.yaml"
REPORT_FILE = "report.html"
EVAL_DIR = "eval"  # the tokenized evaluation sets
RESERVED_NAMES = {SPEC_FILE, TRAIN_FILE, ABLATION_FILE, REPORT_FILE, EVAL_DIR}


class SpecError(ValueError):
    """An ablation that cannot run as given; the message names the argument and the value."""


class Variant(BaseModel):
    """One recipe under test: a name (its folder under DIR) and a curate config file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Variant name: letters, digits, '.', '_', '-' (its folder under DIR).")
    config: str = Field(description="Curate config YAML of this recipe.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if name.lower() in RESERVED_NAMES:  # lower: a case-insensitive filesystem collides all the same
            raise ValueError(
                f"variant name {name!r} is taken by the ablation's own {'folder' if name == EVAL_DIR else 'file'} "
                f"DIR/{name.lower()}; choose another (reserved: {', '.join(sorted(RESERVED_NAMES))})"
            )
        if not NAME.fullmatch(name):
            raise ValueError(
                f"variant name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return name


def parse_variant(text: str) -> Variant:
    """Parse `NAME=CONFIG.yaml` (the `--variant` flag).

    Raises:
        SpecError: no `=`, an empty side, or an unsafe name.
    """
    name, sep, config = text.partition("=")
    if not sep or not name.strip() or not config.strip():
        raise SpecError(f"--variant {text!r}: expected NAME=CONFIG.yaml, e.g. fineweb=configs/fineweb.yaml")
    try:
        return Variant(name=name.strip(), config=config.strip())
    except ValueError as e:
        raise SpecError(f"--variant {text!r}: {first_error(e)}") from None


def parse_seeds(text: str) -> list[int]:
    """Parse `0,1,2` (the `--seeds` flag) into distinct non-negative integers, in the order given.

    Raises:
        SpecError: an empty list, a non-integer, a negative or a repeated seed.
    """
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SpecError(f"--seeds {text!r}: expected comma-separated integers such as 0,1") from None
    if not seeds or any(not 0 <= s < SEED_LIMIT for s in seeds) or len(set(seeds)) != len(seeds):
        raise SpecError(f"--seeds {text!r}: give one or more distinct integers from 0 to {SEED_LIMIT - 1}")
    return seeds


def first_error(err: ValueError) -> str:
    """One line of a (pydantic) validation error: the first problem, with the field it concerns."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(err)


class AblationSpec(BaseModel):
    """Every argument of `fineforge ablate` (and of the `ablation` flow)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(min_length=1, description="Raw inputs every variant curates (paths or fsspec URLs).")
    variants: list[Variant] = Field(min_length=1, description="The recipes under test.")
    eval_data: list[str] = Field(
        [], description="Fixed evaluation sets: text JSONL/Parquet, or HellaSwag-format JSONL."
    )  # copied per instance; at least one set or --eval-suite
    eval_suite: str | None = Field(
        None, description="Early-signal suite tasks scored on every checkpoint: TASK[,TASK...] or early-signal."
    )
    eval_suite_dir: str | None = Field(
        None, description="Folder of the suite's {task}.jsonl|.parquet (default: FINEFORGE_HOME/evals/, downloaded)."
    )
    out: str = Field(description="Output folder of the whole ablation.")
    model: str = Field("tiny", description="Model preset trained for every run.")
    tokens: int = Field(DEFAULT_TOKENS, ge=1, description="Training tokens per run (equal for every variant).")
    seq_len: int | None = Field(None, ge=8, description="Sequence length (default: the model preset's).")
    batch_tokens: int | None = Field(None, ge=8, description="Tokens per optimizer step (default: the preset's).")
    lr: float | None = Field(
        None, gt=0, le=1, title="Learning rate", description="Peak learning rate (default: the preset's)."
    )
    seeds: list[int] = Field([0, 1], min_length=1, description="One run per seed.")  # copied per instance
    workers: int = Field(1, ge=1, le=1024, description="Parallel curate tasks and tokenizer processes.")
    training_concurrency: int = Field(
        1, ge=1, le=64, description="Training runs at once on this machine; each trainer gets its share of the cores."
    )
    eval_points: int = Field(
        DEFAULT_EVAL_POINTS, ge=1, le=100, description="Checkpoints per run scored on the evaluation sets."
    )
    scale: str | None = Field(
        None, description="Proxy scale (d12-124m, d24-350m): model, tokens and recipe; explicit values win."
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_scale(cls, data: Any) -> Any:
        from pipelines.ablate.scales import SCALES, scale_table

        if not isinstance(data, dict) or data.get("scale") is None:
            return data
        if data["scale"] not in SCALES:
            raise ValueError(f"unknown scale {data['scale']!r}; choose one of {scale_table()}")
        defaults = SCALES[data["scale"]].settings()
        return {**data, **{k: v for k, v in defaults.items() if data.get(k) is None}}

    @model_validator(mode="after")
    def _check(self) -> AblationSpec:
        from model.gpt2 import PRESETS, config_from_preset  # torch: only once a spec is built
        from trainer.evals.tasks import parse_tasks

        if not self.eval_data and not self.eval_suite:
            raise ValueError("give at least one --eval-data set or --eval-suite")
        if self.eval_suite:
            parse_tasks(self.eval_suite)
        names = [v.name for v in self.variants]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"variant names must be unique; repeated: {', '.join(repeated)}")
        if len(set(self.seeds)) != len(self.seeds) or any(not 0 <= s < SEED_LIMIT for s in self.seeds):
            raise ValueError(f"seeds must be distinct integers from 0 to {SEED_LIMIT - 1}, got {self.seeds}")
        if self.model not in PRESETS:
            raise ValueError(f"unknown model preset {self.model!r}; choose one of {', '.join(PRESETS)}")
        block = config_from_preset(self.model).block_size
        if self.sequence_length > block:
            raise ValueError(f"seq_len {self.sequence_length} exceeds the context of model {self.model!r} ({block})")
        if self.step_tokens % self.sequence_length:
            raise ValueError(
                f"batch_tokens {self.step_tokens} must be a multiple of seq_len {self.sequence_length} "
                f"(whole sequences per step)"
            )
        return self

    @property
    def preset(self) -> dict[str, Any]:
        """The model's training preset (`trainer.config.TRAIN_PRESETS`), empty for models without one."""
        return TRAIN_PRESETS.get(self.model, {})

    @property
    def sequence_length(self) -> int:
        """The effective sequence length."""
        return self.seq_len or self.preset.get("seq_len", TrainConfig.model_fields["seq_len"].default)

    @property
    def step_tokens(self) -> int:
        """The effective tokens per optimizer step."""
        return self.batch_tokens or self.preset.get("batch_tokens", TrainConfig.model_fields["batch_tokens"].default)

    @property
    def steps(self) -> int:
        """Optimizer steps of every run: enough batches for `tokens`."""
        return math.ceil(self.tokens / self.step_tokens)

    @property
    def tokens_trained(self) -> int:
        """Tokens every run trains on (`steps x batch_tokens`)."""
        return self.steps * self.step_tokens

    def train_settings(self) -> dict[str, Any]:
        """The trainer settings every run shares (a `TrainConfig` minus data, out and seed), as YAML-ready data.

        The micro batch is the preset's, or the largest divisor of the sequences per step below it, so any
        whole number of sequences per step works without a gradient-accumulation remainder.
        """
        sequences = self.step_tokens // self.sequence_length
        preset_micro = self.preset.get("micro_batch", TrainConfig.model_fields["micro_batch"].default)
        micro = max(d for d in range(1, min(sequences, preset_micro) + 1) if sequences % d == 0)
        steps = self.steps
        warmup = min(self.preset.get("warmup", TrainConfig.model_fields["warmup"].default), int(steps * WARMUP_SHARE))
        every = max(1, steps // self.eval_points)
        settings = {
            "model": self.model,
            "steps": steps,
            "batch_tokens": self.step_tokens,
            "micro_batch": micro,
            "seq_len": self.sequence_length,
            "lr": self.lr or self.preset.get("lr", TrainConfig.model_fields["lr"].default),
            "warmup": warmup,
            "eval_every": 0,  # the shards have no val split: the fixed evaluation sets replace it
            "sample_every": 0,
            "sample_tokens": SAMPLE_TOKENS,
            "prompts": list(ABLATION_PROMPTS),
            "ckpt_every": every,
            "keep_checkpoints": self.eval_points + 2,  # every point until it is scored, plus one written on a signal
            "tensorboard": False,
        }
        TrainConfig(data="-", out="-", **settings)  # validate once here, not in every run
        return settings

    def identity(self) -> dict[str, Any]:
        """What every run of DIR must share: the inputs and the training recipe (variants, seeds, eval sets and
        how many runs train at once may change between invocations)."""
        return {"inputs": [_absolute(i) for i in self.inputs], "train": self.train_settings()}


def _absolute(spec: str) -> str:
    return spec if "://" in spec else str(Path(spec).expanduser().resolve())
