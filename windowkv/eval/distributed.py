"""Data-parallel evaluation over processes, on an existing launcher (torchrun or accelerate).

Launch the ordinary command under a launcher::

    torchrun --standalone --nproc_per_node 2 -m windowkv eval needle --out runs/n2
    accelerate launch --cpu --num_processes 2 -m windowkv eval needle --out runs/n2

Both set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :meth:`DistContext.from_env` reads them and
joins a ``torch.distributed`` process group (gloo: it runs on CPU and only carries barriers). Rank
``r`` evaluates examples ``i`` with ``i % world_size == r`` and appends its rows to
``results.rank{r}.jsonl``; after a barrier, rank 0 merges every rank file into ``results.jsonl`` and
writes the summary. Without a launcher, ``world_size`` is 1 and nothing of this happens.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

#: how long a rank waits at a barrier for the others (a slow rank on a shared CPU is not a failure)
BARRIER_TIMEOUT = datetime.timedelta(hours=6)


@dataclass
class DistContext:
    """This process's place in a data-parallel run.

    Attributes:
        rank: global rank, ``0 <= rank < world_size``.
        world_size: number of processes.
        local_rank: rank on this machine (selects the CUDA device).
        owns_group: whether this context created the process group (and destroys it in :meth:`close`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_env(cls, backend: str = "gloo") -> DistContext:
        """The context the launcher describes in ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; joins the group."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        import torch.distributed as dist

        owns = False
        if not dist.is_initialized():
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=BARRIER_TIMEOUT)
            owns = True
        if "OMP_NUM_THREADS" not in os.environ:  # the launchers set it; keep cores from being oversubscribed
            import torch

            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        return cls(rank, world, local, owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """The items of this rank: index ``i`` with ``i % world_size == rank``."""
        return [item for i, item in enumerate(items) if i % self.world_size == self.rank]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def device(self, device: str) -> str:
        """``"cuda"`` becomes this rank's GPU (``cuda:<local_rank>``); anything else is unchanged."""
        return f"cuda:{self.local_rank}" if self.distributed and device == "cuda" else device

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False
