"""`fineforge quality score`: score any text collection with a trained classifier, as a curate run that only scores.

Scoring is curate's quality stage with every filter and dedup stage off and `score_only` on, so it reads every
format curate reads (JSONL, Parquet, curate outputs, WARC and HTML, which are extracted first), quarantines
unreadable records, resumes after a crash, reuses finished work, and writes a curate output: `data/*.parquet`
(curate's columns plus a float `quality_score`), `quality/scores.parquet` (id, quality_score, GPT-2 tokens) and
`summary.json` (counts and the model's sha256). The folder is therefore also a valid input of `fineforge tokenize`,
`fineforge report` and of a later `fineforge quality train --positive`.

It lives in `pipelines.curate`, not beside the classifier in `pipelines.quality`: it is a curate run, and
`pipelines.quality` stays below `pipelines.curate` (curate's quality stage imports it, never the reverse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.curate.config import CurateConfig
from pipelines.curate.executors import ExecutorKind
from pipelines.curate.filters import FilterConfig
from pipelines.curate.job import run_curate


def score_config(model: str | Path, text_field: str = "text") -> CurateConfig:
    """A curate config that reads, extracts HTML and scores, and drops nothing.

    Args:
        model: the `.bin` model file.
        text_field: field (JSONL) or column (Parquet) holding the text.

    Returns:
        The config: every filter and both dedup stages off, quality on with `score_only`.
    """
    filters = {
        name: {"enabled": False} for name, value in FilterConfig().model_dump().items() if isinstance(value, dict)
    }
    return CurateConfig.model_validate(
        {
            "read": {"text_key": text_field},
            "filters": filters,
            "quality": {"enabled": True, "model": str(Path(model).expanduser().resolve()), "score_only": True},
            "dedup": {"exact": False, "minhash": False},
        }
    )


def run_scoring(
    model: str | Path,
    inputs: list[str],
    output: Path,
    workers: int = 1,
    text_field: str = "text",
    executor: ExecutorKind = "local",
) -> dict[str, Any]:
    """Score every document of `inputs` into `output` (see the module docstring).

    Args:
        model: the `.bin` model file (its card beside it).
        inputs: files, folders, globs, URLs or curate output folders.
        output: the output folder.
        workers: tasks run at the same time (the scores do not depend on it).
        text_field: field or column holding the text.
        executor: `local`, `ray` or `slurm`.

    Returns:
        The run's summary.json.

    Raises:
        QualityModelError: the model is missing, damaged or has no valid card (before any document is read).
    """
    return run_curate(score_config(model, text_field), inputs, output, workers=workers, executor=executor)
