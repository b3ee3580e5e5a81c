"""The `train` command, shared by `fineforge train` and `python -m trainer`, and the torchrun launcher.

One function defines the flags, so the two entry points cannot drift apart. Without `--nproc` (or with 1)
the run happens in this process; with `--nproc N` the command re-launches itself as
`torchrun --standalone --nproc_per_node N -m trainer <same flags>` and waits, forwarding SIGTERM/SIGINT
to torchrun (which passes them to every rank, so each rank checkpoints and exits). Multi-node jobs call
torchrun on `python -m trainer` directly with their own rendezvous flags.

Exit codes: 0 completed, 2 bad settings or data (before step 1), 128 + signal number when stopped by
SIGTERM (143) or SIGINT (130) after writing a checkpoint.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """Build `torchrun --standalone --nproc_per_node N -m trainer ARGS` (torchrun from this environment).

    Args:
        nproc: processes on this node.
        args: the trainer flags, without --nproc.
    """
    exe = Path(sys.executable).with_name("torchrun")
    torchrun = [str(exe)] if exe.exists() else [shutil.which("torchrun") or "torchrun"]
    return [*torchrun, "--standalone", "--nproc_per_node", str(nproc), "-m", "trainer", *args]


def flags_to_args(flags: dict[str, Any]) -> list[str]:
    """Turn {"batch_tokens": 8192, "compile": False, ...} into ["--batch-tokens", "8192", "--no-compile"]."""
    args: list[str] = []
    for key, value in flags.items():
        name = key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        else:
            args += [f"--{name}", str(value)]
    return args


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
    from trainer.dist import under_torchrun  # torch loads only when a command runs

    if nproc is not None and nproc > 1 and not under_torchrun():
        extra = ["--config", str(config)] if config else []
        raise typer.Exit(run_torchrun(nproc, flags_to_args(flags) + extra))
    from trainer.config import build_config
    from trainer.train import train

    try:
        cfg = build_config(flags, config)
        result = train(cfg)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if result["status"] == "interrupted":
        raise typer.Exit(128 + int(result["signal"] or signal.SIGTERM))
