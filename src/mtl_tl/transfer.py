"""Transfer learning: pretraining, fine-tuning, the article's eq. 3.1, DANN and CORAL.

Every function here is :func:`mtl_tl.engine.fit` with a particular set of tasks,
frozen parameters, optimizer groups or :class:`~mtl_tl.engine.LossStrategy`:

* :func:`pretrain` and :func:`fine_tune` are the two steps of chapter 4.1: train on a
  source task, then adapt to a target task with one of :data:`FINE_TUNE_STRATEGIES`.
* :func:`train_joint_objective` is the article's eq. 3.1 (chapter 3.1),
  ``min_theta sum_s L_s + lambda sum_t L_t``: two-task multi-task learning with the
  fixed weights ``1`` and ``lambda``.
* :func:`train_dann` (Ganin & Lempitsky, 2015) and :func:`train_coral` (Sun & Saenko,
  2016) adapt to a target domain with *unlabelled* images (chapter 5): each adds an
  extra task, trained on a mix of source and target images, that pulls the two
  domains' features together. :func:`mmd_loss` measures the same gap another way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_float, check_int, check_probability, check_tensor, check_type
from .data import TensorData
from .engine import History, LossStrategy, extract_features, fit
from .models import blocks, unfreeze
from .tasks import Task

__all__ = [
    "FINE_TUNE_STRATEGIES",
    "DOMAIN_TASK",
    "CORAL_TASK",
    "pretrain",
    "fine_tune",
    "train_joint_objective",
    "GradientReversal",
    "dann_lambda",
    "DomainAdversarial",
    "domain_classifier",
    "train_dann",
    "coral_loss",
    "mmd_loss",
    "train_coral",
]

FINE_TUNE_STRATEGIES = ["feature_extraction", "full", "partial", "discriminative"]
"""The fine-tuning strategies of :func:`fine_tune` (chapter 4.1)."""

DOMAIN_TASK = "domain"
"""Name of the domain-classifier task that :func:`train_dann` adds."""

CORAL_TASK = "coral"
"""Name of the CORAL alignment task that :func:`train_coral` adds."""


def _reject(fit_kwargs: Mapping[str, Any], names: tuple[str, ...], caller: str) -> None:
    clash = [n for n in names if n in fit_kwargs]
    if clash:
        raise ValueError(
            f"{caller} sets {', '.join(clash)} itself; remove {clash} from its keyword arguments "
            "(or call mtl_tl.engine.fit directly to choose them)"
        )


def pretrain(trunk: nn.Module, source_task: Task, *, epochs: int, **fit_kwargs: Any) -> History:
    """Step 1 of transfer learning: train ``trunk`` and the source head on the source task.

    This is a plain :func:`~mtl_tl.engine.fit` on one task; it exists so that a
    notebook reads like the method: ``pretrain`` then :func:`fine_tune` (chapter 4.1).
    Evaluating the pretrained network on the target is the "source only" baseline.

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        source_task: the source :class:`~mtl_tl.tasks.Task` (head ``(N, D) -> (N, K_s)``).
        epochs: passes over the source training data.
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` (``lr``, ``seed``, ...).

    Returns:
        The :class:`~mtl_tl.engine.History` of the source task.
    """
    check_type("trunk", trunk, nn.Module)
    check_type("source_task", source_task, Task)
    return fit(trunk, source_task, epochs=epochs, **fit_kwargs)


def _block_names_for(trunk: nn.Module) -> list[str]:
    names = list(blocks(trunk))
    if not names:
        raise ValueError(f"trunk {type(trunk).__name__} has no blocks (no child modules) to fine-tune")
    return names


def fine_tune(
    trunk: nn.Module,
    task: Task,
    *,
    strategy: str,
    epochs: int,
    lr: float = 1e-3,
    n_blocks: int = 1,
    lr_factor: float = 0.1,
    block_decay: float = 1.0,
    **fit_kwargs: Any,
) -> History:
    """Step 2 of transfer learning: adapt a (pretrained) trunk to ``task`` (chapter 4.1).

    The four strategies differ only in which parameters train and at which rate:

    ``"feature_extraction"``
        every trunk parameter is frozen; only the head trains. Frozen batch-norm layers
        also keep their running statistics (the engine runs them in eval mode), so the
        trunk comes out bit-identical.
    ``"full"``
        everything trains at ``lr``.
    ``"partial"``
        only the last ``n_blocks`` named blocks of the trunk (see
        :func:`mtl_tl.models.blocks`) and the head train; earlier blocks stay frozen.
    ``"discriminative"``
        everything trains, the head at ``lr`` and the trunk at ``lr * lr_factor``
        (one optimizer group each). With ``block_decay < 1`` the rate also decays
        block by block towards the input, as in ULMFiT: the last block gets
        ``lr * lr_factor``, the one before ``lr * lr_factor * block_decay``, and so on;
        trunk parameters outside the named blocks get ``lr * lr_factor``.

    Freezing flags are **not restored**: after the call the trunk's ``requires_grad``
    flags are left as the strategy set them, so
    ``count_parameters(trunk, trainable_only=True)`` shows what trained. Each call sets
    every trunk flag explicitly first, so a previous call never leaks into the next
    ``fine_tune``; before a plain :func:`~mtl_tl.engine.fit` call
    :func:`mtl_tl.models.unfreeze` if you want everything to train. The head's
    parameters are always made trainable.

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)`` with named blocks; trained in place.
        task: the target :class:`~mtl_tl.tasks.Task`; give it a *new* head
            ``(N, D) -> (N, K_t)`` when the target classes differ from the source's.
        strategy: one of :data:`FINE_TUNE_STRATEGIES`.
        epochs: passes over the target training data.
        lr: learning rate of the head (and of everything else except with
            ``"discriminative"``).
        n_blocks: ``"partial"`` only: how many of the last blocks train, from 1 to the
            number of blocks.
        lr_factor: ``"discriminative"`` only: trunk rate / head rate, in (0, 1].
        block_decay: ``"discriminative"`` only: per-block decay of the trunk rate, in (0, 1].
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except
            ``param_groups``, which this function sets.

    Returns:
        The :class:`~mtl_tl.engine.History` of ``task``.
    """
    check_type("trunk", trunk, nn.Module)
    check_type("task", task, Task)
    strategy = check_choice("strategy", strategy, FINE_TUNE_STRATEGIES)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    n_blocks = check_int("n_blocks", n_blocks, min_value=1)
    lr_factor = check_float("lr_factor", lr_factor, min_value=0.0, strict_min=True, max_value=1.0)
    block_decay = check_float("block_decay", block_decay, min_value=0.0, strict_min=True, max_value=1.0)
    _reject(fit_kwargs, ("param_groups",), "fine_tune")
    names = _block_names_for(trunk)
    if strategy == "partial" and n_blocks > len(names):
        raise ValueError(
            f"n_blocks={n_blocks} is larger than the trunk's {len(names)} blocks ({', '.join(names)}); "
            f"choose 1 <= n_blocks <= {len(names)}"
        )

    # Every flag is set explicitly, so the outcome never depends on an earlier call.
    for p in trunk.parameters():
        p.requires_grad_(strategy in ("full", "discriminative"))
    for p in task.head.parameters():
        p.requires_grad_(True)
    if strategy == "partial":
        unfreeze(trunk, names[len(names) - n_blocks :])

    param_groups = None
    if strategy == "discriminative":
        param_groups = [{"params": list(task.head.parameters()), "lr": lr, "name": "head"}]
        in_blocks: set[int] = set()
        for depth, name in enumerate(reversed(names)):
            params = list(blocks(trunk)[name].parameters())
            in_blocks.update(id(p) for p in params)
            if params:
                param_groups.append(
                    {"params": params, "lr": lr * lr_factor * block_decay**depth, "name": f"trunk.{name}"}
                )
        rest = [p for p in trunk.parameters() if id(p) not in in_blocks]
        if rest:
            param_groups.append({"params": rest, "lr": lr * lr_factor, "name": "trunk.other"})
    return fit(trunk, task, epochs=epochs, lr=lr, param_groups=param_groups, **fit_kwargs)


def train_joint_objective(
    trunk: nn.Module,
    source_task: Task,
    target_task: Task,
    *,
    lam: float,
    epochs: int,
    **fit_kwargs: Any,
) -> History:
    """The article's eq. 3.1: ``min_theta sum_{D_s} L(y, f(x)) + lam * sum_{D_t} L(y, f(x))``.

    Both losses are minimised *together*, every step: one batch of each task, one
    trunk pass per task (their data differ), and the gradient of
    ``1 * L_source + lam * L_target`` (chapter 3.1). This *is* two-task multi-task
    learning (eq. 3.2) with the fixed weights ``{source: 1, target: lam}``, run through
    the same engine and a plain :class:`~mtl_tl.engine.LossStrategy`; the two tasks keep
    their own heads, so source and target may have different classes.

    The article's code in section 4.1 does something else: each epoch it runs a whole
    pass over the source, then a whole pass over the target, through *one* output
    layer and with no ``lambda``. That is sequential training that ends every epoch on
    the target, not the sum in eq. 3.1.

    With ``lam=0`` the target contributes exactly zero gradient, so the trunk and the
    source head follow plain source training step for step (the target batches still
    pass through the trunk, so batch-norm *running statistics* do see them).

    Args:
        trunk: shared feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        source_task, target_task: the two tasks, each with its own head and data.
        lam: the weight ``lambda >= 0`` of the target loss.
        epochs: passes over the longer of the two training streams.
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``.

    Returns:
        The :class:`~mtl_tl.engine.History` of both tasks.
    """
    check_type("trunk", trunk, nn.Module)
    check_type("source_task", source_task, Task)
    check_type("target_task", target_task, Task)
    lam = check_float("lam", lam, min_value=0.0)
    _reject(fit_kwargs, ("strategy",), "train_joint_objective")
    strategy = LossStrategy({source_task.name: 1.0, target_task.name: lam})
    return fit(trunk, [source_task, target_task], epochs=epochs, strategy=strategy, **fit_kwargs)


class _ReverseGradient(torch.autograd.Function):
    """Identity on the way forward; ``-lambda`` times the gradient on the way back."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambda_ * grad_output, None


class GradientReversal(nn.Module):
    """The gradient reversal layer of DANN (Ganin & Lempitsky, 2015; chapter 5).

    Forward: the identity, ``(N, ...) -> (N, ...)``, whatever ``lambda_`` is. Backward:
    the upstream gradient times ``-lambda_``. Placed between the trunk and a domain
    classifier, it lets the classifier *minimise* the domain loss while the trunk,
    receiving the reversed gradient, *maximises* it: features that hide the domain.

    Args:
        lambda_: the factor ``>= 0`` of the reversed gradient; it scales only the
            backward pass. :class:`DomainAdversarial` sets it from :func:`dann_lambda`.
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = lambda_

    @property
    def lambda_(self) -> float:
        """The factor of the reversed gradient."""
        return self._lambda

    @lambda_.setter
    def lambda_(self, value: float) -> None:
        self._lambda = check_float("lambda_", value, min_value=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self._lambda)

    def extra_repr(self) -> str:
        return f"lambda_={self._lambda:.4g}"


def dann_lambda(p: float) -> float:
    """DANN's schedule of the reversal factor: ``2 / (1 + exp(-10 p)) - 1`` (chapter 5).

    It rises from 0 at the start (``p=0``), while the domain classifier is still
    random and its gradient only noise, to about 0.9999 at the end (``p=1``).

    Args:
        p: share of training done, in [0, 1].
    """
    p = check_probability("p", p)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


class DomainAdversarial(LossStrategy):
    """The weighted sum of the task losses, with DANN's schedule on a reversal layer (chapter 5).

    Before each step the engine calls :meth:`set_progress` with the share of training
    done ``p``; this strategy sets ``grl.lambda_ = dann_lambda(p)``. The losses
    themselves are summed with fixed weights as in the base class (the domain loss
    weighted 1): the schedule acts on the reversed gradient only, so the domain
    classifier always learns at full strength while the trunk's adversarial push grows.

    Args:
        grl: the :class:`GradientReversal` inside the domain classifier's head.
        weights: fixed task weights, default 1 each.

    Logs ``grl_lambda`` (its epoch mean) besides the task weights.
    """

    def __init__(self, grl: GradientReversal, weights: Mapping[str, float] | None = None) -> None:
        super().__init__(weights)
        check_type("grl", grl, GradientReversal)
        self.grl = grl

    def set_progress(self, progress: float) -> None:
        """Set the reversal factor for training progress ``progress`` in [0, 1]."""
        self.grl.lambda_ = dann_lambda(progress)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """The base class's weighted sum; also logs the current ``grl_lambda``."""
        logs = super().backward(losses, shared)
        logs["grl_lambda"] = self.grl.lambda_
        return logs


def domain_classifier(in_features: int, hidden: int = 64) -> nn.Sequential:
    """DANN's domain head: ``GradientReversal -> Linear -> ReLU -> Linear``, ``(N, D) -> (N, 2)``.

    Logit 0 is "source", logit 1 is "target" (chapter 5). The reversal layer is
    ``head[0]``.
    """
    check_int("in_features", in_features, min_value=1)
    check_int("hidden", hidden, min_value=1)
    return nn.Sequential(GradientReversal(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def _mixed_domains(source_task: Task, target_x: torch.Tensor, caller: str) -> TensorData:
    """Source and target images in one data set, labelled 0 (source) and 1 (target)."""
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


def train_dann(
    trunk: nn.Module,
    source_task: Task,
    target_x: torch.Tensor,
    *,
    epochs: int,
    hidden: int = 64,
    **fit_kwargs: Any,
) -> History:
    """Domain-adversarial training (DANN; Ganin & Lempitsky, 2015) with unlabelled target images.

    Adds a task named :data:`DOMAIN_TASK` whose head is :func:`domain_classifier`
    (gradient reversal, then an MLP with ``hidden`` units, then 2 logits) and whose
    data is the source images and ``target_x`` in one :class:`~mtl_tl.data.TensorData`
    labelled 0 (source) and 1 (target). The engine groups tasks by their data object,
    so each step runs the trunk twice: once on a source batch for the source loss,
    once on a mixed batch for the domain loss. :class:`DomainAdversarial` ramps the
    reversal factor with :func:`dann_lambda`. A domain accuracy that stays near the
    share of the majority domain means the features no longer tell the domains apart
    (chapter 5).

    Mixed batches are drawn uniformly from the union, so the domains appear in
    proportion to their sizes. The paper also decays the learning rate as
    ``lr / (1 + 10 p) ** 0.75``; here the optimizer keeps ``fit``'s constant rate.

    **Batch norm.** With batch norm in the trunk, the source batch and the mixed-domain
    batch pass through the trunk separately, each normalised with its own statistics,
    and the running statistics used at test time blend the domains; chapter 5 found
    DANN unstable that way. Prefer ``SmallCNN(norm="group")`` (or ``"none"``) for the
    trunk; with batch norm, pass ``one_trunk_pass=True`` (an argument of ``fit``) so
    that both batches are normalised together, as in the paper.

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        source_task: the labelled source task; its train data must be a TensorData.
        target_x: unlabelled target images ``(N_t, C, H, W)``, shaped and typed like
            the source images, ``N_t >= 2``.
        epochs: passes over the longer training stream (the mixed one).
        hidden: width of the domain classifier's hidden layer.
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``.

    Returns:
        The :class:`~mtl_tl.engine.History` of the source task and of the domain task
        (train split only), with ``grl_lambda`` in its logs.
    """
    check_type("trunk", trunk, nn.Module)
    check_type("source_task", source_task, Task)
    hidden = check_int("hidden", hidden, min_value=1)
    _reject(fit_kwargs, ("strategy",), "train_dann")
    if source_task.name == DOMAIN_TASK:
        raise ValueError(f"source_task is named {DOMAIN_TASK!r}, the name of the domain task; rename it")
    mixed = _mixed_domains(source_task, target_x, "train_dann")
    head = domain_classifier(_feature_dim(trunk, mixed.x), hidden)
    domain_task = Task(DOMAIN_TASK, head, train=mixed)
    strategy = DomainAdversarial(head[0])
    return fit(trunk, [source_task, domain_task], epochs=epochs, strategy=strategy, **fit_kwargs)


def _covariance(features: torch.Tensor) -> torch.Tensor:
    centred = features - features.mean(dim=0, keepdim=True)
    return centred.T @ centred / (len(features) - 1)


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
    diff = _covariance(source_features) - _covariance(target_features)
    return (diff * diff).sum() / (4.0 * d * d)


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

    A batch with fewer than 2 rows of either domain has no covariance to compare: it
    scores 0, as a tensor still attached to the graph so that the step runs as usual.
    """
    source, target = features[domain == 0], features[domain == 1]
    if len(source) < 2 or len(target) < 2:
        return features.sum() * 0.0
    return coral_loss(source, target)


def _negative_coral_by_domain(features: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    return -_coral_by_domain(features.detach(), domain)


def train_coral(
    trunk: nn.Module,
    source_task: Task,
    target_x: torch.Tensor,
    *,
    weight: float,
    epochs: int,
    **fit_kwargs: Any,
) -> History:
    """Deep CORAL (Sun & Saenko, 2016): ``L_source + weight * CORAL`` with unlabelled target images.

    The trick that makes CORAL a :class:`~mtl_tl.tasks.Task` of the one engine: a task
    named :data:`CORAL_TASK` whose head is ``nn.Identity`` (its "prediction" is the
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
        weight: the weight ``>= 0`` of the CORAL loss (the paper's ``lambda``).
        epochs: passes over the longer training stream (the mixed one).
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``.

    Returns:
        The :class:`~mtl_tl.engine.History` of the source task and of the CORAL task
        (train split only).
    """
    check_type("trunk", trunk, nn.Module)
    check_type("source_task", source_task, Task)
    weight = check_float("weight", weight, min_value=0.0)
    _reject(fit_kwargs, ("strategy",), "train_coral")
    if source_task.name == CORAL_TASK:
        raise ValueError(f"source_task is named {CORAL_TASK!r}, the name of the CORAL task; rename it")
    mixed = _mixed_domains(source_task, target_x, "train_coral")
    coral_task = Task(CORAL_TASK, nn.Identity(), train=mixed, loss=_coral_by_domain,
                      metric=_negative_coral_by_domain)
    strategy = LossStrategy({source_task.name: 1.0, CORAL_TASK: weight})
    return fit(trunk, [source_task, coral_task], epochs=epochs, strategy=strategy, **fit_kwargs)
