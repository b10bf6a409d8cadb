"""DistributedDataParallel plumbing: process group from torchrun's environment, reductions, rank 0.

`torchrun --nproc-per-node N -m alignguard train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; without
them everything here degrades to a single process (world 1, rank 0, no collectives).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from alignguard.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistInfo:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise UsageError(f"WORLD_SIZE / RANK / LOCAL_RANK are not integers: {error}",
                         fix="start distributed runs with torchrun, which sets them") from None
    return DistInfo(rank=rank, world=world, local_rank=local)


def init_process_group(info: DistInfo, device: str) -> str | None:
    """gloo on CPU, NCCL on CUDA; returns the backend (None when single-process)."""
    if not info.enabled:
        return None
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            import torch

            torch.cuda.set_device(int(device.split(":")[1]))
        dist.init_process_group(backend=backend)
    return backend


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's value on every rank."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    box = [value if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(info: DistInfo, value: Any) -> list[Any]:
    if not info.enabled:
        return [value]
    import torch.distributed as dist

    boxes: list[Any] = [None] * info.world
    dist.all_gather_object(boxes, value)
    return boxes


def all_reduce_mean_(info: DistInfo, tensor):
    """In-place mean over ranks (a no-op on one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= info.world
    return tensor


def all_reduce_sum_(info: DistInfo, tensor):
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
