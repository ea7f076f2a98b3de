"""Training on several processes, as launched by torchrun, with DistributedDataParallel.

    torchrun --nproc_per_node 2 -m nextword train corpus.txt ...

torchrun starts one process per rank and tells each its RANK and WORLD_SIZE. Every rank reads its
own streams of the memory-mapped token ids (rank r of n takes streams r·B .. r·B + B - 1 of the
n·B), gradients are averaged across ranks after each backward pass, and only rank 0 trains the
tokenizer, evaluates, writes the model directory and reports progress. The backend is gloo on
CPUs and nccl on GPUs. A single process (no torchrun) is a world of one and touches none of this."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes files and reports: rank 0."""
        return self.rank == 0

    def from_main(self, make: Callable[[], T], *, share: bool = True) -> T:
        """`make()` on rank 0; the other ranks get its result (`share`), or run `make()` themselves once
        rank 0 is done (to reuse what it cached). If rank 0 fails, they raise the same error instead
        of waiting for it forever."""
        if self.size == 1:
            return make()
        result, failure = None, None
        if self.main:
            try:
                result = make()
            except Exception as exc:  # handed to the other ranks, then raised here too
                failure = exc
        message = [failure, result if share and failure is None else None]
        dist.broadcast_object_list(message, src=0)
        if message[0] is not None:
            raise message[0]
        return message[1] if share else result if self.main else make()

    def decide(self, code: int, planned: int | None) -> tuple[int, int | None]:
        """Rank 0's decision and planned steps, on every rank: whether to stop and how many steps a time budget
        allows are rank 0's to say, as only it evaluates and keeps time."""
        if self.size == 1:
            return code, planned
        value = torch.tensor([code, -1 if planned is None else planned])
        dist.broadcast(value, src=0)
        code, planned = value.tolist()
        return code, None if planned < 0 else planned


def is_main_process() -> bool:
    """Whether this process should print: rank 0 of a torchrun launch, or any process outside one."""
    return int(os.environ.get("RANK", "0")) == 0


def join(device: torch.device) -> tuple[World, torch.device]:
    """This process's place in a torchrun launch, joining the process group on first use, and the device it
    runs on: `device`, or on GPUs the one of its local rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    world = World(dist.get_rank(), dist.get_world_size())
    return world, torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> Any:
    """The module under DistributedDataParallel when there is more than one rank."""
    if world.size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def leave(world: World, *, together: bool) -> None:
    """Leave the process group. After a run that went well on every rank (`together`), once all are
    here: a rank that destroys its group while another still uses it can abort that one (gloo:
    "terminate called without an active exception"). After a failure a rank leaves at once, so that
    the others' next collective fails instead of waiting for it."""
    if world.size > 1 and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
