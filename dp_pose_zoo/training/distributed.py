"""Data-parallel DP training across processes (gloo on CPU, nccl on GPUs).

Each rank computes the clipped per-sample gradients of its share of the
step's Poisson batch; the sums are all-reduced, so every example counts once;
the noise comes from a generator seeded identically on every rank, so it is
added once, and every rank ends the step with the same noisy gradient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env() -> World:
    """Join the process group that torchrun describes in the environment, if any."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def all_reduce_sum(tensors: dict[str, torch.Tensor], world: World) -> dict[str, torch.Tensor]:
    """Sum each tensor over ranks, in one flat buffer (one collective per step)."""
    if world.size == 1:
        return tensors
    names = sorted(tensors)
    flat = torch.cat([tensors[n].reshape(-1) for n in names])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    out, offset = {}, 0
    for n in names:
        numel = tensors[n].numel()
        out[n] = flat[offset:offset + numel].view_as(tensors[n])
        offset += numel
    return out


def broadcast_int(value: int, world: World) -> int:
    """Rank 0's ``value`` on every rank."""
    return int(_broadcast_scalar(value, torch.int64, world))


def broadcast_float(value: float, world: World) -> float:
    """Rank 0's ``value`` on every rank, exactly (float64)."""
    return float(_broadcast_scalar(value, torch.float64, world))


def _broadcast_scalar(value, dtype: torch.dtype, world: World):
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=dtype)
    dist.broadcast(t, src=0)
    return t.item()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
