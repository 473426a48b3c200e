"""Transfer learning: pretraining, fine-tuning recipes and the article's eq. 3.1.

Every function here is :func:`mtl_tl.engine.fit` with a particular set of tasks,
frozen parameters, optimizer groups or :class:`~mtl_tl.engine.LossStrategy`:

* :func:`pretrain` and :func:`fine_tune` are the two steps of chapter 4.1: train on a
  source task, then adapt to a target task with one of the fine-tuning
  :data:`RECIPES` (which parameters train, and at which learning rate).
* :func:`train_joint_objective` is the article's eq. 3.1 (chapter 3.1),
  ``min_theta sum_s L_s + lam sum_t L_t``: two-task multi-task learning with the
  fixed weights ``1`` and ``lam``.
* Domain adaptation with unlabelled target images (chapter 5), DANN, CORAL and MMD,
  lives in :mod:`mtl_tl.adaptation`; this module re-exports its names, so
  ``mtl_tl.transfer.train_dann`` is :func:`mtl_tl.adaptation.train_dann`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import adaptation
from ._checks import check_choice, check_float, check_int, check_type
from .adaptation import (
    CORAL_TASK,
    DOMAIN_TASK,
    DomainAdversarial,
    GradientReversal,
    coral_loss,
    dann_lam,
    dann_lr_schedule,
    domain_classifier,
    mmd_loss,
    train_coral,
    train_dann,
)
from .engine import History, LossStrategy, fit
from .models import blocks, unfreeze
from .tasks import Task

__all__ = [
    "RECIPES",
    "pretrain",
    "fine_tune",
    "train_joint_objective",
    # Re-exported: the book imports domain adaptation from here too.
    *adaptation.__all__,
]

RECIPES = ["feature_extraction", "full", "partial", "discriminative"]
"""The fine-tuning recipes of :func:`fine_tune` (chapter 4.1): which parameters train, at which rate.

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
"""


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
    # fit checks the rest, but would accept a list of tasks: pretraining has one.
    check_type("source_task", source_task, Task)
    return fit(trunk, source_task, epochs=epochs, **fit_kwargs)


def _block_names_for(trunk: nn.Module, recipe: str, n_blocks: int) -> list[str]:
    """The trunk's block names, input first, once they are known to suit ``recipe``."""
    names = list(blocks(trunk))
    if not names:
        raise ValueError(f"trunk {type(trunk).__name__} has no blocks (no child modules) to fine-tune")
    if recipe == "partial" and n_blocks > len(names):
        raise ValueError(
            f"n_blocks={n_blocks} is larger than the trunk's {len(names)} blocks ({', '.join(names)}); "
            f"choose 1 <= n_blocks <= {len(names)}"
        )
    return names


def _set_trainable(trunk: nn.Module, task: Task, recipe: str, names: list[str], n_blocks: int) -> None:
    """Set every ``requires_grad`` flag of ``trunk`` and ``task.head`` for ``recipe``."""
    # Every flag is set explicitly, so the outcome never depends on an earlier call.
    for p in trunk.parameters():
        p.requires_grad_(recipe in ("full", "discriminative"))
    for p in task.head.parameters():
        p.requires_grad_(True)
    if recipe == "partial":
        unfreeze(trunk, names[len(names) - n_blocks :])


def _discriminative_groups(
    trunk: nn.Module, task: Task, names: list[str], lr: float, lr_factor: float, block_decay: float
) -> list[dict[str, Any]]:
    """Optimizer groups: the head at ``lr``, then the trunk's blocks from the output back.

    The block ``depth`` steps from the output learns at ``lr * lr_factor * block_decay**depth``;
    trunk parameters outside the named blocks come last, at ``lr * lr_factor``.
    """
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
    return param_groups


def fine_tune(
    trunk: nn.Module,
    task: Task,
    *,
    recipe: str,
    epochs: int,
    lr: float = 1e-3,
    n_blocks: int = 1,
    lr_factor: float = 0.1,
    block_decay: float = 1.0,
    **fit_kwargs: Any,
) -> History:
    """Step 2 of transfer learning: adapt a (pretrained) trunk to ``task`` (chapter 4.1).

    A fine-tuning *recipe*, one of :data:`RECIPES`, says which parameters train and at
    which learning rate: only the head (``"feature_extraction"``), everything
    (``"full"``), the last ``n_blocks`` blocks and the head (``"partial"``), or
    everything with a smaller rate for the trunk (``"discriminative"``).

    Freezing flags are **not restored**: after the call the ``requires_grad`` flags are
    left as the recipe set them, so ``count_parameters(trunk, trainable_only=True)``
    shows what trained. Each call first sets every trunk flag (and makes the head
    trainable), so a previous call never leaks into the next ``fine_tune``; call
    :func:`mtl_tl.models.unfreeze` before a plain :func:`~mtl_tl.engine.fit`.

    Args:
        trunk: feature extractor ``(N, C, H, W) -> (N, D)`` with named blocks; trained in place.
        task: the target :class:`~mtl_tl.tasks.Task`; give it a *new* head
            ``(N, D) -> (N, K_t)`` when the target classes differ from the source's.
        recipe: one of :data:`RECIPES`.
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
    # fine_tune's own arguments, and those the flags and groups below use before fit runs.
    check_type("trunk", trunk, nn.Module)
    check_type("task", task, Task)
    recipe = check_choice("recipe", recipe, RECIPES)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    n_blocks = check_int("n_blocks", n_blocks, min_value=1)
    lr_factor = check_float("lr_factor", lr_factor, min_value=0.0, strict_min=True, max_value=1.0)
    block_decay = check_float("block_decay", block_decay, min_value=0.0, strict_min=True, max_value=1.0)
    _reject(fit_kwargs, ("param_groups",), "fine_tune")
    names = _block_names_for(trunk, recipe, n_blocks)
    _set_trainable(trunk, task, recipe, names, n_blocks)
    param_groups = None
    if recipe == "discriminative":
        param_groups = _discriminative_groups(trunk, task, names, lr, lr_factor, block_decay)
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
    layer and with no weight ``lam``. That is sequential training that ends every epoch on
    the target, not the sum in eq. 3.1.

    With ``lam=0`` the target contributes exactly zero gradient, so the trunk and the
    source head follow plain source training step for step (the target batches still
    pass through the trunk, so batch-norm *running statistics* do see them).

    Args:
        trunk: shared feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        source_task, target_task: the two tasks, each with its own head and data.
        lam: the weight ``lam >= 0`` of the target loss (the article's lambda).
        epochs: passes over the longer of the two training streams.
        **fit_kwargs: any other argument of :func:`~mtl_tl.engine.fit` except ``strategy``.

    Returns:
        The :class:`~mtl_tl.engine.History` of both tasks.
    """
    # fit checks the rest; the tasks' names are needed first, for the weights.
    check_type("source_task", source_task, Task)
    check_type("target_task", target_task, Task)
    lam = check_float("lam", lam, min_value=0.0)
    _reject(fit_kwargs, ("strategy",), "train_joint_objective")
    strategy = LossStrategy({source_task.name: 1.0, target_task.name: lam})
    return fit(trunk, [source_task, target_task], epochs=epochs, strategy=strategy, **fit_kwargs)
