"""What moves the weights: the optimizer :func:`mtl_tl.engine.fit` builds and the learning-rate schedule it steps.

``fit`` builds the optimizer itself (from its trainable parameters and groups), so a
learning-rate scheduler, which must wrap that very optimizer, reaches ``fit`` as a
*factory*: a callable that takes the optimizer and returns any
``torch.optim.lr_scheduler`` scheduler, e.g.
``fit(..., scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=500))``.
``scheduler_step`` says whether it steps after every optimizer step (``"step"``) or
after every epoch (``"epoch"``). DANN's annealed rate (chapter 5) is one such schedule.
:func:`~mtl_tl.engine.make_optimizer` is re-exported, and documented, under :mod:`mtl_tl.engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_float

__all__ = ["OPTIMIZERS", "SCHEDULER_STEPS", "SchedulerFactory", "make_optimizer", "make_scheduler"]

OPTIMIZERS = ("adam", "adamw", "sgd")
"""The optimizer names :func:`~mtl_tl.engine.make_optimizer` (and ``fit(optimizer=...)``) accepts."""

SCHEDULER_STEPS = ("step", "epoch")
"""When ``fit`` steps a scheduler: after every optimizer step, or after every epoch."""

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
"""``optimizer -> scheduler``: how a learning-rate schedule reaches ``fit``, which builds the optimizer."""


def make_optimizer(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    name: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum 0.9 over ``params`` (tensors or parameter groups)."""
    check_choice("optimizer", name, OPTIMIZERS)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: every parameter is frozen")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(factory: SchedulerFactory, optimizer: torch.optim.Optimizer, every: str = "step") -> Any:
    """``factory(optimizer)``, checked: a scheduler of *this* optimizer that ``fit`` can step ``every`` step or epoch.

    ``ReduceLROnPlateau`` needs a value to watch: it must step per epoch, and ``fit``
    passes it the sum of the epoch's training losses.

    Raises:
        TypeError: ``factory`` is not callable, or returns something without a ``step()``.
        ValueError: the scheduler wraps another optimizer (it would change nothing), or
            a ``ReduceLROnPlateau`` is asked to step per optimizer step.
    """
    if not callable(factory):
        raise TypeError(
            f"scheduler must be a callable that takes fit's optimizer and returns a scheduler, "
            f"e.g. lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10); got {type(factory).__name__}: {factory!r:.80}"
        )
    check_choice("scheduler_step", every, SCHEDULER_STEPS)
    scheduler = factory(optimizer)
    if not callable(getattr(scheduler, "step", None)):
        raise TypeError(
            f"scheduler(optimizer) must return a learning-rate scheduler with a step() method "
            f"(any torch.optim.lr_scheduler class), got {type(scheduler).__name__}: {scheduler!r:.80}"
        )
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError(
            "scheduler(optimizer) returned a scheduler of another optimizer; build it on the "
            "optimizer it receives, which is the one fit trains with"
        )
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and every != "epoch":
        raise ValueError("ReduceLROnPlateau watches an epoch's loss: use scheduler_step='epoch'")
    return scheduler
