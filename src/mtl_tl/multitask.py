"""Multi-task learning: eq. 3.2, loss weighting, gradient surgery and the sequential baseline.

Chapter 3 writes multi-task learning as ``min_theta sum_i L_i(f_theta(x_i), y_i)``
(eq. 3.2); chapter 4.2 trains it. The article's code instead trains task 1 for ten
epochs and *then* task 2 (its ``Task.train`` is a whole training loop and its
``evaluate`` is empty): that is sequential fine-tuning, kept here as the named
baseline :func:`train_sequentially`, which shows how much of task 1 it forgets.
:func:`train_jointly` is eq. 3.2 itself, through the one loop :func:`mtl_tl.engine.fit`.

How the task losses become one gradient is a :class:`~mtl_tl.engine.LossStrategy`:

=============================  ==========================================================
strategy                       gradient on the shared trunk, per step
=============================  ==========================================================
:class:`EqualWeighting`        ``sum_i g_i`` with ``g_i = grad L_i`` (eq. 3.2)
:class:`FixedWeights`          ``sum_i w_i g_i``, ``w_i`` chosen by hand
:class:`UncertaintyWeighting`  ``sum_i c_i exp(-s_i) g_i``, ``c_i`` 1 or 1/2, ``s_i`` learnt
:class:`GradNorm`              ``sum_i w_i g_i``, ``w_i > 0`` learnt, ``sum_i w_i = T``
:class:`DWA`                   ``sum_i w_i g_i``, ``w_i`` from loss ratios, ``sum_i w_i = T``
:class:`PCGrad`                ``sum_i g_i'``, each ``g_i'`` projected off conflicting ``g_j``
=============================  ==========================================================

**One loss-scale convention.** Every strategy works on the *sum* over tasks, as the
engine and eq. 3.2 do, never on the mean; each ``L_i`` is the batch mean of task
``i``. With all weights 1 every method above reduces to the same gradient
``sum_i g_i`` (GradNorm and DWA start at ``w_i = 1``, uncertainty weighting at
``s_i = 0`` for classification, PCGrad when no two tasks conflict), so a learning
rate tuned for :class:`EqualWeighting` is a fair starting point for all of them.
Uncertainty weighting's regression factor ``1/2`` halves a regression task's
gradient at ``s = 0``; that is the paper's formula, not a change of convention.

Names of what the strategies log in ``History.logs`` (epoch means of each step):
``weight/<task>`` (effective weights), ``log_var/<task>`` (uncertainty),
``gradnorm/<task>`` and ``gradnorm/loss`` (GradNorm), ``pcgrad/conflicts`` and
``pcgrad/conflict_fraction`` (PCGrad), and ``cos/<a>|<b>`` (pairwise cosine of the
task gradients on the shared parameters; PCGrad and :class:`ConflictMonitor`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._checks import check_choice, check_float, check_int, check_type
from .engine import History, LossStrategy, evaluate, fit
from .models import MultiTaskNet
from .tasks import Task, check_tasks

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Task",
    "STRATEGIES",
    "TASK_KINDS",
    "EqualWeighting",
    "FixedWeights",
    "UncertaintyWeighting",
    "GradNorm",
    "DWA",
    "PCGrad",
    "ConflictMonitor",
    "make_strategy",
    "dwa_weights",
    "pcgrad_combine",
    "gradient_cosine",
    "train_jointly",
    "train_sequentially",
    "SequentialResult",
]

STRATEGIES = ("equal", "fixed", "uncertainty", "gradnorm", "dwa", "pcgrad")
TASK_KINDS = ("classification", "regression")


# --------------------------------------------------------------------------- helpers


def _check_losses(losses: Any) -> dict[str, torch.Tensor]:
    if not isinstance(losses, Mapping) or not losses:
        raise ValueError(f"losses must be a non-empty mapping {{task_name: scalar tensor}}, got {losses!r:.80}")
    for name, loss in losses.items():
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"losses[{name!r}] must be a scalar tensor, got {loss!r:.80}")
    return dict(losses)


def _check_same_tasks(what: str, expected: Sequence[str], losses: Mapping[str, Any]) -> None:
    if set(expected) != set(losses):
        raise ValueError(
            f"{what} was set up for tasks {sorted(expected)} but got losses for {sorted(losses)}; "
            "use one strategy object per set of tasks"
        )


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


# ------------------------------------------------------------------------ weightings


class EqualWeighting(LossStrategy):
    """Eq. 3.2 as written: the plain sum ``sum_i L_i``, every weight 1 (chapter 3).

    The network gradient is ``sum_i grad L_i``; this is also what
    :func:`mtl_tl.engine.fit` does with no strategy.
    """

    def __init__(self) -> None:
        super().__init__(None)


class FixedWeights(LossStrategy):
    """Hand-chosen weights: ``sum_i w_i L_i`` (chapter 3; eq. 3.1's ``lambda`` is one of them).

    Args:
        weights: ``{task_name: w_i}`` for *every* task, each ``w_i >= 0``, not all 0.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"weights must be a non-empty mapping {{task_name: weight}}, got {weights!r:.80}")
        for name in weights:
            if not isinstance(name, str) or not name:
                raise ValueError(f"weights keys must be task names (non-empty str), got {name!r}")
        super().__init__(weights)
        if not any(w > 0 for w in self.fixed.values()):
            raise ValueError(f"weights are all 0 ({self.fixed}); at least one task needs a positive weight")

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """``sum_i w_i L_i`` backward; every task in ``losses`` must have a weight."""
        missing = sorted(set(losses) - set(self.fixed))
        if missing:
            raise ValueError(
                f"weights has no entry for task(s) {missing}; weights given: {sorted(self.fixed)}"
            )
        return super().backward(losses, shared)


class UncertaintyWeighting(LossStrategy):
    """Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018), chapter 3.

    Each task ``i`` has a learnable log-variance ``s_i = log sigma_i^2`` (init 0), an
    ``nn.Parameter`` that the engine's optimizer trains along with the network.
    The loss is the paper's form:

    * classification: ``exp(-s_i) * L_i + s_i / 2``  (``1/sigma^2 L + log sigma``)
    * regression:     ``1/2 * exp(-s_i) * L_i + s_i / 2``  (``1/(2 sigma^2) L + log sigma``)

    A common variant (e.g. many public re-implementations) uses the regression
    form ``1/2 exp(-s) L + s/2`` for every task; it only halves the classification
    gradients. The effective weight ``c_i exp(-s_i)`` is logged as ``weight/<task>``
    and ``s_i`` as ``log_var/<task>``. A task whose loss stays large gets a large
    ``s_i`` and so a small weight; the ``s_i / 2`` term keeps ``s_i`` from growing
    without bound.

    Args:
        task_kinds: ``{task_name: "classification" | "regression"}`` for every task.
    """

    def __init__(self, task_kinds: Mapping[str, str]) -> None:
        super().__init__(None)
        if not isinstance(task_kinds, Mapping) or not task_kinds:
            raise ValueError(
                f"task_kinds must be a non-empty mapping {{task_name: kind}}, got {task_kinds!r:.80}"
            )
        for name, kind in task_kinds.items():
            check_choice(f"task_kinds[{name!r}]", kind, TASK_KINDS)
        self.names = list(task_kinds)
        self.kinds = dict(task_kinds)
        self.register_buffer(
            "factors", torch.tensor([1.0 if task_kinds[n] == "classification" else 0.5 for n in self.names])
        )
        self.log_vars = nn.Parameter(torch.zeros(len(self.names)))

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The effective weight ``c_i exp(-s_i)`` of each task."""
        _check_same_tasks("UncertaintyWeighting", self.names, names)
        effective = (self.factors * torch.exp(-self.log_vars.detach())).tolist()
        return {n: w for n, w in zip(self.names, effective)}

    def total_loss(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum_i c_i exp(-s_i) L_i + s_i / 2``: a scalar, differentiable in the net and ``s``."""
        losses = _check_losses(losses)
        _check_same_tasks("UncertaintyWeighting", self.names, losses)
        stacked = torch.stack([losses[n].reshape(()) for n in self.names])
        return (self.factors * torch.exp(-self.log_vars) * stacked + self.log_vars / 2).sum()

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Backward of :meth:`total_loss`; fills the network's and ``log_vars``' gradients."""
        self.total_loss(losses).backward()
        logs = {f"weight/{n}": w for n, w in self.weights(self.names).items()}
        logs.update({f"log_var/{n}": float(s) for n, s in zip(self.names, self.log_vars.detach())})
        return logs


class GradNorm(LossStrategy):
    """Gradient normalisation (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018), chapter 3.

    Learns task weights ``w_i`` so that the tasks' gradient norms at the last
    shared layer ``W`` follow their relative inverse training rates. Each step:

    1. ``G_i = ||grad_W (w_i L_i)|| = w_i ||grad_W L_i||``, ``G_bar = mean_i G_i``;
    2. ``L~_i = L_i(t) / L_i(0)`` (``L_i(0)``: the loss at the first step),
       ``r_i = L~_i / mean_j L~_j``;
    3. target ``G_bar * r_i^alpha``, held constant (detached);
    4. ``L_grad = sum_i |G_i - target_i|``, whose gradient in ``w`` updates the
       weights with their own Adam optimizer at ``lr``;
    5. the network gets the gradient of ``sum_i w_i L_i`` with ``w`` held constant;
    6. after the update, ``w`` is clamped positive and rescaled to ``sum_i w_i = T``.

    The weights are a buffer, not an ``nn.Parameter``: the engine's optimizer must
    not train them on the network's loss (which would just drive them to 0).
    ``alpha`` sets how hard slow tasks are pushed (0: equal gradient norms). The
    weights and ``L_i(0)`` belong to one training run: use a fresh object per run.

    Args:
        alpha: the asymmetry ``alpha >= 0``; the paper uses 0.12 to 3.
        lr: learning rate of the weights' optimizer.
        layer: the shared layer ``W``: a parameter (of the trunk), a module (its last
            parameter with ``ndim > 1``), or None for the last shared parameter with
            ``ndim > 1`` (the last conv/linear weight of the trunk).
    """

    needs_task_gradients = True

    #: Floor of the weights before they are rescaled; a weight of exactly 0 would silence a task for good.
    min_weight = 1e-4

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, layer: nn.Parameter | nn.Module | None = None) -> None:
        super().__init__(None)
        self.alpha = check_float("alpha", alpha, min_value=0.0)
        self.lr = check_float("lr", lr, min_value=0.0, strict_min=True)
        if layer is not None:
            check_type("layer", layer, (nn.Parameter, nn.Module))
        if isinstance(layer, nn.Module) and not [p for p in layer.parameters() if p.ndim > 1]:
            raise ValueError(
                f"layer={type(layer).__name__} has no parameter with ndim > 1 (a weight matrix); "
                "pass a conv or linear layer, or its weight"
            )
        self.layer = layer
        self.names: list[str] | None = None
        self.register_buffer("task_weights", None)
        self.register_buffer("initial_losses", None)
        self._optimizer: torch.optim.Optimizer | None = None

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The current weights (1 for every task before the first step)."""
        if self.task_weights is None:
            return {n: 1.0 for n in names}
        return {n: float(w) for n, w in zip(self.names, self.task_weights.detach())}

    def shared_layer(self, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        """The parameter ``W`` whose gradient norms are balanced (must be among ``shared``)."""
        if self.layer is None:
            candidates = [p for p in shared if p.ndim > 1]
            if not candidates:
                raise ValueError(
                    "GradNorm found no shared parameter with ndim > 1 (every trunk weight matrix "
                    "is frozen?); pass layer= a trainable trunk layer"
                )
            return candidates[-1]
        if isinstance(self.layer, nn.Parameter):
            chosen = self.layer
        else:
            chosen = [p for p in self.layer.parameters() if p.ndim > 1][-1]
        if not any(chosen is p for p in shared):
            raise ValueError(
                f"layer (a parameter of shape {tuple(chosen.shape)}) is not a trainable shared "
                "parameter of the trunk; pass a layer of the trunk that is not frozen"
            )
        return chosen

    def _start(self, names: list[str], losses: torch.Tensor) -> None:
        self.names = names
        # Tiny floor: a task that starts at loss 0 has no training rate to measure.
        self.initial_losses = losses.detach().clamp_min(1e-12)
        self.task_weights = torch.ones(len(names), device=losses.device, requires_grad=True)
        # Adam, not SGD: the gradient of L_grad in w scales with the gradient norms, which
        # differ by orders of magnitude between problems; Adam's steps do not.
        self._optimizer = torch.optim.Adam([self.task_weights], lr=self.lr)

    def _ensure_leaf(self) -> None:
        # Module.to(...) onto another device replaces the buffer by a copy: make it a
        # leaf again and give the weights' optimizer the new tensor.
        w = self.task_weights
        if self._optimizer is None or self._optimizer.param_groups[0]["params"][0] is not w:
            self.task_weights = w.detach().clone().requires_grad_(True)
            self._optimizer = torch.optim.Adam([self.task_weights], lr=self.lr)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """One GradNorm step: network gradient of ``sum_i w_i L_i``, then update ``w``."""
        losses = _check_losses(losses)
        names = list(losses)
        stacked = torch.stack([losses[n].reshape(()).float() for n in names])
        if self.names is None:
            self._start(names, stacked)
        else:
            _check_same_tasks("GradNorm", self.names, losses)
            stacked = torch.stack([losses[n].reshape(()).float() for n in self.names])
            self._ensure_leaf()
        w = self.task_weights
        layer = self.shared_layer(shared)
        norms = []
        for name in self.names:
            (g,) = torch.autograd.grad(losses[name], layer, retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), device=w.device) if g is None else g.norm())
        # grad_W(w_i L_i) = w_i grad_W L_i, so G_i = w_i ||grad_W L_i|| with no second-order graph.
        grad_norms = w * torch.stack(norms).detach()
        ratios = stacked.detach() / self.initial_losses
        rates = ratios / ratios.mean()
        target = (grad_norms.mean() * rates**self.alpha).detach()
        gradnorm_loss = (grad_norms - target).abs().sum()
        self._optimizer.zero_grad(set_to_none=True)
        (w.grad,) = torch.autograd.grad(gradnorm_loss, w)

        used = w.detach().clone()
        (used * stacked).sum().backward()
        self._optimizer.step()
        with torch.no_grad():
            w.clamp_(min=self.min_weight)
            w.mul_(len(self.names) / w.sum())
        logs = {f"weight/{n}": float(v) for n, v in zip(self.names, used)}
        logs.update({f"gradnorm/{n}": float(g) for n, g in zip(self.names, grad_norms.detach())})
        logs["gradnorm/loss"] = float(gradnorm_loss.detach())
        return logs


def dwa_weights(loss_history: Sequence[Mapping[str, float]], temperature: float = 2.0) -> dict[str, float]:
    """Dynamic weight average weights for the next epoch (Liu, Johns and Davison, CVPR 2019).

    ``w_i(t) = T * exp(r_i(t-1) / temperature) / sum_j exp(r_j(t-1) / temperature)`` with
    ``r_i(t-1) = L_i(t-1) / L_i(t-2)``, the ratio of the last two epoch-mean training
    losses. A task whose loss falls more slowly (ratio near or above 1) gets more
    weight; the weights sum to ``T`` (chapter 3).

    Args:
        loss_history: one ``{task_name: epoch-mean training loss}`` per finished epoch,
            oldest first. Losses must be finite and ``>= 0``.
        temperature: ``> 0``; large values make the weights equal.

    Returns:
        ``{task_name: w_i}``; all 1 while fewer than two epochs are done (and ``{}``
        for an empty history).
    """
    temperature = check_float("temperature", temperature, min_value=0.0, strict_min=True)
    if isinstance(loss_history, Mapping) or not isinstance(loss_history, Sequence):
        raise TypeError(
            f"loss_history must be a list of {{task_name: loss}} dicts, got {type(loss_history).__name__}"
        )
    for k, epoch in enumerate(loss_history):
        if not isinstance(epoch, Mapping) or not epoch:
            raise ValueError(f"loss_history[{k}] must be a non-empty {{task_name: loss}} dict, got {epoch!r:.80}")
    if not loss_history:
        return {}
    if len(loss_history) < 2:
        return {n: 1.0 for n in loss_history[-1]}
    last, previous = loss_history[-1], loss_history[-2]
    if set(last) != set(previous):
        raise ValueError(
            f"the last two epochs of loss_history name different tasks: {sorted(previous)} then {sorted(last)}"
        )
    for k, epoch in ((-2, previous), (-1, last)):
        for name, value in epoch.items():
            value = check_float(f"loss_history[{k}][{name!r}]", value)
            if value < 0:
                raise ValueError(f"loss_history[{k}][{name!r}] must be >= 0 (a loss), got {value}")
    # Floor the denominator: a loss of exactly 0 has no rate of change to compare.
    scaled = {n: last[n] / max(previous[n], 1e-12) / temperature for n in last}
    top = max(scaled.values())  # subtract the max so exp cannot overflow
    exps = {n: math.exp(v - top) for n, v in scaled.items()}
    total = sum(exps.values())
    return {n: len(exps) * e / total for n, e in exps.items()}


class DWA(LossStrategy):
    """Dynamic weight average (Liu et al. 2019): weights from the epoch loss ratios, chapter 3.

    Keeps the epoch-mean *training* losses the engine reports through
    :meth:`on_epoch_end` and weights the next epoch with :func:`dwa_weights`:
    1 for every task in the first two epochs, then
    ``T softmax(L_i(t-1) / L_i(t-2) / temperature)``. Needs no extra gradients.

    Args:
        temperature: ``> 0``; the paper uses 2.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__(None)
        self.temperature = check_float("temperature", temperature, min_value=0.0, strict_min=True)
        self.loss_history: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The weights of the current epoch (1 until two epochs are done)."""
        if self.current:
            _check_same_tasks("DWA", list(self.current), names)
        return {n: self.current.get(n, 1.0) for n in names}

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """``sum_i w_i L_i`` backward with this epoch's weights."""
        losses = _check_losses(losses)
        weights = self.weights(list(losses))
        sum(weights[n] * loss for n, loss in losses.items()).backward()
        return {f"weight/{n}": w for n, w in weights.items()}

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Record this epoch's training losses and set the next epoch's weights."""
        self.loss_history.append({n: float(v) for n, v in train_losses.items()})
        self.current = dwa_weights(self.loss_history, self.temperature)


def pcgrad_combine(
    grads: Sequence[torch.Tensor], generator: torch.Generator, *, reduction: str = "sum"
) -> torch.Tensor:
    """PCGrad's projection of conflicting gradients (Yu et al., NeurIPS 2020), chapter 3.

    For each task ``i``, in a fresh random order of the *other* tasks ``j``: when
    ``g_i' . g_j < 0``, remove from ``g_i'`` its component along the *original*
    ``g_j``: ``g_i' -= (g_i' . g_j / ||g_j||^2) g_j``. Gradients that do not conflict
    pass through unchanged. The projected gradients are then summed (the book's
    convention, so that the scale matches :class:`EqualWeighting`), or averaged with
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
    projected = []
    for i, g_i in enumerate(grads):
        g = g_i.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:  # a negative dot product implies ||g_j|| > 0
                g = g - dot / grads[j].pow(2).sum() * grads[j]
        projected.append(g)
    combined = torch.stack(projected).sum(dim=0)
    return combined / len(grads) if reduction == "mean" else combined


class PCGrad(LossStrategy):
    """Projecting conflicting gradients (Yu et al. 2020) on the shared trunk, chapter 3.

    Each step computes every task's gradient on the *shared* parameters (one
    ``torch.autograd.grad`` per task), combines them with :func:`pcgrad_combine`
    (a fresh random order per step from a generator seeded with ``seed``) and
    writes the result into the trunk's ``.grad``. The heads get their plain
    per-task gradients: a head is reached by one task only, so there is nothing to
    project. Logs the number and share of conflicting task pairs (negative cosine)
    and each pair's cosine ``cos/<a>|<b>``.

    The shared gradient is the *sum* of the projected task gradients, as in the
    paper's implementation, so that with no conflict PCGrad equals
    :class:`EqualWeighting` exactly; ``reduction="mean"`` divides it by ``T``.

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
        losses = _check_losses(losses)
        shared = list(shared)
        if len(losses) < 2 or not shared:
            sum(losses.values()).backward()
            return {}
        names = list(losses)
        grads = _task_gradients(losses, shared)
        combined = pcgrad_combine(grads, self.generator, reduction=self.reduction)
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
    """Wraps any strategy and logs the pairwise gradient cosines ``cos/<a>|<b>`` each step.

    Costs one extra backward per task per step; the training itself is the wrapped
    strategy's (chapter 3).

    Args:
        base: the strategy that turns the losses into gradients (default: the sum).
    """

    needs_task_gradients = True

    def __init__(self, base: LossStrategy | None = None) -> None:
        super().__init__(None)
        base = EqualWeighting() if base is None else base
        check_type("base", base, LossStrategy)
        self.base = base

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The wrapped strategy's weights."""
        return self.base.weights(names)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Measure the cosines, then let the wrapped strategy fill the gradients."""
        logs = {}
        if len(losses) > 1 and shared:
            logs = _cos_logs(gradient_cosine(losses, shared))
        return {**logs, **self.base.backward(losses, shared)}

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Passed on to the wrapped strategy."""
        self.base.on_epoch_end(train_losses)

    def set_progress(self, progress: float) -> None:
        """Passed on to the wrapped strategy."""
        self.base.set_progress(progress)


# -------------------------------------------------------------------------- factory

_OPTIONS: dict[str, tuple[str, ...]] = {
    "equal": (),
    "fixed": ("weights",),
    "uncertainty": ("task_kinds",),
    "gradnorm": ("alpha", "lr", "layer"),
    "dwa": ("temperature",),
    "pcgrad": ("seed", "reduction"),
}


def _check_task_list(tasks: Any) -> list[Task]:
    if isinstance(tasks, Task):
        tasks = [tasks]
    if not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(f"tasks must be a non-empty list of Task, got {tasks!r:.80}")
    for t in tasks:
        check_type("each task", t, Task)
        if not isinstance(t.head, nn.Module):
            raise ValueError(
                f"task {t.name!r} has no head (got {t.head!r:.40}); give it one, e.g. "
                "head=mtl_tl.models.linear_head(trunk.out_features, num_classes)"
            )
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate task names {duplicates}; every task needs its own name")
    return list(tasks)


def _task_kind(task: Task) -> str:
    if task.loss == "cross_entropy":
        return "classification"
    if task.loss == "mse":
        return "regression"
    raise ValueError(
        f"task {task.name!r} has a custom loss, so its kind is unknown; pass "
        f"task_kinds={{{task.name!r}: 'classification' or 'regression', ...}}"
    )


def make_strategy(name: str, tasks: Sequence[Task], **kwargs: Any) -> LossStrategy:
    """A loss strategy by name, checked against the tasks it will train (chapter 3).

    Args:
        name: one of ``"equal"``, ``"fixed"`` (needs ``weights={task: w}``),
            ``"uncertainty"`` (``task_kinds`` defaults from each task's loss:
            cross-entropy is classification, MSE regression), ``"gradnorm"``
            (``alpha``, ``lr``, ``layer``), ``"dwa"`` (``temperature``),
            ``"pcgrad"`` (``seed``, ``reduction``).
        tasks: the tasks, with unique names and a head each.
        kwargs: the strategy's options, as listed above.

    Returns:
        A fresh :class:`~mtl_tl.engine.LossStrategy`.
    """
    check_choice("name", name, STRATEGIES)
    tasks = _check_task_list(tasks)
    names = [t.name for t in tasks]
    unknown = sorted(set(kwargs) - set(_OPTIONS[name]))
    if unknown:
        accepted = ", ".join(_OPTIONS[name]) or "none"
        raise TypeError(f"strategy {name!r} got unknown option(s) {unknown}; it accepts: {accepted}")
    if name == "equal":
        return EqualWeighting()
    if name == "fixed":
        if "weights" not in kwargs:
            raise ValueError(f"strategy 'fixed' needs weights={{task_name: weight}} for tasks {names}")
        weights = kwargs["weights"]
        if isinstance(weights, Mapping) and set(weights) != set(names):
            raise ValueError(f"weights names tasks {sorted(weights)} but the tasks are {sorted(names)}")
        return FixedWeights(weights)
    if name == "uncertainty":
        kinds = kwargs["task_kinds"] if "task_kinds" in kwargs else {t.name: _task_kind(t) for t in tasks}
        if isinstance(kinds, Mapping) and set(kinds) != set(names):
            raise ValueError(f"task_kinds names tasks {sorted(kinds)} but the tasks are {sorted(names)}")
        return UncertaintyWeighting(kinds)
    if name == "gradnorm":
        return GradNorm(**kwargs)
    if name == "dwa":
        return DWA(**kwargs)
    return PCGrad(**kwargs)


# ------------------------------------------------------------------------- training


def train_jointly(
    trunk: nn.Module,
    tasks: Sequence[Task],
    *,
    strategy: str | LossStrategy = "equal",
    epochs: int,
    monitor_conflicts: bool = False,
    **fit_kwargs: Any,
) -> History:
    """Multi-task learning, eq. 3.2: all tasks trained at once on one shared trunk (chapter 4.2).

    Every step draws a batch for each task, and the strategy turns the task losses
    ``{name: L_i}`` into one update (default: the plain sum ``sum_i L_i``).

    Args:
        trunk: the shared network ``(N, C, H, W) -> (N, D)``; trained in place.
        tasks: the tasks, each with its own head (trained in place).
        strategy: a name for :func:`make_strategy` (``"equal"``, ``"uncertainty"``,
            ``"gradnorm"``, ``"dwa"``, ``"pcgrad"``; ``"fixed"`` needs weights, so pass
            ``FixedWeights(...)``) or a :class:`~mtl_tl.engine.LossStrategy`.
        epochs: passes over the longest training stream.
        monitor_conflicts: also log the pairwise gradient cosines ``cos/<a>|<b>``
            (wraps the strategy in :class:`ConflictMonitor`).
        fit_kwargs: passed to :func:`mtl_tl.engine.fit` (``lr``, ``batch_size``, ``device``, ...).

    Returns:
        The :class:`~mtl_tl.engine.History`; ``history.logs`` holds the strategy's logs.
    """
    tasks = _check_task_list(tasks)
    if isinstance(strategy, str):
        check_choice("strategy", strategy, STRATEGIES)
        strategy = make_strategy(strategy, tasks)
    check_type("strategy", strategy, LossStrategy)
    if monitor_conflicts and not isinstance(strategy, (ConflictMonitor, PCGrad)):
        strategy = ConflictMonitor(strategy)
    return fit(trunk, tasks, epochs=epochs, strategy=strategy, **fit_kwargs)


@dataclass
class SequentialResult:
    """What :func:`train_sequentially` measured (chapter 4.2).

    Attributes:
        table: tidy ``pandas.DataFrame`` with one row per (stage, task): ``stage``
            (1-based), ``trained`` (the task trained in that stage), ``task``,
            ``loss`` and ``metric`` on the task's test data after that stage.
        forgetting: per task, its best metric from its own stage on, minus its final
            metric (0 for the last task; larger is worse).
        histories: the :class:`~mtl_tl.engine.History` of each stage.
    """

    table: pd.DataFrame
    forgetting: dict[str, float]
    histories: list[History] = field(default_factory=list)

    def final(self) -> dict[str, float]:
        """Each task's metric after the last stage."""
        last = self.table[self.table["stage"] == self.table["stage"].max()]
        return dict(zip(last["task"], last["metric"]))


def train_sequentially(
    trunk: nn.Module, tasks: Sequence[Task], *, epochs_per_task: int, **fit_kwargs: Any
) -> SequentialResult:
    """The article's schedule, as a BASELINE: task 1, then task 2, ... (chapter 4.2).

    This is sequential fine-tuning, not multi-task learning: each stage optimises one
    task's loss alone (with a fresh optimizer, through :func:`mtl_tl.engine.fit`), so
    the shared trunk drifts toward the latest task and the earlier tasks' accuracy
    drops (catastrophic forgetting). After every stage *all* tasks are evaluated on
    their test data, which is what the article's empty ``evaluate`` never did.
    Compare with :func:`train_jointly`, which optimises eq. 3.2.

    Args:
        trunk: the shared network; trained in place, stage after stage.
        tasks: the tasks in training order; each needs train and test data.
        epochs_per_task: epochs of each stage.
        fit_kwargs: passed to :func:`mtl_tl.engine.fit` for every stage
            (``lr``, ``batch_size``, ``device``, ...; not ``epochs`` or ``strategy``).

    Returns:
        A :class:`SequentialResult`: the (stage, task, metric) table and the forgetting.
    """
    import pandas as pd

    tasks = _check_task_list(tasks)
    check_tasks(tasks, split="train")
    check_tasks(tasks, split="test")
    epochs_per_task = check_int("epochs_per_task", epochs_per_task, min_value=1)
    clash = sorted({"epochs", "strategy"} & set(fit_kwargs))
    if clash:
        raise TypeError(
            f"train_sequentially got {clash}; use epochs_per_task for the length of each stage "
            "(each stage trains one task, so there is no strategy to choose)"
        )
    net = MultiTaskNet(trunk, {t.name: t.head for t in tasks})
    rows: list[dict[str, Any]] = []
    histories = []
    for stage, task in enumerate(tasks, start=1):
        histories.append(fit(trunk, [task], epochs=epochs_per_task, **fit_kwargs))
        results = evaluate(net, tasks, device=fit_kwargs.get("device"))
        for t in tasks:
            rows.append({"stage": stage, "trained": task.name, "task": t.name, **results[t.name]})
    table = pd.DataFrame.from_records(rows, columns=["stage", "trained", "task", "loss", "metric"])
    forgetting = {}
    for own_stage, task in enumerate(tasks, start=1):
        metrics = table[(table["task"] == task.name) & (table["stage"] >= own_stage)]["metric"]
        forgetting[task.name] = float(metrics.max() - metrics.iloc[-1])
    return SequentialResult(table=table, forgetting=forgetting, histories=histories)
