"""The processes of one run: a single process, or the DDP ranks torchrun starts (RANK / WORLD_SIZE
set; gloo on the CPU, nccl on CUDA). `Dist` is what the trainer and the evaluation need to know."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes (checkpoints, records, logs)."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """`values` summed over the processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        torch_dist.all_reduce(t)
        return [float(x) for x in t.tolist()]


def init_distributed(device: torch.device) -> Dist:
    """This process's `Dist` from torchrun's environment; joins the process group when there are several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return Dist(rank, world, local_rank)


def is_writer() -> bool:
    """Whether this process is the one that writes the run directory (rank 0, or the only process),
    known before the process group is joined."""
    return int(os.environ.get("RANK", "0")) == 0
