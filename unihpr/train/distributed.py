"""torch.distributed set-up from the ``torchrun`` environment, and small helpers.

``torchrun --nproc_per_node N`` (and multi-node launches) export ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
[`init_distributed`][] reads them and starts the process group (NCCL on
CUDA, gloo on CPU). Without those variables everything runs as a single
process and the helpers below degrade to no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this node (selects the CUDA device).
        device: The device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one process is running."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from err


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """Map ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:N"`` to a device (``"cuda"`` -> ``cuda:local_rank``)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", local_rank)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def init_distributed(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Start the process group described by the torchrun environment variables.

    Args:
        device: Requested device kind (see `resolve_device`).
        backend: ``"nccl"`` or ``"gloo"``; by default NCCL on CUDA, gloo on CPU.

    Returns:
        The process's [`DistInfo`][]. With ``WORLD_SIZE`` unset or 1 no process
        group is created.

    Raises:
        ValueError: The environment variables are inconsistent.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world_size}")
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise ValueError(f"WORLD_SIZE={world_size} but environment variable {var} is unset")
        dist.init_process_group(
            backend=backend, init_method="env://", rank=rank, world_size=world_size
        )
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Destroy the process group if one is running."""
    if dist.is_initialized():
        dist.destroy_process_group()


def get_dist_info(device: torch.device | None = None) -> DistInfo:
    """Describe the current process without initialising anything."""
    dev = device or torch.device("cpu")
    if dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_env_int("LOCAL_RANK", dist.get_rank()),
            device=dev,
        )
    return DistInfo(device=dev)


def barrier() -> None:
    """Synchronise all ranks (no-op without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over ranks (identity without a process group).

    Every rank must call it with the same keys in the same order.
    """
    if not (dist.is_initialized() and dist.get_world_size() > 1) or not values:
        return dict(values)
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}
