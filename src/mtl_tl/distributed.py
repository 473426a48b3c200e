"""Multi-process training with ``torchrun``: the little the engine needs to know.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script and sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. :func:`context` reads them, joins the
process group (``gloo`` on CPU, ``nccl`` on GPU) and tells the engine which rank it
is, so that the same :func:`mtl_tl.engine.fit` call runs in one process or in N.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "context", "all_reduce_mean"]


@dataclass(frozen=True)
class Context:
    """This process's place: ``rank`` among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True under ``torchrun`` with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0


def context(device: torch.device) -> Context:
    """The distributed context from the environment; joins the process group once.

    A single process (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) gets ``Context()``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank)


def all_reduce_mean(values: dict[str, float], ctx: Context, device: torch.device) -> dict[str, float]:
    """Average a dict of floats over all processes (identity in a single process)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    buffer = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    buffer /= ctx.world_size
    return dict(zip(keys, buffer.tolist()))
