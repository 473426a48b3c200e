"""Multi-task learning: eq. 3.2, loss weighting, gradient surgery and the sequential baseline.

Chapter 3 writes multi-task learning as ``min_theta sum_i L_i(f_theta(x_i), y_i)``
(eq. 3.2); chapter 4.2 trains it. The article's code instead trains task 1 for ten
epochs and *then* task 2 (its ``Task.train`` is a whole training loop and its
``evaluate`` is empty): that is sequential fine-tuning, kept here as the named
baseline :func:`train_sequentially`, which shows how much of task 1 it forgets.
:func:`train_jointly` is eq. 3.2 itself, through the one loop :func:`mtl_tl.engine.fit`.

How the task losses become one gradient is a :class:`~mtl_tl.engine.LossStrategy`:

===============================================  ==========================================================
loss strategy                                    gradient on the shared trunk, per step
===============================================  ==========================================================
:class:`~mtl_tl.weighting.EqualWeighting`        ``sum_i g_i`` with ``g_i = grad L_i`` (eq. 3.2)
:class:`~mtl_tl.weighting.FixedWeights`          ``sum_i w_i g_i``, ``w_i`` chosen by hand
:class:`~mtl_tl.weighting.UncertaintyWeighting`  ``sum_i c_i exp(-s_i) g_i``, ``c_i`` 1 or 1/2, ``s_i`` learnt
:class:`~mtl_tl.weighting.GradNorm`              ``sum_i w_i g_i``, ``w_i > 0`` learnt, ``sum_i w_i = T``
:class:`~mtl_tl.weighting.DWA`                   ``sum_i w_i g_i``, ``w_i`` from loss ratios, ``sum_i w_i = T``
:class:`~mtl_tl.gradient_surgery.PCGrad`         ``sum_i g_i'``, each ``g_i'`` projected off conflicting ``g_j``
===============================================  ==========================================================

**One loss-scale convention.** Every loss strategy works on the *sum* over tasks, as the
engine and eq. 3.2 do, never on the mean; each ``L_i`` is the batch mean of task
``i``. With all weights 1 every method above reduces to the same gradient
``sum_i g_i`` (GradNorm and DWA start at ``w_i = 1``, uncertainty weighting at
``s_i = 0`` for classification, PCGrad when no two tasks conflict), so a learning
rate tuned for :class:`~mtl_tl.weighting.EqualWeighting` is a fair starting point for all of them.
Uncertainty weighting's regression factor ``1/2`` halves a regression task's
gradient at ``s = 0``; that is the paper's formula, not a change of convention.

The weightings live in :mod:`mtl_tl.weighting`, PCGrad and the conflict monitor in
:mod:`mtl_tl.gradient_surgery`; this module re-exports them, builds any of them by name
(:func:`make_strategy`) and trains with them.

Names of what the loss strategies log in ``History.logs`` (epoch means of each step):
``weight/<task>`` (effective weights), ``log_var/<task>`` (uncertainty),
``gradnorm/<task>`` and ``gradnorm/loss`` (GradNorm), ``pcgrad/conflicts`` and
``pcgrad/conflict_fraction`` (PCGrad), and ``cos/<a>|<b>`` (pairwise cosine of the
task gradients on the shared parameters; PCGrad and :class:`~mtl_tl.gradient_surgery.ConflictMonitor`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from . import gradient_surgery, weighting
from ._checks import check_choice, check_int, check_type
from .engine import History, LossStrategy, evaluate, fit
from .gradient_surgery import ConflictMonitor, PCGrad, gradient_cosine, pcgrad_combine  # noqa: F401 (re-exported)
from .models import MultiTaskNet
from .tasks import Task, check_tasks
from .weighting import (  # noqa: F401 (re-exported)
    DWA,
    TASK_KINDS,
    EqualWeighting,
    FixedWeights,
    GradNorm,
    UncertaintyWeighting,
    dwa_weights,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Task",
    "STRATEGIES",
    "make_strategy",
    "train_jointly",
    "train_sequentially",
    "SequentialResult",
    # Re-exported, so that `from mtl_tl.multitask import PCGrad` works as the chapters use it.
    *weighting.__all__,
    *gradient_surgery.__all__,
]

STRATEGIES = ("equal", "fixed", "uncertainty", "gradnorm", "dwa", "pcgrad")
"""The loss strategy names :func:`make_strategy` and :func:`train_jointly` accept."""


# -------------------------------------------------------------------------- factory

_OPTIONS: dict[str, tuple[str, ...]] = {
    "equal": (),
    "fixed": ("weights",),
    "uncertainty": ("task_kinds", "lr"),
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
            cross-entropy is classification, MSE regression; ``lr``), ``"gradnorm"``
            (``alpha``, ``lr``, ``layer``), ``"dwa"`` (``temperature``),
            ``"pcgrad"`` (``seed``, ``reduction``).
        tasks: the tasks, with unique names and a head each.
        kwargs: the loss strategy's options, as listed above.

    Returns:
        A fresh :class:`~mtl_tl.engine.LossStrategy`.
    """
    check_choice("name", name, STRATEGIES)
    tasks = _check_task_list(tasks)
    unknown = sorted(set(kwargs) - set(_OPTIONS[name]))
    if unknown:
        accepted = ", ".join(_OPTIONS[name]) or "none"
        raise TypeError(f"loss strategy {name!r} got unknown option(s) {unknown}; it accepts: {accepted}")
    return _build_strategy(name, tasks, kwargs)


def _build_strategy(name: str, tasks: list[Task], options: Mapping[str, Any]) -> LossStrategy:
    # make_strategy after its checks of name, tasks and option names; the options'
    # values are checked by the loss strategy's constructor.
    names = [t.name for t in tasks]
    if name == "equal":
        return EqualWeighting()
    if name == "fixed":
        if "weights" not in options:
            raise ValueError(f"loss strategy 'fixed' needs weights={{task_name: weight}} for tasks {names}")
        weights = options["weights"]
        if isinstance(weights, Mapping) and set(weights) != set(names):
            raise ValueError(f"weights names tasks {sorted(weights)} but the tasks are {sorted(names)}")
        return FixedWeights(weights)
    if name == "uncertainty":
        kinds = options["task_kinds"] if "task_kinds" in options else {t.name: _task_kind(t) for t in tasks}
        if isinstance(kinds, Mapping) and set(kinds) != set(names):
            raise ValueError(f"task_kinds names tasks {sorted(kinds)} but the tasks are {sorted(names)}")
        return UncertaintyWeighting(kinds, lr=options.get("lr"))
    if name == "gradnorm":
        return GradNorm(**options)
    if name == "dwa":
        return DWA(**options)
    return PCGrad(**options)


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

    Every step draws a batch for each task, and the loss strategy turns the task losses
    ``{name: L_i}`` into one update (default: the plain sum ``sum_i L_i``).

    Args:
        trunk: the shared network ``(N, C, H, W) -> (N, D)``; trained in place.
        tasks: the tasks, each with its own head (trained in place).
        strategy: the loss strategy: a name for :func:`make_strategy` (``"equal"``,
            ``"uncertainty"``, ``"gradnorm"``, ``"dwa"``, ``"pcgrad"``; ``"fixed"`` needs
            weights, so pass ``FixedWeights(...)``) or a :class:`~mtl_tl.engine.LossStrategy`.
        epochs: passes over the longest training stream.
        monitor_conflicts: also log the pairwise gradient cosines ``cos/<a>|<b>``
            (wraps the loss strategy in :class:`~mtl_tl.gradient_surgery.ConflictMonitor`).
        fit_kwargs: passed to :func:`mtl_tl.engine.fit` (``lr``, ``batch_size``, ``device``, ...).

    Returns:
        The :class:`~mtl_tl.engine.History`; ``history.logs`` holds the loss strategy's logs.
    """
    # fit checks the tasks and the loss strategy; a name needs the tasks checked first.
    if isinstance(strategy, str):
        check_choice("strategy", strategy, STRATEGIES)
        strategy = _build_strategy(strategy, _check_task_list(tasks), {})
    # Anything but a LossStrategy goes on unwrapped, so that fit's error names strategy=.
    already_logs_cosines = isinstance(strategy, (ConflictMonitor, PCGrad))
    if monitor_conflicts and isinstance(strategy, LossStrategy) and not already_logs_cosines:
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
            (``lr``, ``batch_size``, ``device``, ...; not ``epochs`` or the loss ``strategy``).

    Returns:
        A :class:`SequentialResult`: the (stage, task, metric) table and the forgetting.
    """
    import pandas as pd

    # Checked up front: a task without data must not fail after the earlier stages trained.
    tasks = check_tasks(tasks, split="train")
    check_tasks(tasks, split="test")
    epochs_per_task = check_int("epochs_per_task", epochs_per_task, min_value=1)
    clash = sorted({"epochs", "strategy"} & set(fit_kwargs))
    if clash:
        raise TypeError(
            f"train_sequentially got {clash}; use epochs_per_task for the length of each stage "
            "(each stage trains one task, so there is no loss strategy to choose)"
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
