"""Loss weighting for multi-task learning: how much each task's loss counts (chapter 3).

Eq. 3.2 sums the task losses; eq. 3.1 puts a ``lambda`` in front of one of them. The
loss strategies here choose those weights, by hand or as training goes, and then
back-propagate ``sum_i w_i L_i`` through the one loop :func:`mtl_tl.engine.fit`:

=============================  ==========================================================
loss strategy                  weight ``w_i`` of task ``i``
=============================  ==========================================================
:class:`EqualWeighting`        1 (eq. 3.2)
:class:`FixedWeights`          chosen by hand (eq. 3.1's ``lambda``)
:class:`UncertaintyWeighting`  ``c_i exp(-s_i)``, ``c_i`` 1 or 1/2, ``s_i`` learnt
:class:`GradNorm`              learnt so that gradient norms follow training rates
:class:`DWA`                   from the ratio of the last two epoch losses
=============================  ==========================================================

Loss strategies that edit the task *gradients* rather than weight the losses (PCGrad) are
in :mod:`mtl_tl.gradient_surgery`; :mod:`mtl_tl.multitask` builds any of them by name and
trains with them. The loss-scale convention (a sum over tasks, never a mean) is
explained there.

Task names are checked once per run, in :meth:`~mtl_tl.engine.LossStrategy.prepare`
(which :func:`~mtl_tl.engine.fit` calls before the first step); ``backward`` runs every
step and trusts the losses the engine hands it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_float, check_type
from .engine import LossStrategy
from .models import MultiTaskNet

__all__ = [
    "TASK_KINDS",
    "EqualWeighting",
    "FixedWeights",
    "UncertaintyWeighting",
    "GradNorm",
    "DWA",
    "dwa_weights",
]

TASK_KINDS = ("classification", "regression")
"""The task kinds of :class:`UncertaintyWeighting`, which set its factor ``c_i`` (1 or 1/2)."""


def _check_same_tasks(what: str, expected: Sequence[str], given: Sequence[str]) -> None:
    if set(expected) != set(given):
        raise ValueError(
            f"{what} was set up for tasks {sorted(expected)} but was given tasks {sorted(given)}; "
            "use one loss strategy object per set of tasks"
        )


class EqualWeighting(LossStrategy):
    """Eq. 3.2 as written: the plain sum ``sum_i L_i``, every weight 1 (chapter 3).

    The network gradient is ``sum_i grad L_i``; this is also what
    :func:`mtl_tl.engine.fit` does with no loss strategy.
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

    def prepare(self, net: MultiTaskNet) -> None:
        """Checks, once per run, that every task being trained has a weight."""
        super().prepare(net)
        missing = sorted(set(net.heads) - set(self.fixed))
        if missing:
            raise ValueError(
                f"weights has no entry for task(s) {missing}; weights given: {sorted(self.fixed)}"
            )


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
        lr: learning rate of the log-variances in the engine's optimizer; None (the
            default) uses ``fit``'s rate. A larger rate lets the weights adapt within a
            short run (chapter 3).
    """

    def __init__(self, task_kinds: Mapping[str, str], lr: float | None = None) -> None:
        super().__init__(None)
        self.lr = None if lr is None else check_float("lr", lr, min_value=0.0, strict_min=True)
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

    def param_groups(self) -> list[dict[str, Any]]:
        """The log-variances, at ``lr`` when one was given (see :meth:`~mtl_tl.engine.LossStrategy.param_groups`)."""
        groups = super().param_groups()
        if self.lr is not None:
            for group in groups:
                group["lr"] = self.lr
        return groups

    def prepare(self, net: MultiTaskNet) -> None:
        """Checks, once per run, that ``task_kinds`` names exactly the tasks being trained."""
        super().prepare(net)
        _check_same_tasks("UncertaintyWeighting", self.names, list(net.heads))

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The effective weight ``c_i exp(-s_i)`` of each task."""
        _check_same_tasks("UncertaintyWeighting", self.names, list(names))
        return self._effective_weights()

    def total_loss(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum_i c_i exp(-s_i) L_i + s_i / 2``: a scalar, differentiable in the net and ``s``.

        Args:
            losses: ``{task_name: scalar loss}`` for exactly the tasks of ``task_kinds``.
        """
        _check_same_tasks("UncertaintyWeighting", self.names, list(losses))
        return self._weighted_sum(losses)

    def _effective_weights(self) -> dict[str, float]:
        effective = (self.factors * torch.exp(-self.log_vars.detach())).tolist()
        return {n: w for n, w in zip(self.names, effective)}

    def _weighted_sum(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[n].reshape(()) for n in self.names])
        return (self.factors * torch.exp(-self.log_vars) * stacked + self.log_vars / 2).sum()

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Backward of :meth:`total_loss`; fills the network's and ``log_vars``' gradients."""
        self._weighted_sum(losses).backward()
        logs = {f"weight/{n}": w for n, w in self._effective_weights().items()}
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
        lr: learning rate of the weights' Adam optimizer. The default, 1e-3, is Adam's
            usual rate, as the paper trains its weights with the network's optimizer
            settings. Much larger rates let a weight collapse: on a three-task problem
            with one regression in units 10 times larger (``benchmarks/gradnorm_lr.py``,
            5 seeds, 240 steps), 0.025 drove that task's weight to about 0.04 and nearly
            quadrupled its test loss, while 1e-3 stayed close to equal weighting with
            small gains on all three tasks. A short run may need a larger rate for the
            weights to move at all (chapters 3, 4.2 and 5 say which they use).
        layer: the shared layer ``W``: a parameter (of the trunk), a module (its last
            parameter with ``ndim > 1``), or None for the last shared parameter with
            ``ndim > 1`` (the last conv/linear weight of the trunk).
    """

    needs_task_gradients = True

    #: Floor of the weights before they are rescaled; a weight of exactly 0 would silence a task for good.
    min_weight = 1e-4

    def __init__(self, alpha: float = 1.5, lr: float = 1e-3, layer: nn.Parameter | nn.Module | None = None) -> None:
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
        # Set past nn.Module's bookkeeping: the layer belongs to the trunk, which fit's
        # optimizer already trains; registered here it would be in two parameter groups.
        object.__setattr__(self, "layer", layer)
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
        if self.layer is None and not any(p.ndim > 1 for p in shared):
            raise ValueError(
                "GradNorm found no shared parameter with ndim > 1 (every trunk weight matrix "
                "is frozen?); pass layer= a trainable trunk layer"
            )
        chosen = self._find_layer(shared)
        if not any(chosen is p for p in shared):
            raise ValueError(
                f"layer (a parameter of shape {tuple(chosen.shape)}) is not a trainable shared "
                "parameter of the trunk; pass a layer of the trunk that is not frozen"
            )
        return chosen

    def prepare(self, net: MultiTaskNet) -> None:
        """Checks, once per run, the shared layer and (for a reused object) the tasks."""
        super().prepare(net)
        if self.names is not None:
            _check_same_tasks("GradNorm", self.names, list(net.heads))
        self.shared_layer([p for p in net.trunk.parameters() if p.requires_grad])

    def _find_layer(self, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.layer is None:
            return [p for p in shared if p.ndim > 1][-1]
        if isinstance(self.layer, nn.Parameter):
            return self.layer
        return [p for p in self.layer.parameters() if p.ndim > 1][-1]

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
        first_step = self.names is None
        names = list(losses) if first_step else self.names
        stacked = torch.stack([losses[n].reshape(()).float() for n in names])
        if first_step:
            self._start(names, stacked)
        else:
            self._ensure_leaf()
        w = self.task_weights
        layer = self._find_layer(shared)
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
    if len(loss_history) >= 2:
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
    return _dwa_weights(loss_history, temperature)


def _dwa_weights(loss_history: Sequence[Mapping[str, float]], temperature: float) -> dict[str, float]:
    # dwa_weights after its checks; DWA calls it once per epoch on the engine's own losses.
    if not loss_history:
        return {}
    if len(loss_history) < 2:
        return {n: 1.0 for n in loss_history[-1]}
    last, previous = loss_history[-1], loss_history[-2]
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

    def prepare(self, net: MultiTaskNet) -> None:
        """Checks, once per run, that epochs kept from an earlier run name the same tasks."""
        super().prepare(net)
        if self.loss_history:
            _check_same_tasks("DWA", list(self.loss_history[-1]), list(net.heads))

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The weights of the current epoch (1 until two epochs are done)."""
        if self.current:
            _check_same_tasks("DWA", list(self.current), list(names))
        return {n: self.current.get(n, 1.0) for n in names}

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """``sum_i w_i L_i`` backward with this epoch's weights."""
        weights = {n: self.current.get(n, 1.0) for n in losses}
        sum(weights[n] * loss for n, loss in losses.items()).backward()
        return {f"weight/{n}": w for n, w in weights.items()}

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Record this epoch's training losses and set the next epoch's weights."""
        losses = {n: float(v) for n, v in train_losses.items()}
        bad = {n: v for n, v in losses.items() if not math.isfinite(v)}
        if bad:  # once per epoch: a diverged task would otherwise turn every weight into NaN
            raise ValueError(f"DWA: the training loss of {sorted(bad)} is not finite ({bad}); "
                             "training diverged: lower the learning rate or clip the gradients")
        self.loss_history.append(losses)
        self.current = _dwa_weights(self.loss_history, self.temperature)
