"""Processes started by torchrun: who am I, which device, how to combine numbers.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single
process. CUDA processes talk over NCCL, CPU processes over gloo, and the same
training code runs on one CPU core, one GPU, or several nodes of GPUs.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from psanet_lite.engine.device import pick_device
from psanet_lite.engine.sync_batchnorm import convert_sync_batchnorm


@dataclass(frozen=True)
class Distributed:
    """This process's place: rank in 0..world_size-1, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0


def init_distributed(device: str | None = None) -> Distributed:
    """Join the torchrun process group (if any) and pick this process's device.

    Args:
        device: 'cpu', 'cuda', or None for CUDA when available.

    Returns:
        Distributed(rank, world_size, local_rank, device); a single process is
        Distributed(0, 1, 0, device) and starts no process group.

    Example:
        >>> init_distributed("cpu")  # outside torchrun
        Distributed(rank=0, world_size=1, local_rank=0, device=device(type='cpu'))
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    where = pick_device(device, local_rank)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return Distributed(rank, world_size, local_rank, where)


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over all processes (itself when there is one).

    Example:
        >>> mean_over_processes(torch.tensor([2.0, 4.0]))
        tensor([2., 4.])
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` over all processes (e.g. confusion matrices)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Switch the model's BatchNorm2d layers to SyncBN: torch's own on CUDA
    (fused kernels), psanet_lite's all-reduce version on CPU (torch's refuses
    CPU tensors)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return convert_sync_batchnorm(model)
