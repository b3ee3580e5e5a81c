"""`python -m trainer.child CONFIG_FILE [--nproc N]`: the trainer child, which reads its settings from one file.

`TrainStage` (and `python -m trainer --nproc N`) build the `TrainConfig` once, write it as YAML and start this
entry point on that file; it reads the file as it stands (`trainer.config.load_config`: no preset, defaults or
flags layered over it) and trains. With `--nproc N` (N > 1) and not yet under torchrun it launches
`torchrun --standalone --nproc_per_node N -m trainer.child CONFIG_FILE`, so every rank reads the same file.
Exit codes as `python -m trainer`: 0 completed, 2 bad settings or data, 128 + signal number when stopped.
"""

from pathlib import Path
from typing import Annotated

import typer

from trainer.config import load_config
from trainer.dist import under_torchrun
from trainer.launch import run_torchrun, train_config


def child(
    config_file: Annotated[Path, typer.Argument(help="the effective config (a run's config.yaml)")],
    nproc: Annotated[int, typer.Option(min=1, help="processes (torchrun --nproc_per_node)")] = 1,
) -> None:
    """Train the config in CONFIG_FILE (under torchrun when --nproc > 1)."""
    try:
        cfg = load_config(config_file)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    code = run_torchrun(nproc, config_file) if nproc > 1 and not under_torchrun() else train_config(cfg)
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":
    typer.run(child)
