"""What a loss strategy is: how the task losses of one step become gradients (chapter 3).

The base class is the plain weighted sum; :mod:`mtl_tl.weighting` learns the weights,
:mod:`mtl_tl.gradient_surgery` edits the gradients, and DANN's schedule (chapter 5) is
one more strategy. Every one of them plugs into the same loop, :func:`mtl_tl.engine.fit`.
:class:`~mtl_tl.engine.LossStrategy` is documented, and best imported, under :mod:`mtl_tl.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._checks import check_float
from .models import MultiTaskNet

__all__ = ["LossStrategy"]


class LossStrategy(nn.Module):
    """Turns the per-task losses of one step into gradients (chapter 3).

    The base class is the weighted sum ``sum_i w_i L_i`` (the book's loss-scale
    convention is a *sum* over tasks, as in the article's eq. 3.2, never a mean), with
    ``w_i = 1`` unless ``weights`` says otherwise. Subclasses in
    :mod:`mtl_tl.weighting` learn the weights; those in :mod:`mtl_tl.gradient_surgery`
    edit the gradients.

    Subclasses override :meth:`backward`. A strategy that holds parameters (e.g.
    uncertainty weighting's log-variances) is an ``nn.Module``: the engine adds them
    to the optimizer through :meth:`param_groups`.
    """

    #: True when the strategy needs each task's gradient separately (PCGrad, GradNorm);
    #: such strategies call ``torch.autograd.grad`` per task and cannot run under DDP.
    needs_task_gradients = False

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.fixed = {}
        for name, w in (weights or {}).items():
            self.fixed[name] = check_float(f"weights[{name!r}]", w, min_value=0.0)

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The current weight of each task (for logging and plots)."""
        return {n: self.fixed.get(n, 1.0) for n in names}

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Fill ``.grad`` of every trainable parameter for this step.

        Runs every step, so it trusts :meth:`prepare` to have checked the task names once.

        Args:
            losses: ``{task_name: scalar loss}``, each the batch mean of that task.
            shared: the trainable parameters of the trunk (shared by all tasks).

        Returns:
            Scalars to log for this step, e.g. ``{"weight/shape": 1.0}``.
        """
        weights = self.weights(list(losses))
        total = sum(weights[name] * loss for name, loss in losses.items())
        total.backward()
        return {f"weight/{n}": w for n, w in weights.items()}

    def prepare(self, net: MultiTaskNet) -> None:
        """Called once by :func:`mtl_tl.engine.fit` before training, with the network being trained.

        The base strategy checks here, once, that its ``weights`` name only tasks that
        have a head. A subclass that overrides it calls ``super().prepare(net)``; PCGrad
        also keeps the heads' parameters, to back-propagate into them without a second
        pass through the trunk.
        """
        unknown = sorted(set(self.fixed) - set(net.heads))
        if unknown:
            raise ValueError(
                f"weights name unknown task(s) {unknown}; the tasks are: {', '.join(net.heads)}"
            )

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Called after each epoch with the epoch-mean training loss of each task.

        The base strategy ignores it; dynamic weight averaging uses it.
        """
        return None

    def set_progress(self, progress: float) -> None:
        """Called before each step with the share of training done, in [0, 1)."""
        return None

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the strategy's own parameters, if it has any.

        :func:`mtl_tl.engine.fit` adds them to the network's optimizer. A group without
        ``"lr"`` uses ``fit``'s learning rate. Weight decay is 0: decaying, say, a
        log-variance toward 0 would pull every task weight toward 1, which is not
        regularisation of the network.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": 0.0}] if params else []
