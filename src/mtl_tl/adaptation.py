"""Domain adaptation with unlabelled target images: DANN, CORAL and MMD (chapter 5).

:func:`train_dann` (Ganin & Lempitsky, 2015) and :func:`train_coral` (Sun & Saenko,
2016) are :func:`mtl_tl.engine.fit` with one extra task, trained on a mix of source
and target images, that pulls the two domains' features together: a domain
classifier behind a :class:`GradientReversal` layer, or the :func:`coral_loss`
between the two domains' feature covariances. :func:`mmd_loss` measures the same gap
another way. :mod:`mtl_tl.transfer` re-exports every name listed here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import engine
from ._checks import check_float, check_int, check_probability, check_tensor, check_type
from .data import TensorData
from .engine import History, LossStrategy, extract_features, fit
from .optim import SchedulerFactory
from .tasks import Task

__all__ = [
    "DOMAIN_TASK",
    "CORAL_TASK",
    "GradientReversal",
    "dann_lam",
    "dann_lr_schedule",
    "DomainAdversarial",
    "domain_classifier",
    "train_dann",
    "coral_loss",
    "mmd_loss",
    "train_coral",
]

DOMAIN_TASK = "domain"
"""Name of the domain-classifier task that :func:`train_dann` adds."""

CORAL_TASK = "coral"
"""Name of the CORAL alignment task that :func:`train_coral` adds."""


class _ReverseGradient(torch.autograd.Function):
    """Identity on the way forward; ``-lam`` times the gradient on the way back."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad_output, None


class GradientReversal(nn.Module):
    """The gradient reversal layer of DANN (Ganin & Lempitsky, 2015; chapter 5).

    Forward: the identity, ``(N, ...) -> (N, ...)``, whatever ``lam`` is. Backward:
    the upstream gradient times ``-lam``. Placed between the trunk and a domain
    classifier, it lets the classifier *minimise* the domain loss while the trunk,
    receiving the reversed gradient, *maximises* it: features that hide the domain.

    Args:
        lam: the factor ``>= 0`` of the reversed gradient; it scales only the
            backward pass. :class:`DomainAdversarial` resets the attribute ``lam``
            before every step from :func:`dann_lam`.
    """

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = check_float("lam", lam, min_value=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam:.4g}"


def _dann_schedule(p: float) -> float:
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def dann_lam(p: float) -> float:
    """DANN's schedule of the reversal factor: ``2 / (1 + exp(-10 p)) - 1`` (chapter 5).

    It rises from 0 at the start (``p=0``), while the domain classifier is still
    random and its gradient only noise, to about 0.9999 at the end (``p=1``).

    Args:
        p: share of training done, in [0, 1].
    """
    return _dann_schedule(check_probability("p", p))


def dann_lr_schedule(total_steps: int) -> SchedulerFactory:
    """DANN's annealed learning rate ``lr_p = lr / (1 + 10 p) ** 0.75``, ``p = step / total_steps`` (chapter 5).

    Ganin & Lempitsky (2015) decay the rate this way while :func:`dann_lam` raises the
    reversal factor: late in training, when the adversarial push is strongest, the steps
    are small (the rate ends near ``lr / 6``), which keeps the two players from
    oscillating. Returns a factory for ``fit(scheduler=..., scheduler_step="step")``: a
    ``LambdaLR`` on fit's optimizer that scales every parameter group's rate alike.

    Args:
        total_steps: the optimizer steps of the run, ``epochs * steps_per_epoch``.
    """
    total_steps = check_int("total_steps", total_steps, min_value=1)

    def factory(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1.0 + 10.0 * step / total_steps) ** -0.75)

    return factory


class DomainAdversarial(LossStrategy):
    """The weighted sum of the task losses, with DANN's schedule on a reversal layer (chapter 5).

    Before each step the engine calls :meth:`set_progress` with the share of training
    done ``p``; this strategy sets ``grl.lam = dann_lam(p)``. The losses themselves
    are summed with fixed weights as in the base class (the domain loss weighted 1):
    the schedule acts on the reversed gradient only, so the domain classifier always
    learns at full strength while the trunk's adversarial push grows.

    Args:
        grl: the :class:`GradientReversal` inside the domain classifier's head.
        weights: fixed task weights, default 1 each.

    Logs ``grl_lam`` (its epoch mean) besides the task weights.
    """

    def __init__(self, grl: GradientReversal, weights: Mapping[str, float] | None = None) -> None:
        super().__init__(weights)
        check_type("grl", grl, GradientReversal)
        self.grl = grl

    def set_progress(self, progress: float) -> None:
        """Set the reversal factor for training progress ``progress`` in [0, 1]."""
        # Called every step by the engine, whose progress is always in [0, 1).
        self.grl.lam = _dann_schedule(progress)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """The base class's weighted sum; also logs the current ``grl_lam``."""
        logs = super().backward(losses, shared)
        logs["grl_lam"] = self.grl.lam
        return logs


def domain_classifier(in_features: int, hidden: int = 64) -> nn.Sequential:
    """DANN's domain head: ``GradientReversal -> Linear -> ReLU -> Linear``, ``(N, D) -> (N, 2)``.

    Logit 0 is "source", logit 1 is "target" (chapter 5). The reversal layer is
    ``head[0]``.
    """
    check_int("in_features", in_features, min_value=1)
    check_int("hidden", hidden, min_value=1)
    return nn.Sequential(GradientReversal(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def _mixed_domains(
    caller: str, source_task: Task, target_x: torch.Tensor, added_task: str, fit_kwargs: Mapping[str, Any]
) -> TensorData:
    """Check what ``train_dann`` and ``train_coral`` share; return their mixed-domain data.

    The data are the source and target images in one data set, labelled 0 (source)
    and 1 (target), for the task named ``added_task`` that ``caller`` adds.
    """
    check_type("source_task", source_task, Task)
    if "strategy" in fit_kwargs:
        raise ValueError(
            f"{caller} sets strategy itself; remove it from its keyword arguments "
            "(or call mtl_tl.engine.fit directly to choose one)"
        )
    if source_task.name == added_task:
        raise ValueError(f"source_task is named {added_task!r}, the name of the task {caller} adds; rename it")
    source = source_task.train
    if not isinstance(source, TensorData):
        raise TypeError(
            f"{caller} needs the source task's train data as a TensorData (to mix its images "
            f"with target_x), got {type(source).__name__}"
        )
    check_tensor("target_x", target_x, ndim=4, floating=True, min_len=2)
    if tuple(target_x.shape[1:]) != source.shape:
        raise ValueError(
            f"target_x must hold images shaped like the source's {source.shape} (C, H, W), "
            f"got {tuple(target_x.shape[1:])}"
        )
    if target_x.dtype != source.x.dtype:
        raise TypeError(f"target_x must have the source images' dtype {source.x.dtype}, got {target_x.dtype}")
    target_x = target_x.to(source.x.device)
    domain = torch.cat([
        torch.zeros(len(source), dtype=torch.long, device=source.x.device),
        torch.ones(len(target_x), dtype=torch.long, device=source.x.device),
    ])
    return TensorData(torch.cat([source.x, target_x]), domain)


def _feature_dim(trunk: nn.Module, x: torch.Tensor) -> int:
    dim = getattr(trunk, "out_features", None)
    if isinstance(dim, int):
        return dim
    # Eval mode and no grad: measuring the width must not move batch-norm statistics.
    return int(extract_features(trunk, x[:2]).shape[1])


def _steps_per_epoch(source: TensorData, fit_kwargs: dict[str, Any]) -> int:
    """``steps_per_epoch`` from ``fit_kwargs`` (taken out of it), else the steps of one pass over the source.

    The default gives train_dann and train_coral the budget of :func:`~mtl_tl.transfer.pretrain`
    at the same ``epochs`` (in one process; under ``torchrun``, pass ``steps_per_epoch``).
    """
    steps = fit_kwargs.pop("steps_per_epoch", None)
    if steps is not None:
        return check_int("steps_per_epoch", steps, min_value=1)
    batch_size = fit_kwargs.get("batch_size", inspect.signature(engine.fit).parameters["batch_size"].default)
    return math.ceil(len(source) / check_int("batch_size", batch_size, min_value=1))


def train_dann(
    trunk: nn.Module,
    source_task: Task,
    target_x: torch.Tensor,
    *,
    epochs: int,
    hidden: int = 64,
    lr: float = 0.01,
    optimizer: str = "sgd",
    anneal: bool = True,
    domain_weight: float = 1.0,
    **fit_kwargs: Any,
) -> History:
    """Domain-adversarial training (DANN; Ganin & Lempitsky, 2015) with unlabelled target images.

    Adds a task :data:`~mtl_tl.adaptation.DOMAIN_TASK` (head :func:`domain_classifier`) on the
    source images and ``target_x`` mixed and labelled 0 (source) and 1 (target). Each step runs
    the trunk on a source batch (source loss) and a mixed batch (domain loss). The paper's
    recipe is the default: SGD with momentum 0.9 at ``lr=0.01``, annealed by
    :func:`dann_lr_schedule`, while :class:`DomainAdversarial` raises the reversal with :func:`dann_lam`.

    **Budget.** An epoch is ``steps_per_epoch`` steps, by default one pass over the source, so
    ``epochs`` buys the steps :func:`~mtl_tl.transfer.pretrain` takes at the same ``epochs``.
    ``history.curve("domain", "train")`` is the domain classifier's accuracy per epoch: near
    the majority domain's share once the features hide the domain (chapter 5).

    **Batch norm.** The two batches are normalised with their own statistics, and the
    running statistics blend the domains; chapter 5 found DANN unstable that way. Prefer
    ``SmallCNN(norm="group")`` (or ``"none"``); with batch norm, pass
    ``options=FitOptions(one_trunk_pass=True)`` (:class:`mtl_tl.engine.FitOptions`) to
    normalise both batches together, as in the paper.

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)``, e.g. a source-only model; trained in place.
        source_task: the labelled source task; its train data must be a TensorData.
        target_x: unlabelled target images ``(N_t, C, H, W)`` shaped and typed like the source's, ``N_t >= 2``.
        epochs: epochs of ``steps_per_epoch`` steps (default: one pass over the source).
        hidden: width of the domain classifier's hidden layer.
        lr, optimizer: the initial rate and the optimizer (see :func:`~mtl_tl.engine.fit`).
        anneal: decay the rate with :func:`dann_lr_schedule`; ``False``: constant, or your ``scheduler``.
        domain_weight: the domain loss's weight ``>= 0`` (the paper's: 1); it scales both players' gradients.
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``
            (and ``scheduler`` while ``anneal`` is on).

    Returns:
        The :class:`~mtl_tl.engine.History` of the source and domain tasks (train split), logs ``grl_lam``, ``lr``.
    """
    # The trunk runs once (to measure its width) before fit would check it.
    check_type("trunk", trunk, nn.Module)
    check_type("anneal", anneal, bool)
    mixed = _mixed_domains("train_dann", source_task, target_x, DOMAIN_TASK, fit_kwargs)
    if anneal and "scheduler" in fit_kwargs:
        raise ValueError("train_dann(anneal=True) sets the scheduler itself; pass anneal=False to use your own")
    steps = _steps_per_epoch(source_task.train, fit_kwargs)
    if anneal:
        fit_kwargs["scheduler"] = dann_lr_schedule(check_int("epochs", epochs, min_value=1) * steps)
    weight = check_float("domain_weight", domain_weight, min_value=0.0)
    head = domain_classifier(_feature_dim(trunk, mixed.x), hidden)
    return fit(trunk, [source_task, Task(DOMAIN_TASK, head, train=mixed)], epochs=epochs, steps_per_epoch=steps, lr=lr,
               optimizer=optimizer, strategy=DomainAdversarial(head[0], {DOMAIN_TASK: weight}), **fit_kwargs)


def _covariance(features: torch.Tensor) -> torch.Tensor:
    centred = features - features.mean(dim=0, keepdim=True)
    return centred.T @ centred / (len(features) - 1)


def _coral(source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    d = source_features.shape[1]
    diff = _covariance(source_features) - _covariance(target_features)
    return (diff * diff).sum() / (4.0 * d * d)


def coral_loss(source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """Deep CORAL's loss ``||C_s - C_t||_F^2 / (4 d^2)`` (Sun & Saenko, 2016; chapter 5).

    ``C`` is the *unbiased* sample covariance ``(X - mean)^T (X - mean) / (n - 1)``
    of each domain's features and ``d`` the feature width. It compares second-order
    statistics only, so it is zero for identical feature sets and unchanged when
    either set is shifted by a constant.

    Args:
        source_features: ``(N_s, D)``, ``N_s >= 2``.
        target_features: ``(N_t, D)``, ``N_t >= 2``.

    Returns:
        A 0-dim tensor, differentiable in both inputs.
    """
    check_tensor("source_features", source_features, ndim=2, floating=True, min_len=2)
    check_tensor("target_features", target_features, ndim=2, floating=True, min_len=2)
    d = source_features.shape[1]
    if target_features.shape[1] != d:
        raise ValueError(
            f"target_features must have the source's width D={d}, got shape {tuple(target_features.shape)}"
        )
    return _coral(source_features, target_features)


def mmd_loss(
    source_features: torch.Tensor, target_features: torch.Tensor, *, bandwidth: float | None = None
) -> torch.Tensor:
    """Squared maximum mean discrepancy with a Gaussian kernel (chapter 5).

    The *biased* (V-statistic) estimator ``mean K(s, s') + mean K(t, t') - 2 mean K(s, t)``
    with ``K(a, b) = exp(-||a - b||^2 / (2 sigma^2))``; it is ``>= 0`` and exactly 0 for
    identical sets. The book trains with CORAL and uses MMD to *measure* the gap
    between the domains' features, e.g. before and after adaptation.

    Args:
        source_features: ``(N_s, D)``, ``N_s >= 1``.
        target_features: ``(N_t, D)``, ``N_t >= 1``.
        bandwidth: ``sigma > 0``; default: the median heuristic, the median distance
            between distinct rows of the pooled sample (treated as a constant).

    Returns:
        A 0-dim tensor, differentiable in both inputs.
    """
    check_tensor("source_features", source_features, ndim=2, floating=True, min_len=1)
    check_tensor("target_features", target_features, ndim=2, floating=True, min_len=1)
    if target_features.shape[1] != source_features.shape[1]:
        raise ValueError(
            f"target_features must have the source's width D={source_features.shape[1]}, "
            f"got shape {tuple(target_features.shape)}"
        )
    if bandwidth is not None:
        bandwidth = check_float("bandwidth", bandwidth, min_value=0.0, strict_min=True)
    pooled = torch.cat([source_features, target_features])
    # Explicit differences, not cdist: cdist's gradient is unsafe at distance 0 (the diagonal).
    squared = (pooled[:, None, :] - pooled[None, :, :]).pow(2).sum(dim=-1)
    if bandwidth is None:
        # Detached: the bandwidth is a fixed scale, not something the trunk may inflate.
        off_diagonal = squared.detach()[~torch.eye(len(pooled), dtype=torch.bool, device=pooled.device)]
        sigma2 = off_diagonal.median().clamp_min(1e-12)
    else:
        sigma2 = bandwidth**2
    kernel = torch.exp(-squared / (2.0 * sigma2))
    n = len(source_features)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2.0 * kernel[:n, n:].mean()


def _coral_by_domain(features: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """CORAL between the rows of a mixed batch labelled 0 (source) and 1 (target).

    The CORAL task's loss, run every step: no argument checks. A batch with fewer
    than 2 rows of either domain has no covariance to compare: it scores 0, as a
    tensor still attached to the graph so that the step runs as usual.
    """
    source, target = features[domain == 0], features[domain == 1]
    if len(source) < 2 or len(target) < 2:
        return features.sum() * 0.0
    return _coral(source, target)


def _negative_coral_by_domain(features: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    return -_coral_by_domain(features.detach(), domain)


def train_coral(
    trunk: nn.Module,
    source_task: Task,
    target_x: torch.Tensor,
    *,
    lam: float,
    epochs: int,
    **fit_kwargs: Any,
) -> History:
    """Deep CORAL (Sun & Saenko, 2016): ``L_source + lam * CORAL`` with unlabelled target images.

    The trick that makes CORAL a :class:`~mtl_tl.tasks.Task` of the one engine: a task
    named :data:`~mtl_tl.adaptation.CORAL_TASK` whose head is ``nn.Identity`` (its "prediction" is the
    trunk's features ``(B, D)``), whose data mixes the source images and ``target_x``
    labelled 0 and 1, and whose loss is :func:`coral_loss` between the batch's rows
    labelled 0 and those labelled 1. Mixed batches are drawn uniformly from the union,
    so with batches of dozens both domains are practically always present; a batch
    with fewer than 2 rows of one domain (e.g. a small last batch) scores a zero loss
    that still has a gradient graph. Its metric is ``-CORAL`` (higher is better).

    The paper aligns the last layer's activations; here CORAL aligns the trunk's
    features, the representation the heads share (chapter 5).

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        source_task: the labelled source task; its train data must be a TensorData.
        target_x: unlabelled target images ``(N_t, C, H, W)``, shaped and typed like
            the source images, ``N_t >= 2``.
        lam: the weight ``lam >= 0`` of the CORAL loss (the paper's lambda).
        epochs: epochs of ``steps_per_epoch`` steps (default: one pass over the source
            images, the budget of :func:`~mtl_tl.transfer.pretrain` at the same ``epochs``).
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``.

    Returns:
        The :class:`~mtl_tl.engine.History` of the source task and of the CORAL task
        (train split only).
    """
    lam = check_float("lam", lam, min_value=0.0)
    mixed = _mixed_domains("train_coral", source_task, target_x, CORAL_TASK, fit_kwargs)
    coral_task = Task(CORAL_TASK, nn.Identity(), train=mixed, loss=_coral_by_domain,
                      metric=_negative_coral_by_domain)
    strategy = LossStrategy({source_task.name: 1.0, CORAL_TASK: lam})
    steps = _steps_per_epoch(source_task.train, fit_kwargs)
    return fit(trunk, [source_task, coral_task], epochs=epochs, steps_per_epoch=steps, strategy=strategy, **fit_kwargs)
