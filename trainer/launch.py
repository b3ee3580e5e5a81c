"""The `train` command's flags, defined once, and the two ways to run them.

`python -m trainer` (the torchrun entry point) trains in this process (`run_here`); with `--nproc N` it
re-launches itself as `torchrun --standalone --nproc_per_node N -m trainer <same flags>` and waits, forwarding
SIGTERM/SIGINT to torchrun (which passes them to every rank, so each rank checkpoints and exits). Multi-node jobs
call torchrun on `python -m trainer` directly with their own rendezvous flags.

`fineforge train` takes the same flags and runs them as a stage (`trainer.stage.TrainStage`): a completed run is
reported, not redone; otherwise `python -m trainer` runs as a supervised child and its lines are printed.

Exit codes: 0 completed, 2 bad settings or data (before step 1), 128 + signal number when stopped by
SIGTERM (143) or SIGINT (130) after writing a checkpoint.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

# (flags, config file, nproc) -> exit code
Runner = Callable[[dict[str, Any], Path | None, int | None], int]


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """Build `torchrun --standalone --nproc_per_node N -m trainer ARGS` (torchrun from this environment).

    Args:
        nproc: processes on this node.
        args: the trainer flags, without --nproc.
    """
    exe = Path(sys.executable).with_name("torchrun")
    torchrun = [str(exe)] if exe.exists() else [shutil.which("torchrun") or "torchrun"]
    return [*torchrun, "--standalone", "--nproc_per_node", str(nproc), "-m", "trainer", *args]


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


def run_torchrun(nproc: int, args: list[str]) -> int:
    """Run the trainer under torchrun and return its exit code; SIGTERM/SIGINT are passed on to torchrun.

    torchrun exits 1 when its workers stop on a signal, so a forwarded signal is reported as 128 + its
    number, as a single-process run reports it.
    """
    proc = subprocess.Popen(torchrun_command(nproc, args))
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
    """Train in this process (or under torchrun for nproc > 1); return the exit code."""
    from trainer.dist import under_torchrun  # torch loads only when a command runs

    if nproc is not None and nproc > 1 and not under_torchrun():
        return run_torchrun(nproc, flags_to_args(flags, config))
    from trainer.config import build_config
    from trainer.train import train

    try:
        result = train(build_config(flags, config))
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


def _single_command(command: Callable[..., None]) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app
