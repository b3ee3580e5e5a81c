"""The `train` command's flags, defined once, and the ways to run a config built from them.

Settings come in through one door: the flags are parsed once (click), composed once into a `TrainConfig`
(`trainer.config.build_config`), and every process below that reads the config, not the flags.

`python -m trainer` (the torchrun entry point for multi-node jobs) trains in this process (`run_here`); with
`--nproc N` it writes the config to a temporary YAML file and launches
`torchrun --standalone --nproc_per_node N -m trainer.child FILE`, waiting and forwarding SIGTERM/SIGINT to torchrun
(which passes them to every rank, so each rank checkpoints and exits). Multi-node jobs call torchrun on
`python -m trainer` directly with their own rendezvous flags.

`fineforge train` takes the same flags and runs the config as a stage (`trainer.stage.TrainStage`): a completed
run is reported, not redone; otherwise the stage writes `RUN_DIR/config.yaml` and runs
`python -m trainer.child RUN_DIR/config.yaml` as a supervised child, printing its lines.

Exit codes: 0 completed, 2 bad settings or data (before step 1), 128 + signal number when stopped by
SIGTERM (143) or SIGINT (130) after writing a checkpoint.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from trainer.config import TrainConfig, build_config
from trainer.process import trainer_env

# (flags, config file, nproc) -> exit code
Runner = Callable[[dict[str, Any], Path | None, int | None], int]


def torchrun_command(nproc: int, config_file: Path) -> list[str]:
    """Build `torchrun --standalone --nproc_per_node N -m trainer.child CONFIG_FILE` (torchrun from this environment).

    Args:
        nproc: processes on this node.
        config_file: the effective config every rank reads (`trainer.config.load_config`).
    """
    exe = Path(sys.executable).with_name("torchrun")
    torchrun = [str(exe)] if exe.exists() else [shutil.which("torchrun") or "torchrun"]
    return [*torchrun, "--standalone", "--nproc_per_node", str(nproc), "-m", "trainer.child", str(config_file)]


def flags_to_args(flags: dict[str, Any], config: Path | None = None) -> list[str]:
    """Turn {"batch_tokens": 8192, "compile": False, ...} into ["--batch-tokens", "8192", "--no-compile"].

    Args:
        flags: flag values by field name; None means unset and is left out.
        config: a YAML config file, passed as `--config`.
    """
    args: list[str] = []
    for key, value in flags.items():
        name = key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        else:
            args += [f"--{name}", str(value)]
    return args + (["--config", str(config)] if config else [])


def run_torchrun(nproc: int, config_file: Path) -> int:
    """Run the trainer under torchrun on a config file and return its exit code; SIGTERM/SIGINT are passed on.

    torchrun exits 1 when its workers stop on a signal, so a forwarded signal is reported as 128 + its
    number, as a single-process run reports it. Every rank starts with `trainer.process.trainer_env`.
    """
    proc = subprocess.Popen(torchrun_command(nproc, config_file), env=trainer_env())
    received: list[int] = []

    def forward(signum: int, frame) -> None:
        received.append(signum)
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
        return 128 + received[0] if code and received else code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_here(flags: dict[str, Any], config: Path | None, nproc: int | None) -> int:
    """`python -m trainer`: build the config once and train it here (or under torchrun for nproc > 1).

    Returns:
        The exit code.
    """
    try:
        cfg = build_config(flags, config)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    if not (nproc and nproc > 1):
        return train_config(cfg)
    from trainer.dist import under_torchrun  # torch loads only when a command runs

    if under_torchrun():
        return train_config(cfg)
    with tempfile.TemporaryDirectory(prefix="fineforge-train-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(cfg.to_yaml(), encoding="utf-8")
        return run_torchrun(nproc, config_file)


def train_config(cfg: TrainConfig) -> int:
    """Train `cfg` in this process (one rank under torchrun) and return the exit code.

    Returns:
        0 completed, 2 bad settings or data, 128 + signal number when stopped by a signal.
    """
    from trainer.train import train  # torch loads only when a run starts

    try:
        result = train(cfg)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    return 128 + int(result["signal"] or signal.SIGTERM) if result["status"] == "interrupted" else 0


def make_train_command(run: Runner) -> Callable[..., None]:
    """Return the `train` command (every flag of TrainConfig that a user sets often) bound to `run`."""

    def train_command(
        data: Annotated[str, typer.Option(help="manifest.json of a shard set, or its directory")],
        out: Annotated[str, typer.Option(help="run directory; rerunning into it resumes")],
        config: Annotated[Path | None, typer.Option(help="YAML file of TrainConfig settings")] = None,
        model: Annotated[str | None, typer.Option(help="model preset: gpt2, d12, tiny, small-cpu, ...")] = None,
        steps: Annotated[int | None, typer.Option(help="optimizer steps")] = None,
        batch_tokens: Annotated[int | None, typer.Option(help="tokens per optimizer step, all ranks")] = None,
        micro_batch: Annotated[int | None, typer.Option(help="sequences per forward pass per rank")] = None,
        seq_len: Annotated[int | None, typer.Option(help="sequence length")] = None,
        lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
        warmup: Annotated[int | None, typer.Option(help="linear warmup steps")] = None,
        nproc: Annotated[int | None, typer.Option(help="processes (torchrun --nproc_per_node)")] = None,
        eval_every: Annotated[int | None, typer.Option(help="validation every N steps (0: at the end)")] = None,
        sample_every: Annotated[int | None, typer.Option(help="samples every N steps (0: at the end)")] = None,
        ckpt_every: Annotated[int | None, typer.Option(help="checkpoint every N steps (0: at the end)")] = None,
        compile: Annotated[
            bool | None, typer.Option("--compile/--no-compile", help="torch.compile (default: on CUDA)")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="seed of init and data order")] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    ) -> None:
        """Train GPT-2 on token shards (DDP under torchrun with --nproc; resumes from OUT automatically)."""
        flags = dict(
            data=data, out=out, model=model, steps=steps, batch_tokens=batch_tokens, micro_batch=micro_batch,
            seq_len=seq_len, lr=lr, warmup=warmup, eval_every=eval_every, sample_every=sample_every,
            ckpt_every=ckpt_every, compile=compile, seed=seed, device=device,
        )  # fmt: skip
        code = run(flags, config, nproc)
        if code:
            raise typer.Exit(code)

    return train_command


def parse_train_args(args: list[str]) -> tuple[dict[str, Any], Path | None, int | None]:
    """Parse `train` flags (as a user types them) into (flags, config file, nproc), validating each value.

    Raises:
        ValueError: an unknown flag or a bad value, with click's message.
    """
    import click

    params: dict[str, Any] = {}

    def keep(flags: dict[str, Any], config: Path | None, nproc: int | None) -> int:
        params.update(flags=flags, config=config, nproc=nproc)
        return 0

    command = typer.main.get_command(_single_command(make_train_command(keep)))
    try:
        command.main(args=list(args), prog_name="train", standalone_mode=False)
    except click.ClickException as e:
        raise ValueError(f"trainer flags {' '.join(args)}: {e.format_message()}") from None
    return params["flags"], params["config"], params["nproc"]


def config_from_args(args: list[str]) -> tuple[TrainConfig, int]:
    """Parse `train` flags as a user types them (a flow's form) and build the config from them, once.

    Args:
        args: the flags, `--data` and `--out` included.

    Returns:
        (the effective config, training processes on this machine).

    Raises:
        ValueError: an unknown flag, a bad value or an invalid setting.
    """
    flags, config_file, nproc = parse_train_args(args)
    return build_config(flags, config_file), nproc or 1


def _single_command(command: Callable[..., None]) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app
