"""What a task is: a name, a head, a loss, a metric and its data (chapter 4.2).

The article's ``Task`` class holds a dataset and a *whole training loop* that
optimises one task after the other, and its ``evaluate`` is empty. Here a task is
only a description; the one training loop in :mod:`mtl_tl.engine` trains any set
of tasks *jointly*, and :func:`mtl_tl.engine.evaluate` measures each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_type
from .data import TensorData

__all__ = ["Task", "LOSSES", "METRICS", "accuracy", "negative_mse", "check_tasks"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.reshape(target.shape) if output.numel() == target.numel() else output, target)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of rows whose arg-max ``output (N, K)`` equals ``target (N,)``; a 0-dim tensor."""
    return (output.argmax(dim=1) == target).float().mean()


def negative_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-MSE``, so that for every metric in the book higher is better."""
    return -_mse(output.detach(), target)


LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "mse": _mse}
"""The losses a :class:`Task` names by string; any callable ``(output, target) -> scalar`` also works."""

METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "neg_mse": negative_mse}
"""The metrics a :class:`Task` names by string (higher is better for each)."""

Data = Union[TensorData, Iterable[Any]]


@dataclass(eq=False)
class Task:
    """One task of a (multi-task or transfer) problem.

    Attributes:
        name: unique name; also the key of the head in :class:`~mtl_tl.models.MultiTaskNet`.
        head: module mapping trunk features ``(N, D)`` to outputs ``(N, K)``.
        train: training data: a :class:`~mtl_tl.data.TensorData` (batched with the
            fast in-memory loader) or any iterable of ``(x, y)`` batches such as a
            ``torch.utils.data.DataLoader``. Tasks that share the *same* data
            object share one forward pass of the trunk per step.
        test: evaluation data, same kinds as ``train`` (optional).
        loss: ``"cross_entropy"``, ``"mse"`` or a callable ``(output, target) -> scalar``
            averaged over the batch.
        metric: ``"accuracy"``, ``"neg_mse"`` or a callable ``(output, target) -> scalar``;
            higher is better.
        label: which label of multi-label data this task reads (default: ``name``).
        num_classes: for classification, the number of classes; checked against the head.
    """

    name: str
    head: nn.Module
    train: Data | None = None
    test: Data | None = None
    loss: str | LossFn = "cross_entropy"
    metric: str | MetricFn = "accuracy"
    label: str | None = None
    num_classes: int | None = None
    loss_fn: LossFn = field(init=False, repr=False)
    metric_fn: MetricFn = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty str, got {self.name!r}")
        if self.head is None:
            raise ValueError(
                f"task {self.name!r} has no head; give it one, e.g. "
                "head=mtl_tl.models.linear_head(trunk.out_features, num_classes)"
            )
        check_type(f"task {self.name!r}: head", self.head, nn.Module)
        self.loss_fn = self._resolve("loss", self.loss, LOSSES)
        self.metric_fn = self._resolve("metric", self.metric, METRICS)
        if self.loss == "cross_entropy":
            self._check_classes()
        for split in ("train", "test"):
            data = getattr(self, split)
            if isinstance(data, TensorData):
                self._check_data(split, data)

    def _check_classes(self) -> None:
        """The head's width against ``num_classes`` and the class names the data declares."""
        out = _out_features(self.head)
        if self.num_classes is not None and out is not None and out != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: the head has {out} outputs but num_classes={self.num_classes}; "
                "replace the head, e.g. linear_head(trunk.out_features, num_classes)"
            )
        train, test = _declared_classes(self.train), _declared_classes(self.test)
        if train is not None and test is not None and train != test:
            # ImageFolder numbers classes by sorted folder name: other names mean other numbers.
            raise ValueError(
                f"task {self.name!r}: the train data's classes {train} differ from the test data's "
                f"{test}, so the same label index would mean different classes; rename the folders "
                "to match (case included), or load both with mtl_tl.datasets.image_folders"
            )
        classes = train if train is not None else test
        if classes is not None and out is not None and out != len(classes):
            raise ValueError(
                f"task {self.name!r}: the data has {len(classes)} classes {classes} but the head has "
                f"{out} outputs; use linear_head(trunk.out_features, {len(classes)})"
            )

    def _resolve(self, kind: str, value: Any, table: Mapping[str, Callable]) -> Callable:
        if callable(value):
            return value
        if isinstance(value, str) and value in table:
            return table[value]
        raise ValueError(
            f"task {self.name!r}: {kind}={value!r} is not accepted; "
            f"choose one of {', '.join(map(repr, table))} or pass a callable"
        )

    @property
    def label_key(self) -> str:
        """The key this task reads in multi-label data."""
        return self.label or self.name

    def target(self, y: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """This task's labels out of a batch's ``y`` (a tensor, or a dict for multi-label data)."""
        if not isinstance(y, Mapping):
            return y
        try:  # no check per step: a missing label surfaces here, explained, on first use
            return y[self.label_key]
        except KeyError:
            raise KeyError(
                f"task {self.name!r} reads label {self.label_key!r}, but the data holds "
                f"{', '.join(y)}; set Task(label=...)"
            ) from None

    def _check_data(self, split: str, data: TensorData) -> None:
        # TensorData is never empty, so target holds at least one label.
        target = self.target(data.y)
        is_classification = self.loss == "cross_entropy"
        if not is_classification:
            return
        if target.dtype != torch.long:
            raise TypeError(
                f"task {self.name!r}: cross_entropy needs int64 class labels in {split} data, got {target.dtype}"
            )
        classes = target.unique()
        if split == "train" and len(classes) < 2:
            raise ValueError(
                f"task {self.name!r}: {split} data has a single class ({classes.tolist()}); "
                "a classifier needs at least 2"
            )
        out = _out_features(self.head)
        n_needed = int(classes.max()) + 1
        if out is not None and n_needed > out:
            raise ValueError(
                f"task {self.name!r}: {split} labels go up to {n_needed - 1} but the head has only "
                f"{out} outputs; use a head with at least {n_needed} outputs"
            )


def _declared_classes(data: Any) -> list[str] | None:
    """The class names a data object declares, e.g. a DataLoader over an ImageFolder; else None."""
    classes = getattr(getattr(data, "dataset", None), "classes", None)
    return list(classes) if isinstance(classes, (list, tuple)) else None


def _out_features(head: nn.Module) -> int | None:
    """The output width of a head whose last layer is ``nn.Linear`` (else None)."""
    last = None
    for module in head.modules():
        if isinstance(module, nn.Linear):
            last = module
    return None if last is None else last.out_features


def check_tasks(tasks: Task | Iterable[Task], *, split: str = "train") -> list[Task]:
    """Validate tasks once, where a user calls in (:func:`mtl_tl.engine.fit`, ``evaluate``, ...).

    At least one, all :class:`Task`, unique names, ``split`` data present, and every
    data object (train and test) a :class:`~mtl_tl.data.TensorData` or a non-empty
    iterable of ``(x, y)`` batches. The loops behind the entry points trust the result.

    Returns:
        The tasks as a list (one task becomes a list of one).
    """
    if isinstance(tasks, Task):
        tasks = [tasks]
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks is empty; give at least one Task")
    for t in tasks:
        check_type("each task", t, Task)
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate task names {duplicates}; every task needs its own name")
    missing = [t.name for t in tasks if getattr(t, split) is None]
    if missing:
        raise ValueError(f"task(s) {missing} have no {split} data; set Task({split}=...)")
    for t in tasks:
        for which in ("train", "test"):
            data = getattr(t, which)
            if data is not None and not isinstance(data, (TensorData, Iterable)):
                hint = (f"; wrap the dataset in one: DataLoader(dataset, batch_size=64)"
                        if isinstance(data, torch.utils.data.Dataset) else "")
                raise TypeError(
                    f"task {t.name!r}: {which} data must be a TensorData or an iterable of (x, y) "
                    f"batches such as a DataLoader, got {type(data).__name__}{hint}"
                )
            if isinstance(data, Sized) and len(data) == 0:
                raise ValueError(f"task {t.name!r}: the {which} data yields no batch")
    return tasks
