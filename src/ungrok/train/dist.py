"""One process or several under `torchrun`: who we are, which device, how rows are shared.

Every rank draws the same global batch from the sampler and keeps its own slice of
rows, so the token stream is that of a single-process run; DDP averages gradients.
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
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This rank's slice of a global batch."""
        per = batch_size // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def pick_device(requested: str | None, world: World) -> torch.device:
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", world.local_rank)
        return dev
    return torch.device("cuda", world.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def world_from_env() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init_world(world: World, device: torch.device) -> None:
    """Join the process group torchrun describes (nothing to do when alone)."""
    if world.size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def mean_over_ranks(x: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= world.size
    return x


def leave_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
