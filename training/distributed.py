"""One code path for one CPU process and for torchrun: process group, FSDP2 sharding, and the
few collectives the training loop needs (no-ops when there is a single process)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from training.config import DistributedSection


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(section: DistributedSection) -> World:
    """Under torchrun (WORLD_SIZE set) join the process group; otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    if size == 1:
        return World(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    backend = section.backend if section.backend != "auto" else ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return World(rank, size, torch.device("cuda", local))
    return World(rank, size, torch.device("cpu"))


def shard(model: Any) -> None:
    """FSDP2: each decoder layer is one shard unit, the rest (embeddings, norm) the root."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not layers:
        raise TypeError(f"no decoder layers found in {type(model).__name__}")
    return layers


def all_sum(world: World, *values: float) -> list[float]:
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
