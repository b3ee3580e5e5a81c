"""`python -m trainer`: the torchrun entry point; the same flags as `fineforge train` (see trainer/launch.py).

Example (2 processes on one node): `torchrun --standalone --nproc_per_node 2 -m trainer --data SHARDS --out RUN`.
"""

import typer

from trainer.launch import make_train_command, run_here


def main() -> None:
    """Train in this process with the process's arguments."""
    typer.run(make_train_command(run_here))


if __name__ == "__main__":
    main()
