"""Running a study: every (relatedness, k, method, seed) cell, one tidy row per metric (chapter 4.3)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import check_type
from ..config import get_device, quiet, seed_everything
from ..data import TensorData, k_per_class
from ..engine import History, evaluate, fit
from ..models import SmallCNN, linear_head
from ..synthetic import make_shapes
from ..tasks import Task
from ..transfer import fine_tune, pretrain, train_joint_objective
from .result import StudyResult
from .design import (
    CONFIG_COLUMNS,
    METRICS,
    PRETRAINED_METHODS,
    Relatedness,
    StudyConfig,
    relatedness_domain,
    relatedness_label,
    relatedness_shift,
)


def data_seed(seed: int, part: int) -> int:
    """Distinct data seeds per run seed: source train 1, source test 2, target pool 3, target test 4."""
    return 1000 * (seed + 1) + part


@dataclass(frozen=True)
class Pretrained:
    """The source model of one seed: pretrained once, copied by every cell of that seed."""

    trunk: SmallCNN
    head: torch.nn.Module
    history: History  # its examples and seconds are added to every run that uses it


@dataclass(frozen=True)
class Cell:
    """What one run needs: a (relatedness, k) cell of the grid, for one seed, with its data."""

    config: StudyConfig
    relatedness: Relatedness
    k: int
    seed: int
    device: torch.device
    source: TensorData
    source_test: TensorData
    target: TensorData  # k labelled examples per class
    target_test: TensorData
    pretrained: Pretrained | None  # None when no method of the study pretrains

    @property
    def fit_args(self) -> dict[str, Any]:
        """The keywords every training call of the study shares."""
        return _fit_args(self.config, self.device)


def _fit_args(config: StudyConfig, device: torch.device) -> dict[str, Any]:
    return {"batch_size": config.batch_size, "lr": config.lr, "device": device, "progress": False}


def _trunk(config: StudyConfig) -> SmallCNN:
    return SmallCNN(3, width=config.width, depth=config.depth, norm=config.norm)


def _head(config: StudyConfig, trunk: SmallCNN) -> torch.nn.Module:
    return linear_head(trunk.out_features, config.n_classes)


def _compute(history: History) -> dict[str, float]:
    return {"examples": history.examples, "seconds": history.seconds}


def _pretrain(config: StudyConfig, seed: int, source: TensorData, source_test: TensorData,
              device: torch.device) -> Pretrained | None:
    """Pretrain on the source for one phase, if any method of the study needs it."""
    if not any(m in PRETRAINED_METHODS for m in config.methods):
        return None
    seed_everything(seed)
    trunk = _trunk(config)
    head = _head(config, trunk)
    history = pretrain(trunk, Task("source", head, source, source_test, label=config.label), epochs=1,
                       steps_per_epoch=config.steps_per_phase, seed=seed, evaluate_every=1,
                       **_fit_args(config, device))
    return Pretrained(trunk=trunk, head=head, history=history)


def _grid_cells(config: StudyConfig, device: torch.device) -> Iterator[Cell]:
    """Every (seed, relatedness, k) cell in run order, its data drawn just before its runs."""
    size = config.image_size
    pool_size = 2 * config.n_classes * max(config.ks) + 64  # enough of every class for the largest k
    for seed in config.seeds:
        source = make_shapes(config.n_source, size=size, seed=data_seed(seed, 1), device=device)
        source_test = make_shapes(config.n_target_test, size=size, seed=data_seed(seed, 2), device=device)
        # Depends on the seed only: run once, share with every cell of this seed.
        pretrained = _pretrain(config, seed, source, source_test, device)
        for level in config.relatedness:
            domain = relatedness_domain(level)
            # The same data seeds in every domain: the same objects, drawn differently.
            pool = make_shapes(pool_size, size=size, seed=data_seed(seed, 3), domain=domain, device=device)
            target_test = make_shapes(config.n_target_test, size=size, seed=data_seed(seed, 4),
                                      domain=domain, device=device)
            for k in config.ks:
                target = k_per_class(pool, k, seed=seed, label=config.label)
                yield Cell(config=config, relatedness=level, k=k, seed=seed, device=device, source=source,
                           source_test=source_test, target=target, target_test=target_test,
                           pretrained=pretrained)


def _rows(cell: Cell, method: str, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """The tidy rows of one run: one per metric it measured (scratch has no source accuracy)."""
    where = {"relatedness": relatedness_label(cell.relatedness), "shift": relatedness_shift(cell.relatedness),
             "k": cell.k, "method": method, "seed": cell.seed}
    return [{**where, "metric": name, "value": float(metrics[name])}
            for name in METRICS if metrics.get(name) is not None]


def run_study(config: StudyConfig, *, progress: bool | None = None) -> StudyResult:
    """Run every (relatedness, k, method, seed) of ``config`` and return the tidy results.

    Args:
        config: the grid and the sizes, e.g. :meth:`StudyConfig.quick`.
        progress: show a progress bar over runs; default: yes, except under tests and CI
            (see :func:`mtl_tl.config.quiet`).

    Returns:
        A :class:`StudyResult`; its ``table`` has one row per (relatedness, k, method,
        seed, metric).
    """
    check_type("config", config, StudyConfig)
    device = get_device(config.device)
    show = (not quiet()) if progress is None else bool(progress)
    rows: list[dict[str, Any]] = []
    with tqdm(total=config.runs, desc="study runs", disable=not show, leave=False) as bar:
        for cell in _grid_cells(config, device):
            for method in config.methods:
                rows += _rows(cell, method, _METHOD_RUNNERS[method](cell))
                bar.update(1)
    table = pd.DataFrame(rows, columns=[*CONFIG_COLUMNS, "seed", "metric", "value"])
    return StudyResult(config=config, table=table)


# ------------------------------------------------------------------ one runner per method


def _source_accuracy(trunk: torch.nn.Module, head: torch.nn.Module, cell: Cell) -> float:
    task = Task("source", head, test=cell.source_test, label=cell.config.label)
    return evaluate(trunk, task)["source"]["metric"]


def _scratch(cell: Cell) -> dict[str, float]:
    seed_everything(cell.seed)
    trunk = _trunk(cell.config)
    task = Task("target", _head(cell.config, trunk), cell.target, cell.target_test, label=cell.config.label)
    steps = 2 * cell.config.steps_per_phase
    history = fit(trunk, task, epochs=1, steps_per_epoch=steps, seed=cell.seed, **cell.fit_args)
    return {"target_accuracy": history.last("target"), **_compute(history), "steps": steps}


def _adapt(recipe: str | None, new_head: bool) -> Callable[[Cell], dict[str, float]]:
    """Transfer, feature extraction and sequential: copy the pretrained net, then adapt it.

    ``recipe`` is a :func:`~mtl_tl.transfer.fine_tune` recipe, or ``None`` for the
    article's sequential schedule: go on training the whole model with plain ``fit``.
    """

    def runner(cell: Cell) -> dict[str, float]:
        pre = cell.pretrained
        trunk, source_head = copy.deepcopy(pre.trunk), copy.deepcopy(pre.head)
        if new_head:
            seed_everything(cell.seed)
            head = _head(cell.config, trunk)
        else:
            head = source_head  # the article's schedule: one output layer for both
        task = Task("target", head, cell.target, cell.target_test, label=cell.config.label)
        S = cell.config.steps_per_phase
        if recipe is None:
            history = fit(trunk, task, epochs=1, steps_per_epoch=S, seed=cell.seed, **cell.fit_args)
        else:
            history = fine_tune(trunk, task, recipe=recipe, epochs=1, steps_per_epoch=S, seed=cell.seed,
                                **cell.fit_args)
        return {
            "target_accuracy": history.last("target"),
            "source_accuracy": _source_accuracy(trunk, source_head, cell),
            "examples": pre.history.examples + history.examples,
            "seconds": pre.history.seconds + history.seconds,
            "steps": 2 * S,
        }

    return runner


def _joint(cell: Cell) -> dict[str, float]:
    config = cell.config
    seed_everything(cell.seed)
    trunk = _trunk(config)
    source_task = Task("source", _head(config, trunk), cell.source, cell.source_test, label=config.label)
    target_task = Task("target", _head(config, trunk), cell.target, cell.target_test, label=config.label)
    steps = 2 * config.steps_per_phase if config.budget == "steps" else config.steps_per_phase
    history = train_joint_objective(trunk, source_task, target_task, lam=1.0, epochs=1,
                                    steps_per_epoch=steps, seed=cell.seed, **cell.fit_args)
    return {"target_accuracy": history.last("target"), "source_accuracy": history.last("source"),
            **_compute(history), "steps": steps}


_METHOD_RUNNERS: dict[str, Callable[[Cell], dict[str, float]]] = {
    "scratch": _scratch,
    "transfer": _adapt("full", new_head=True),
    "feature_extraction": _adapt("feature_extraction", new_head=True),
    "sequential": _adapt(None, new_head=False),
    "joint": _joint,
}
