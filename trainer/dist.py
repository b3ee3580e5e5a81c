"""Distributed helpers: process-group set-up and tear-down, rank info, rank-0 printing, small reductions.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them the trainer runs as a single process and no
process group is created, so the same code path serves a laptop and a node. The backend is NCCL on CUDA
and gloo on CPU (gloo is the one CPU backend that ships with every torch build).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is in use."""
        return self.world_size > 1


def under_torchrun() -> bool:
    """Return True when this process was started by torchrun (or another launcher that sets RANK)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(requested: str = "auto") -> torch.device:
    """Resolve "auto"/"cpu"/"cuda" to a device type (no index).

    Raises:
        RuntimeError: when "cuda" is requested but not available.
    """
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested, but torch sees no CUDA GPU")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def init(requested_device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun, and pick this rank's device.

    Args:
        requested_device: "auto", "cpu" or "cuda".

    Returns:
        The rank information of this process.
    """
    device = pick_device(requested_device)
    if not under_torchrun():
        return DistInfo(0, 0, 1, torch.device("cuda", 0) if device.type == "cuda" else device)
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, local_rank, world, device)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def print0(*args, info: DistInfo | None = None, **kwargs) -> None:
    """Print on rank 0 only (flushing, so that supervisors reading stdout see lines at once)."""
    rank = info.rank if info is not None else int(os.environ.get("RANK", "0"))
    if rank == 0:
        print(*args, **kwargs, flush=True)


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a few floats over all ranks (in float64, so the result does not depend on the rank order)."""
    if not info.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed:
        dist.barrier()
