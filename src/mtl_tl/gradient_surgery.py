"""Gradient surgery: edit the task gradients before they reach the shared trunk (chapter 3).

Loss weighting (:mod:`mtl_tl.weighting`) scales whole task losses. When two tasks'
gradients on the shared trunk point in conflicting directions (a negative cosine), no
weighting removes the conflict: PCGrad (Yu et al., "Gradient surgery for multi-task
learning", NeurIPS 2020) projects each task gradient off the ones it conflicts with.
This module also measures the conflict: :func:`gradient_cosine` for one step,
:class:`ConflictMonitor` for every step of a run, logged as ``cos/<a>|<b>``.

Both need one backward pass per task on the shared parameters, which makes a step
dearer than equal weighting's (``benchmarks/RESULTS.md`` measures by how much), and
neither runs under DDP. The public functions check their arguments; the loss
strategies' ``backward``, which runs every step, trusts what the engine hands it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_int, check_type
from .engine import LossStrategy
from .models import MultiTaskNet
from .weighting import EqualWeighting

__all__ = ["pcgrad_combine", "PCGrad", "gradient_cosine", "ConflictMonitor"]


def _task_gradients(losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One flat gradient ``(P,)`` per task on the shared parameters; keeps the graph."""
    grads = []
    for loss in losses.values():
        parts = torch.autograd.grad(loss, list(shared), retain_graph=True, allow_unused=True)
        # A shared tensor that this task does not reach has a zero gradient, not None.
        grads.append(torch.cat([
            (torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(shared, parts)
        ]))
    return grads


def _pairwise_cosines(names: Sequence[str], grads: Sequence[torch.Tensor]) -> dict[tuple[str, str], float]:
    out = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out[(names[i], names[j])] = float(torch.nn.functional.cosine_similarity(grads[i], grads[j], dim=0))
    return out


def _cos_logs(cosines: Mapping[tuple[str, str], float]) -> dict[str, float]:
    return {f"cos/{a}|{b}": c for (a, b), c in cosines.items()}


def _check_losses(losses: Any) -> dict[str, torch.Tensor]:
    if not isinstance(losses, Mapping) or not losses:
        raise ValueError(f"losses must be a non-empty mapping {{task_name: scalar tensor}}, got {losses!r:.80}")
    for name, loss in losses.items():
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"losses[{name!r}] must be a scalar tensor, got {loss!r:.80}")
    return dict(losses)


def _check_shared(shared: Any) -> list[torch.Tensor]:
    if isinstance(shared, torch.Tensor) or not isinstance(shared, Sequence):
        raise TypeError(f"shared must be a list of parameters, got {type(shared).__name__}")
    shared = list(shared)
    if not shared:
        raise ValueError("shared is empty; give the trainable parameters of the trunk")
    for i, p in enumerate(shared):
        if not isinstance(p, torch.Tensor) or not p.requires_grad:
            raise ValueError(f"shared[{i}] must be a tensor with requires_grad=True, got {p!r:.80}")
    return shared


# ----------------------------------------------------------------------- projection


def pcgrad_combine(
    grads: Sequence[torch.Tensor], generator: torch.Generator, *, reduction: str = "sum"
) -> torch.Tensor:
    """PCGrad's projection of conflicting gradients (Yu et al., NeurIPS 2020), chapter 3.

    For each task ``i``, in a fresh random order of the *other* tasks ``j``: when
    ``g_i' . g_j < 0``, remove from ``g_i'`` its component along the *original*
    ``g_j``: ``g_i' -= (g_i' . g_j / ||g_j||^2) g_j``. Gradients that do not conflict
    pass through unchanged. The projected gradients are then summed (the book's
    convention, so that the scale matches :class:`~mtl_tl.weighting.EqualWeighting`), or averaged with
    ``reduction="mean"``.

    Args:
        grads: one flat gradient ``(P,)`` per task, all the same shape.
        generator: a seeded CPU ``torch.Generator`` that draws the orders.
        reduction: ``"sum"`` (default) or ``"mean"``.

    Returns:
        The combined gradient ``(P,)``.
    """
    check_choice("reduction", reduction, ("sum", "mean"))
    check_type("generator", generator, torch.Generator)
    if isinstance(grads, torch.Tensor) or not isinstance(grads, Sequence) or not grads:
        raise ValueError(f"grads must be a non-empty list of 1-D tensors, got {type(grads).__name__}")
    for i, g in enumerate(grads):
        if not isinstance(g, torch.Tensor) or g.ndim != 1 or not g.is_floating_point():
            raise ValueError(f"grads[{i}] must be a 1-D floating-point tensor (P,), got {g!r:.80}")
        if g.shape != grads[0].shape:
            raise ValueError(
                f"grads[{i}] has shape {tuple(g.shape)} but grads[0] has {tuple(grads[0].shape)}; they must match"
            )
    return _pcgrad_combine(grads, generator, reduction)


def _pcgrad_combine(grads: Sequence[torch.Tensor], generator: torch.Generator, reduction: str) -> torch.Tensor:
    # pcgrad_combine after its checks; PCGrad.backward calls it every step.
    projected = []
    for i, g_i in enumerate(grads):
        g = g_i.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:  # a negative dot product implies ||g_j|| > 0
                norm2 = grads[j].pow(2).sum()
                if norm2 >= torch.finfo(norm2.dtype).tiny:
                    g = g - dot / norm2 * grads[j]
                else:
                    # ||g_j||^2 underflowed (a saturated task): dividing by it would give
                    # inf. The projection does not depend on g_j's length, so project on
                    # g_j rescaled to a max-abs of 1, whose squared norm is at least 1.
                    u = grads[j] / grads[j].abs().max()
                    g = g - torch.dot(g, u) / u.pow(2).sum() * u
        projected.append(g)
    combined = torch.stack(projected).sum(dim=0)
    return combined / len(grads) if reduction == "mean" else combined


class PCGrad(LossStrategy):
    """Projecting conflicting gradients (Yu et al. 2020) on the shared trunk: a loss strategy, chapter 3.

    Each step computes every task's gradient on the *shared* parameters (one
    ``torch.autograd.grad`` per task), combines them with :func:`pcgrad_combine`
    (a fresh random order per step from a generator seeded with ``seed``) and
    writes the result into the trunk's ``.grad``. The heads get their plain
    per-task gradients: a head is reached by one task only, so there is nothing to
    project. Logs the number and share of conflicting task pairs (negative cosine)
    and each pair's cosine ``cos/<a>|<b>``.

    The shared gradient is the *sum* of the projected task gradients, as in the
    paper's implementation, so that with no conflict PCGrad equals
    :class:`~mtl_tl.weighting.EqualWeighting` exactly; ``reduction="mean"`` divides it by ``T``.

    Args:
        seed: seed of the random task orders (a fixed seed gives the same run).
        reduction: ``"sum"`` (the book's choice) or ``"mean"``.
    """

    needs_task_gradients = True

    def __init__(self, seed: int = 0, reduction: str = "sum") -> None:
        super().__init__(None)
        self.seed = check_int("seed", seed, min_value=0)
        self.reduction = check_choice("reduction", reduction, ("sum", "mean"))
        self.generator = torch.Generator().manual_seed(self.seed)
        self._heads: list[nn.Parameter] = []

    def prepare(self, net: MultiTaskNet) -> None:
        """Remember the heads' parameters (see :meth:`backward`)."""
        self._heads = list(net.heads.parameters())

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Heads: plain gradients; trunk: the PCGrad combination of the task gradients."""
        shared = list(shared)
        if len(losses) < 2 or not shared:
            sum(losses.values()).backward()
            return {}
        names = list(losses)
        grads = _task_gradients(losses, shared)
        combined = _pcgrad_combine(grads, self.generator, self.reduction)
        # The plain sum gives every head its own task's gradient. Restricted to the heads
        # (known once fit() has called prepare), autograd stops before the trunk, whose
        # gradient is the projected combination set below.
        heads = [p for p in self._heads if p.requires_grad]
        sum(losses.values()).backward(inputs=heads or None)
        offset = 0
        for p in shared:
            p.grad = combined[offset : offset + p.numel()].view_as(p).to(p.dtype).clone()
            offset += p.numel()
        cosines = _pairwise_cosines(names, grads)
        conflicts = sum(1 for c in cosines.values() if c < 0)
        return {"pcgrad/conflicts": float(conflicts), "pcgrad/conflict_fraction": conflicts / len(cosines),
                **_cos_logs(cosines)}


# ------------------------------------------------------------------ gradient conflict


def gradient_cosine(
    losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor]
) -> dict[tuple[str, str], float]:
    """Pairwise cosine of the task gradients on the shared parameters (chapter 3).

    A negative cosine means the tasks pull the trunk in conflicting directions
    (what PCGrad removes). The graph is kept, so the caller can still backward.

    Args:
        losses: ``{task_name: scalar loss}`` of one step, each with a graph to ``shared``.
        shared: the trunk's trainable parameters.

    Returns:
        ``{(a, b): cos}`` for every pair of tasks in the order of ``losses``;
        0 when one of the two gradients is zero.
    """
    losses = _check_losses(losses)
    shared = _check_shared(shared)
    return _pairwise_cosines(list(losses), _task_gradients(losses, shared))


class ConflictMonitor(LossStrategy):
    """Wraps any loss strategy and logs the pairwise gradient cosines ``cos/<a>|<b>`` each step.

    Costs one extra backward per task per step; the training itself is the wrapped
    loss strategy's (chapter 3).

    Args:
        base: the loss strategy that turns the losses into gradients (default: the sum).
    """

    needs_task_gradients = True

    def __init__(self, base: LossStrategy | None = None) -> None:
        super().__init__(None)
        base = EqualWeighting() if base is None else base
        check_type("base", base, LossStrategy)
        self.base = base

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The wrapped loss strategy's weights."""
        return self.base.weights(names)

    def prepare(self, net: MultiTaskNet) -> None:
        """Passed on to the wrapped loss strategy (which checks its tasks there)."""
        self.base.prepare(net)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Measure the cosines, then let the wrapped loss strategy fill the gradients."""
        logs = {}
        if len(losses) > 1 and shared:
            logs = _cos_logs(_pairwise_cosines(list(losses), _task_gradients(losses, shared)))
        return {**logs, **self.base.backward(losses, shared)}

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Passed on to the wrapped loss strategy."""
        self.base.on_epoch_end(train_losses)

    def set_progress(self, progress: float) -> None:
        """Passed on to the wrapped loss strategy."""
        self.base.set_progress(progress)
