"""How the tasks' data reach the training loop: one endless stream of batches per data object.

Tasks that read the *same* data object (several labels of one image) share one stream,
so one trunk pass per step serves all of them; tasks with their own data get their own
stream (chapter 4.2). :func:`mtl_tl.engine.fit` draws one batch from every stream each
step, and :func:`mtl_tl.engine.evaluate` groups the tasks the same way. Both check the
tasks first (:func:`mtl_tl.tasks.check_tasks`); the helpers here trust them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from .data import TensorData, TensorLoader
from .tasks import Task

__all__ = ["BatchStream", "group_by_data", "to_device"]

# Samplers whose generator a BatchStream set, so that the next fit can set it again;
# a generator the user gave a sampler is never replaced.
_seeded_samplers: weakref.WeakSet = weakref.WeakSet()


def group_by_data(tasks: list[Task], split: str) -> list[tuple[Any, list[Task]]]:
    """``[(data, tasks_reading_it), ...]``: the tasks grouped by the identity of their ``split`` data.

    Groups come in the order of their first task; ``split`` is ``"train"`` or ``"test"``.
    """
    groups: dict[int, tuple[Any, list[Task]]] = {}
    for task in tasks:
        data = getattr(task, split)
        groups.setdefault(id(data), (data, []))[1].append(task)
    return list(groups.values())


def to_device(value: torch.Tensor | Mapping[str, torch.Tensor], device: torch.device) -> Any:
    """A batch's images or labels (a tensor, or a dict of label tensors) on ``device``."""
    if isinstance(value, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in value.items()}
    return value.to(device, non_blocking=True)


class BatchStream:
    """Endless batches from one data object, shared by the tasks that train on it.

    Args:
        data: a :class:`~mtl_tl.data.TensorData` (moved to ``device`` once and batched by
            a :class:`~mtl_tl.data.TensorLoader`) or any sized iterable of ``(x, y)``
            batches, such as a ``DataLoader``.
        tasks: the tasks that read this data.
        batch_size, rank, world_size: the :class:`~mtl_tl.data.TensorLoader`'s.
        seed: the batch order. A :class:`~mtl_tl.data.TensorData` shuffles with it; a
            ``DataLoader`` with ``shuffle=True`` (a ``RandomSampler``) gets a generator
            seeded with it, unless you gave the sampler a generator of your own, which is
            kept. Without that, a ``DataLoader`` would shuffle from the global seed, and two
            calls with different seeds would see the same order.
        memory_format: ``torch.channels_last`` turns image batches ``(B, C, H, W)`` into NHWC.

    Attributes:
        steps: batches in one pass over the data.
    """

    def __init__(self, data: Any, tasks: list[Task], *, batch_size: int, seed: int, device: torch.device,
                 rank: int = 0, world_size: int = 1,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.tasks = tasks
        self.device = device
        self.memory_format = memory_format
        if isinstance(data, TensorData):
            data = TensorLoader(data.to(device), batch_size, seed=seed, rank=rank, world_size=world_size)
        elif isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler):
            sampler = data.sampler
            if sampler.generator is None or sampler in _seeded_samplers:
                sampler.generator = torch.Generator().manual_seed(seed)
                _seeded_samplers.add(sampler)
        self.loader: Iterable = data
        self.steps = len(self.loader)
        self._iterator: Iterator | None = None

    def next(self) -> tuple[torch.Tensor, Any]:
        """The next ``(x, y)`` on the device; at the end of the data a new pass begins."""
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            x, y = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)  # a shorter stream starts a new pass
            x, y = next(self._iterator)
        x = to_device(x, self.device)
        if self.memory_format is not torch.contiguous_format and x.ndim == 4:
            x = x.contiguous(memory_format=self.memory_format)
        return x, to_device(y, self.device)
