"""Running a study: every (relatedness, k, method, seed) cell, one tidy row per metric (chapter 4.3)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
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
    METRICS,
    PRETRAINED_METHODS,
    Relatedness,
    StudyConfig,
    _CONFIG_COLUMNS,
    _domain,
    relatedness_label,
    relatedness_shift,
)


def _data_seed(seed: int, part: int) -> int:
    """Distinct data seeds per run seed: source train 1, source test 2, target pool 3, target test 4."""
    return 1000 * (seed + 1) + part


def _trunk(config: StudyConfig) -> SmallCNN:
    return SmallCNN(3, width=config.width, depth=config.depth, norm=config.norm)


def _head(config: StudyConfig, trunk: SmallCNN) -> torch.nn.Module:
    return linear_head(trunk.out_features, config.n_classes)


def _run(history: History) -> dict[str, float]:
    return {"examples": history.examples, "seconds": history.seconds}


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
    S = config.steps_per_phase
    label = config.label
    fit_args = {"batch_size": config.batch_size, "lr": config.lr, "device": device, "progress": False}
    show = (not quiet()) if progress is None else bool(progress)
    pool_size = 2 * config.n_classes * max(config.ks) + 64  # enough of every class for the largest k
    rows: list[dict[str, Any]] = []

    def record(level: Relatedness, k: int, method: str, seed: int, metrics: Mapping[str, float]) -> None:
        for name in METRICS:
            if metrics.get(name) is not None:
                rows.append({"relatedness": relatedness_label(level), "shift": relatedness_shift(level),
                             "k": k, "method": method, "seed": seed, "metric": name,
                             "value": float(metrics[name])})

    with tqdm(total=config.runs, desc="study runs", disable=not show, leave=False) as bar:
        for seed in config.seeds:
            source = make_shapes(config.n_source, size=config.image_size, seed=_data_seed(seed, 1), device=device)
            source_test = make_shapes(config.n_target_test, size=config.image_size,
                                      seed=_data_seed(seed, 2), device=device)

            pretrained = None
            if any(m in PRETRAINED_METHODS for m in config.methods):
                # Depends on the seed only: run once, share with every cell of this seed.
                seed_everything(seed)
                trunk = _trunk(config)
                head = _head(config, trunk)
                history = pretrain(trunk, Task("source", head, source, source_test, label=label),
                                   epochs=1, steps_per_epoch=S, seed=seed, evaluate_every=1, **fit_args)
                pretrained = (trunk, head, history)

            for level in config.relatedness:
                domain = _domain(level)
                # The same data seeds in every domain: the same objects, drawn differently.
                pool = make_shapes(pool_size, size=config.image_size, seed=_data_seed(seed, 3),
                                   domain=domain, device=device)
                target_test = make_shapes(config.n_target_test, size=config.image_size,
                                          seed=_data_seed(seed, 4), domain=domain, device=device)
                for k in config.ks:
                    target = k_per_class(pool, k, seed=seed, label=label)
                    for method in config.methods:
                        metrics = _METHOD_RUNNERS[method](
                            config, seed, source, source_test, target, target_test, pretrained, fit_args
                        )
                        record(level, k, method, seed, metrics)
                        bar.update(1)
    table = pd.DataFrame(rows, columns=[*_CONFIG_COLUMNS, "seed", "metric", "value"])
    return StudyResult(config=config, table=table)


def _source_accuracy(trunk: torch.nn.Module, head: torch.nn.Module, source_test: TensorData, label: str) -> float:
    return evaluate(trunk, Task("source", head, test=source_test, label=label))["source"]["metric"]


def _scratch(config, seed, source, source_test, target, target_test, pretrained, fit_args) -> dict[str, float]:
    seed_everything(seed)
    trunk = _trunk(config)
    task = Task("target", _head(config, trunk), target, target_test, label=config.label)
    steps = 2 * config.steps_per_phase
    history = fit(trunk, task, epochs=1, steps_per_epoch=steps, seed=seed, **fit_args)
    return {"target_accuracy": history.last("target"), **_run(history), "steps": steps}


def _adapt(strategy: str, new_head: bool):
    """Transfer, feature extraction and sequential: copy the pretrained net, then adapt it."""

    def runner(config, seed, source, source_test, target, target_test, pretrained, fit_args):
        trunk0, head0, pre = pretrained
        trunk, source_head = copy.deepcopy(trunk0), copy.deepcopy(head0)
        if new_head:
            seed_everything(seed)
            head = _head(config, trunk)
        else:
            head = source_head  # the article's schedule: one output layer for both
        task = Task("target", head, target, target_test, label=config.label)
        S = config.steps_per_phase
        if strategy == "sequential":
            history = fit(trunk, task, epochs=1, steps_per_epoch=S, seed=seed, **fit_args)
        else:
            history = fine_tune(trunk, task, strategy=strategy, epochs=1, steps_per_epoch=S, seed=seed, **fit_args)
        return {
            "target_accuracy": history.last("target"),
            "source_accuracy": _source_accuracy(trunk, source_head, source_test, config.label),
            "examples": pre.examples + history.examples,
            "seconds": pre.seconds + history.seconds,
            "steps": 2 * S,
        }

    return runner


def _joint(config, seed, source, source_test, target, target_test, pretrained, fit_args) -> dict[str, float]:
    seed_everything(seed)
    trunk = _trunk(config)
    source_task = Task("source", _head(config, trunk), source, source_test, label=config.label)
    target_task = Task("target", _head(config, trunk), target, target_test, label=config.label)
    steps = 2 * config.steps_per_phase if config.budget == "steps" else config.steps_per_phase
    history = train_joint_objective(trunk, source_task, target_task, lam=1.0, epochs=1,
                                    steps_per_epoch=steps, seed=seed, **fit_args)
    return {"target_accuracy": history.last("target"), "source_accuracy": history.last("source"),
            **_run(history), "steps": steps}


_METHOD_RUNNERS = {
    "scratch": _scratch,
    "transfer": _adapt("full", new_head=True),
    "feature_extraction": _adapt("feature_extraction", new_head=True),
    "sequential": _adapt("sequential", new_head=False),
    "joint": _joint,
}
