"""One controlled study: when does transfer learning win, and when does multi-task learning win?

Chapter 4.3. The article promises "an in-depth comparison" of 迁移学习 (transfer
learning) and 多任务学习 (multi-task learning) and gives none. This module runs one, with
everything held fixed except the method: the same data generator
(:func:`mtl_tl.synthetic.make_shapes`), the same backbone
(:class:`~mtl_tl.models.SmallCNN`), the same optimiser and the same training budget.

The source task and the target task are the same *task* (name the shape: circle, square,
triangle or cross, or with ``label="colour"`` name its colour) in two *domains*: the
source domain (源域) is :data:`mtl_tl.synthetic.DOMAINS` ``["source"]``; the target
domain (目标域) is :meth:`~mtl_tl.synthetic.Domain.interpolate` ``(shift)``, from
near-identical (``"near"``, shift 0.2) to unrelated (``"unrelated"``, shift 1: inverted
contrast, any rotation, heavy texture and noise, hues moved by one colour class). The
source has plenty of labels; the target has ``k`` labels per class.

The methods (:data:`METHODS`):

======================  ===================================================================
``scratch``             target labels only, from a random initialisation
``transfer``            pretrain on the source, then fine-tune everything on the target with
                        a *new* head (:func:`mtl_tl.transfer.pretrain` + ``fine_tune(full)``)
``feature_extraction``  pretrain, then freeze the trunk and train a new head on the target
                        (``fine_tune(feature_extraction)``)
``sequential``          the article's schedule: source, then target, on the *same* model with
                        the *same* output layer (what :func:`mtl_tl.multitask.train_sequentially`
                        does with one head shared by both tasks)
``joint``               multi-task learning: eq. 3.1 with ``lambda = 1``, i.e. eq. 3.2 with two
                        tasks; each step one source batch and one target batch through one
                        shared trunk (共享表示), one head each
                        (:func:`mtl_tl.transfer.train_joint_objective`)
======================  ===================================================================

``sequential`` differs from ``transfer`` in one thing only: it keeps the source head
instead of starting a new one. Both can forget the source; the study measures how much.

**The budget.** ``S = epochs * ceil(n_source / batch_size)`` optimisation steps is one
*phase*. With ``budget="steps"`` (the default) every method makes the same number of
optimiser updates, ``2 S``: ``scratch`` trains ``2 S`` steps on the target; ``transfer``,
``feature_extraction`` and ``sequential`` pretrain ``S`` steps on the source and adapt
``S`` steps on the target; ``joint`` makes ``2 S`` steps, each on one source batch *and*
one target batch, so it processes about twice the examples of ``transfer``. With
``budget="batches"`` every method draws the same number of batches, ``2 S``: ``joint``
then makes ``S`` updates of two batches each, seeing exactly the batches ``transfer``
sees, mixed instead of one phase after the other. Examples processed (:attr:`mtl_tl.engine.History.examples`)
and wall time (:attr:`~mtl_tl.engine.History.seconds`) are reported per run, so the
compute each method used is in the table either way. Pretraining depends on the seed
only, so it runs once per seed and is shared by the cells (as one pretrained model serves
many targets in practice); its examples and seconds are *added* to every run that uses it.

**What is measured**, per (relatedness, k, method, seed): ``target_accuracy`` on a held-out
target test set; ``source_accuracy`` on a held-out source test set after all training (who
forgets? not defined for ``scratch``, which has no source head); ``examples``,
``seconds`` and ``steps`` (optimiser updates). :class:`StudyResult` holds the tidy table
and derives the summary (mean, std, n over seeds), the decision map (who wins each cell,
by how much, and whether the win exceeds the seeds' spread) and, from the map, the
rules of thumb, each stated only when the numbers support it.

Example:
    >>> from mtl_tl.study import StudyConfig, run_study       # doctest: +SKIP
    >>> result = run_study(StudyConfig.quick())               # doctest: +SKIP
    >>> result.decision_map()                                 # doctest: +SKIP
    >>> result.rules()                                        # doctest: +SKIP

The command line runs the same study: ``python -m mtl_tl study --profile full --out results/``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_choice, check_float, check_int, check_type
from .config import DEVICES, get_device, quiet, seed_everything
from .data import TensorData, k_per_class
from .engine import History, evaluate, fit
from .experiments import summarize
from .models import SmallCNN, linear_head
from .synthetic import COLOURS, DOMAINS, SHAPES, Domain, make_shapes
from .tasks import Task
from .transfer import fine_tune, pretrain, train_joint_objective

__all__ = [
    "METHODS",
    "SOURCE_METHODS",
    "PRETRAINED_METHODS",
    "RELATEDNESS",
    "LABELS",
    "BUDGETS",
    "NORMS",
    "METRICS",
    "MIN_SEEDS",
    "UNRELATED_SHIFT",
    "StudyConfig",
    "StudyResult",
    "run_study",
    "relatedness_shift",
    "relatedness_label",
    "decision_map",
    "derive_rules",
    "rules_markdown",
]

METHODS = ("scratch", "transfer", "feature_extraction", "sequential", "joint")
"""The methods compared, in the order tables list them."""

SOURCE_METHODS = ("transfer", "feature_extraction", "sequential", "joint")
"""The methods that use the source task."""

PRETRAINED_METHODS = ("transfer", "feature_extraction", "sequential")
"""The methods that pretrain on the source and then adapt: "transfer" in the broad sense."""

RELATEDNESS: dict[str, float] = {"source": 0.0, "near": 0.2, "far": 0.55, "unrelated": 1.0}
"""Named relatedness levels: the preset domains of :data:`mtl_tl.synthetic.DOMAINS` and
their shift strength in :meth:`~mtl_tl.synthetic.Domain.interpolate` (0: the source's own
domain; 1: unrelated)."""

LABELS = {"shape": SHAPES, "colour": COLOURS}
"""The labels a study can classify, with their class names."""

BUDGETS = ("steps", "batches")
"""How the training budget is made equal across methods (see the module docstring)."""

METRICS = ("target_accuracy", "source_accuracy", "examples", "seconds", "steps")
"""The metrics of the tidy table, per run."""

NORMS = ("none", "batch", "group")
"""Normalisation layers the backbone may use (see :class:`~mtl_tl.models.SmallCNN`)."""

MIN_SEEDS = 3
"""Fewest seeds per method for a difference to count as clear, and for any rule to be stated."""

UNRELATED_SHIFT = 0.75
"""Shift strength from which a relatedness level counts as *unrelated* in the rules
(contrast inversion then affects half the images or more)."""

_CONFIG_COLUMNS = ["relatedness", "shift", "k", "method"]

Relatedness = Union[str, float]


# ----------------------------------------------------------------------------- config


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, range)):
        raise TypeError(f"{name} must be a sequence (list or tuple), got {type(value).__name__}: {value!r:.80}")
    if len(value) == 0:
        raise ValueError(f"{name} is empty; give at least one value")
    return tuple(value)


def _distinct(name: str, values: Sequence[Any]) -> None:
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"{name} has repeated value(s) {repeated}; give each once")


def relatedness_shift(level: Relatedness) -> float:
    """The shift strength in [0, 1] of a relatedness level: a preset name or a number.

    Raises:
        ValueError: for an unknown name or a number outside [0, 1].
    """
    if isinstance(level, str):
        if level not in RELATEDNESS:
            raise ValueError(
                f"relatedness={level!r} is not accepted; choose a preset "
                f"({', '.join(map(repr, RELATEDNESS))}) or a shift strength in [0, 1]"
            )
        return RELATEDNESS[level]
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise TypeError(
            f"relatedness values must be preset names or numbers in [0, 1], got "
            f"{type(level).__name__}: {level!r:.80}"
        )
    value = float(level)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(
            f"relatedness={level!r} is outside [0, 1]; choose a preset "
            f"({', '.join(map(repr, RELATEDNESS))}) or a shift strength in [0, 1]"
        )
    return value


def relatedness_label(level: Relatedness) -> str:
    """How a level is named in tables: the preset name, or the shift as ``"shift=0.3"``."""
    return level if isinstance(level, str) else f"shift={relatedness_shift(level):g}"


def _domain(level: Relatedness) -> Domain:
    return DOMAINS[level] if isinstance(level, str) else Domain.interpolate(relatedness_shift(level))


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines one head-to-head study (chapter 4.3).

    Attributes:
        methods: which of :data:`METHODS` to run.
        ks: target labels per class, each >= 1 (sorted ascending).
        relatedness: target domains, each a preset name of :data:`RELATEDNESS` or a shift
            strength in [0, 1] (sorted from near to far).
        seeds: distinct seeds >= 0; each seed redraws the data, the ``k`` labelled
            examples, the initialisation and the batch order.
        epochs: passes over the source training set in one phase; one phase is
            ``steps_per_phase = epochs * ceil(n_source / batch_size)`` optimiser steps.
        budget: ``"steps"`` (every method makes ``2 S`` updates) or ``"batches"`` (every
            method draws ``2 S`` batches); see the module docstring.
        label: the task, ``"colour"`` (5 classes; learnt quickly even at 16 px) or
            ``"shape"`` (4 classes; needs larger images and more steps).
        image_size: side of the generated images in pixels (>= 16 and >= 2**depth).
        n_source: labelled source training images.
        n_target_test: images in the target test set (and in the source test set).
        width, depth, norm: the :class:`~mtl_tl.models.SmallCNN` backbone. ``norm="none"``
            by default: batch norm would confound the comparison (its running statistics
            mix the two domains in joint training, and a target batch holds only
            ``k * n_classes`` images); ``"batch"`` shows how much.
        batch_size: examples per batch and per task.
        lr: Adam learning rate, the same for every method and phase.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``None`` (choose automatically); whether
            this machine has it is checked when the study runs, so that a result computed
            on a GPU can be read back on a laptop.
    """

    methods: tuple[str, ...] = METHODS
    ks: tuple[int, ...] = (1, 10)
    relatedness: tuple[Relatedness, ...] = ("near", "far", "unrelated")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 4
    budget: str = "steps"
    label: str = "colour"
    image_size: int = 16
    n_source: int = 1024
    n_target_test: int = 512
    width: int = 8
    depth: int = 3
    norm: str = "none"
    batch_size: int = 64
    lr: float = 3e-3
    device: str | None = None

    def __post_init__(self) -> None:
        methods = _as_tuple("methods", self.methods)
        for m in methods:
            check_choice("methods", m, METHODS)
        _distinct("methods", methods)
        # Table order is METHODS order, whatever order they were given in.
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in methods))

        ks = _as_tuple("ks", self.ks)
        for i, k in enumerate(ks):
            check_int(f"ks[{i}]", k, min_value=1)
        _distinct("ks", ks)
        object.__setattr__(self, "ks", tuple(sorted(ks)))

        levels = _as_tuple("relatedness", self.relatedness)
        shifts = [relatedness_shift(r) for r in levels]
        labels = [relatedness_label(r) for r in levels]
        _distinct("relatedness", labels)
        if len(set(shifts)) != len(shifts):
            raise ValueError(f"relatedness {list(levels)} names the same shift twice; give each level once")
        ordered = [r for _, r in sorted(zip(shifts, levels), key=lambda pair: pair[0])]
        object.__setattr__(self, "relatedness", tuple(r if isinstance(r, str) else float(r) for r in ordered))

        seeds = _as_tuple("seeds", self.seeds)
        for i, s in enumerate(seeds):
            check_int(f"seeds[{i}]", s, min_value=0, max_value=2**31 - 1)
        _distinct("seeds", seeds)
        object.__setattr__(self, "seeds", seeds)

        check_int("epochs", self.epochs, min_value=1)
        check_choice("budget", self.budget, BUDGETS)
        check_choice("label", self.label, LABELS)
        check_int("depth", self.depth, min_value=1, max_value=6)
        check_int("image_size", self.image_size, min_value=max(16, 2**self.depth))
        check_int("width", self.width, min_value=1)
        check_choice("norm", self.norm, NORMS)
        check_int("batch_size", self.batch_size, min_value=1)
        check_int("n_source", self.n_source, min_value=8 * len(LABELS[self.label]))
        check_int("n_target_test", self.n_target_test, min_value=len(LABELS[self.label]))
        check_float("lr", self.lr, min_value=0.0, strict_min=True)
        if self.device is not None:
            check_type("device", self.device, str)
            try:
                kind = torch.device(self.device.strip().lower()).type
            except RuntimeError:
                kind = None
            if kind not in DEVICES:
                raise ValueError(f"device={self.device!r} is not accepted; choose one of: {', '.join(DEVICES)} or None")

    @classmethod
    def quick(cls) -> StudyConfig:
        """The notebook's grid, for a CPU: the defaults.

        2 ks x 3 relatedness levels x 5 methods x 3 seeds (90 runs) on 16-px images with a
        width-8 SmallCNN and 64 steps per phase: about a minute on a 2-core CPU.
        """
        return cls()

    @classmethod
    def full(cls) -> StudyConfig:
        """The full grid, for a GPU: 4 ks x 3 relatedness levels x 5 methods x 5 seeds (300 runs).

        32-px images, a width-32 SmallCNN, 8,192 source images, 5 source epochs per phase
        (320 steps of 128 images).
        """
        return cls(ks=(1, 5, 20, 100), seeds=(0, 1, 2, 3, 4), epochs=5, image_size=32, n_source=8192,
                   n_target_test=2048, width=32, batch_size=128, lr=1e-3)

    @property
    def steps_per_phase(self) -> int:
        """``S``: optimiser steps of one phase (pretraining, or adapting to the target)."""
        return self.epochs * math.ceil(self.n_source / self.batch_size)

    @property
    def n_classes(self) -> int:
        """Classes of the task (4 shapes or 5 colours)."""
        return len(LABELS[self.label])

    @property
    def runs(self) -> int:
        """Training runs in the study (one per relatedness, k, method and seed)."""
        return len(self.relatedness) * len(self.ks) * len(self.methods) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-ready values."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> StudyConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        check_type("values", values, Mapping)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown StudyConfig field(s) {unknown}; fields: {', '.join(sorted(names))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ------------------------------------------------------------------------------ running


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


# ----------------------------------------------------------------------- decision map


def _pooled(a: float, b: float) -> float:
    """Pooled standard deviation of two arms with equal seeds: ``sqrt((a^2 + b^2) / 2)``."""
    return math.sqrt((a * a + b * b) / 2.0)


def _check_summary(summary: Any) -> pd.DataFrame:
    check_type("summary", summary, pd.DataFrame)
    needed = ["relatedness", "k", "method", "metric", "mean", "std", "n"]
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks column(s) {missing}; it has {list(summary.columns)}")
    if summary.empty:
        raise ValueError("summary is empty; it needs at least one row")
    unknown = sorted(set(summary["method"]) - set(METHODS))
    if unknown:
        raise ValueError(f"summary names unknown method(s) {unknown}; accepted: {', '.join(METHODS)}")
    return summary


def _cells(summary: pd.DataFrame, metric: str) -> list[tuple[tuple[str, float, int], pd.DataFrame]]:
    part = summary[summary["metric"] == metric]
    if part.empty:
        raise ValueError(f"summary has no rows for metric {metric!r}; it has {sorted(set(summary['metric']))}")
    if "shift" not in part.columns:
        part = part.assign(shift=[relatedness_shift(r) if r in RELATEDNESS else float("nan")
                                  for r in part["relatedness"]])
    cells = []
    for (level, shift, k), group in part.groupby(["relatedness", "shift", "k"], sort=False, dropna=False):
        if group["method"].duplicated().any():
            raise ValueError(f"summary has several rows per method for relatedness={level!r}, k={k}")
        cells.append(((level, float(shift), int(k)), group.set_index("method")))
    return sorted(cells, key=lambda c: (c[0][1], c[0][2]))


def decision_map(summary: pd.DataFrame, metric: str = "target_accuracy") -> pd.DataFrame:
    """Who wins each (relatedness, k) cell, by how much, and whether it is more than noise.

    Args:
        summary: a :func:`mtl_tl.experiments.summarize` table of a study: columns
            ``relatedness``, ``k``, ``method``, ``metric``, ``mean``, ``std``, ``n`` (and
            ``shift``; derived from preset names when absent).
        metric: the metric to rank the methods by (higher is better).

    Returns:
        One row per cell, sorted by shift then k, with columns ``relatedness``, ``shift``,
        ``k``, ``winner``, ``winner_mean``, ``winner_std``, ``runner_up``,
        ``runner_up_mean``, ``runner_up_std``, ``margin`` (winner minus runner-up),
        ``pooled_std`` (of the two), ``clear`` (``margin > pooled_std`` with at least
        :data:`MIN_SEEDS` seeds), ``n`` (fewest seeds of the two), ``scratch_mean`` (NaN without scratch),
        ``best_source_method`` and ``source_gain`` (the best method that uses the source,
        minus scratch; NaN when either is missing).
    """
    summary = _check_summary(summary)
    out = []
    for (level, shift, k), cell in _cells(summary, metric):
        if len(cell) < 2:
            raise ValueError(f"cell relatedness={level!r}, k={k} has {len(cell)} method(s); a map needs >= 2")
        # Ties go to the method listed first in METHODS (scratch first: the simplest wins a tie).
        ranked = sorted(cell.index, key=lambda m: (-cell.loc[m, "mean"], METHODS.index(m)))
        w, r = ranked[0], ranked[1]
        pooled = _pooled(cell.loc[w, "std"], cell.loc[r, "std"])
        n = int(min(cell.loc[w, "n"], cell.loc[r, "n"]))
        margin = float(cell.loc[w, "mean"] - cell.loc[r, "mean"])
        scratch = float(cell.loc["scratch", "mean"]) if "scratch" in cell.index else float("nan")
        users = [m for m in ranked if m in SOURCE_METHODS]
        best_user = users[0] if users else None
        gain = float(cell.loc[best_user, "mean"]) - scratch if best_user is not None else float("nan")
        out.append({
            "relatedness": level, "shift": shift, "k": k,
            "winner": w, "winner_mean": float(cell.loc[w, "mean"]), "winner_std": float(cell.loc[w, "std"]),
            "runner_up": r, "runner_up_mean": float(cell.loc[r, "mean"]), "runner_up_std": float(cell.loc[r, "std"]),
            "margin": margin, "pooled_std": pooled, "clear": bool(n >= MIN_SEEDS and margin > pooled), "n": n,
            "scratch_mean": scratch, "best_source_method": best_user, "source_gain": gain,
        })
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------ rules


def _stat(cell: pd.DataFrame, method: str) -> tuple[float, float, int]:
    row = cell.loc[method]
    return float(row["mean"]), float(row["std"]), int(row["n"])


def _beats(cell: pd.DataFrame, a: str, b: str) -> bool:
    """``a`` beats ``b`` by more than their pooled std, with at least :data:`MIN_SEEDS` seeds each."""
    ma, sa, na = _stat(cell, a)
    mb, sb, nb = _stat(cell, b)
    return min(na, nb) >= MIN_SEEDS and ma - mb > _pooled(sa, sb)


def _fmt(cell: pd.DataFrame, method: str) -> str:
    mean, std, _ = _stat(cell, method)
    return f"{method} {mean:.2f} ± {std:.2f}"


def derive_rules(summary: pd.DataFrame, *, include_unsupported: bool = False) -> pd.DataFrame:
    """Rules of thumb read off a study's results; each stated only if the numbers support it.

    "Beats" below means: mean difference larger than the pooled standard deviation of the
    two methods over seeds, with at least :data:`MIN_SEEDS` seeds; with fewer seeds no
    rule is stated. The candidate rules:

    * **few labels, related source**: at the smallest k, at the nearest relatedness level
      (shift < :data:`UNRELATED_SHIFT`), the winner uses the source and beats scratch.
      The rule lists every related level where this holds.
    * **many labels**: at the largest k (larger than the smallest), no method beats
      scratch at any relatedness level.
    * **unrelated source**: at the farthest level (shift >= :data:`UNRELATED_SHIFT`), no
      pretrain-then-adapt method (:data:`PRETRAINED_METHODS`) beats scratch at any k;
      where scratch beats fine-tuning (``transfer``), the rule names it negative transfer.
    * **need both tasks**: in every cell, neither ``transfer`` nor ``sequential`` (the
      ones present) beats joint training's source accuracy, and joint beats at least one
      of them (a near target domain may leave one of them little to forget).
    * **multi-task wins the target**: the cells where ``joint`` is the winner and beats
      the runner-up.

    Args:
        summary: a study's summary (see :func:`decision_map`), with the metric
            ``target_accuracy`` and, for the "need both tasks" rule, ``source_accuracy``.
        include_unsupported: also return the candidates the numbers do not support
            (``supported`` False), with the reason in ``evidence``.

    Returns:
        A table with columns ``rule``, ``situation``, ``advice``, ``evidence``,
        ``supported``; by default only the supported rules.
    """
    summary = _check_summary(summary)
    cells = _cells(summary, "target_accuracy")
    methods = set(summary["method"])
    ks = sorted({key[2] for key, _ in cells})
    levels = sorted({(key[1], key[0]) for key, _ in cells})  # (shift, name), near to far
    by_key = {key: cell for key, cell in cells}
    found: list[dict[str, Any]] = []

    def add(rule: str, situation: str, advice: str, evidence: str, supported: bool) -> None:
        found.append({"rule": rule, "situation": situation, "advice": advice,
                      "evidence": evidence, "supported": bool(supported)})

    def cell(shift: float, name: str, k: int) -> pd.DataFrame | None:
        return by_key.get((name, shift, k))

    # 1. Few labels and a related source: use the source.
    k0 = ks[0]
    related = [(s, n) for s, n in levels if s < UNRELATED_SHIFT]
    holds, evidence = [], []
    if "scratch" in methods and related:
        for shift, name in related:
            c = cell(shift, name, k0)
            if c is None or "scratch" not in c.index:
                continue
            winner = max(c.index, key=lambda m: (c.loc[m, "mean"], -METHODS.index(m)))
            if winner in SOURCE_METHODS and _beats(c, winner, "scratch"):
                holds.append((name, winner))
                evidence.append(f"{name}: {_fmt(c, winner)} vs {_fmt(c, 'scratch')}")
        nearest_ok = bool(holds) and holds[0][0] == related[0][1]
        winners = sorted({w for _, w in holds}, key=METHODS.index)
        add("few labels, related source",
            f"few target labels (k = {k0} per class) and a related source "
            f"({', '.join(n for n, _ in holds) or related[0][1]})",
            f"use the source: {' or '.join(winners) if winners else 'a method that uses the source'} "
            "beats training from scratch",
            "; ".join(evidence) if nearest_ok else
            f"at k = {k0} and the nearest level {related[0][1]!r} no method that uses the source beats scratch",
            nearest_ok)

    # 2. Many labels: scratch is enough.
    k1 = ks[-1]
    if "scratch" in methods and k1 > k0:
        ok, evidence = True, []
        for shift, name in levels:
            c = cell(shift, name, k1)
            if c is None or "scratch" not in c.index:
                ok = False
                continue
            best = max(c.index, key=lambda m: (c.loc[m, "mean"], -METHODS.index(m)))
            beaten = best != "scratch" and _beats(c, best, "scratch")
            ok &= not beaten and int(c.loc["scratch", "n"]) >= MIN_SEEDS
            evidence.append(f"{name}: {_fmt(c, 'scratch')}, best {_fmt(c, best)}")
        add("many labels", f"many target labels (k = {k1} per class)",
            "scratch is enough: no method beats training from scratch by more than the seeds' spread",
            "; ".join(evidence), ok)

    # 3. Unrelated source: don't transfer.
    far_shift, far_name = levels[-1]
    pre = [m for m in PRETRAINED_METHODS if m in methods]
    if "scratch" in methods and pre and far_shift >= UNRELATED_SHIFT:
        ok, evidence, negative = True, [], []
        for k in ks:
            c = cell(far_shift, far_name, k)
            if c is None or "scratch" not in c.index:
                ok = False
                continue
            present = [m for m in pre if m in c.index]
            ok &= int(c.loc["scratch", "n"]) >= MIN_SEEDS and not any(_beats(c, m, "scratch") for m in present)
            if "transfer" in c.index and _beats(c, "scratch", "transfer"):
                negative.append(k)
            evidence.append(f"k = {k}: {_fmt(c, 'scratch')}; " + ", ".join(_fmt(c, m) for m in present))
        advice = "don't transfer: pretraining on this source and adapting gains nothing over scratch"
        if negative:
            advice += f"; fine-tuning from it even hurts (negative transfer) at k = {', '.join(map(str, negative))}"
        add("unrelated source", f"an unrelated source ({far_name}, shift {far_shift:g})", advice,
            "; ".join(evidence), ok)

    # 4. Need both tasks afterwards: joint keeps the source.
    forgetful = [m for m in ("transfer", "sequential") if m in methods]
    has_source = "source_accuracy" in set(summary["metric"])
    if "joint" in methods and forgetful and has_source:
        source_cells = dict(_cells(summary, "source_accuracy"))
        ok = bool(source_cells)
        for key, c in source_cells.items():
            present = [m for m in forgetful if m in c.index]
            if "joint" not in c.index or not present:
                ok = False
                continue
            # Joint must never lose the source to a forgetful method, and keep it better than one.
            ok &= not any(_beats(c, m, "joint") for m in present) and any(_beats(c, "joint", m) for m in present)
        ranges = []
        for m in ["joint", *forgetful]:
            means = [float(c.loc[m, "mean"]) for c in source_cells.values() if m in c.index]
            if means:
                ranges.append(f"{m} {min(means):.2f} to {max(means):.2f}")
        keeper = " (feature extraction also keeps it, with its trunk frozen)" if "feature_extraction" in methods else ""
        add("need both tasks", "the source task must still work after training",
            f"train jointly (multi-task, eq. 3.2): it keeps the source task, while {' and '.join(forgetful)} "
            f"forget it{keeper}",
            "source accuracy after training, lowest to highest cell mean: " + "; ".join(ranges), ok)

    # 5. Where multi-task learning wins the target outright.
    if "joint" in methods:
        wins = []
        for (name, shift, k), c in cells:
            if "joint" not in c.index or len(c) < 2:
                continue
            ranked = sorted(c.index, key=lambda m: (-c.loc[m, "mean"], METHODS.index(m)))
            if ranked[0] == "joint" and _beats(c, "joint", ranked[1]):
                wins.append(f"{name}, k = {k} ({_fmt(c, 'joint')} vs {_fmt(c, ranked[1])})")
        add("multi-task wins the target", "cells where joint training is best on the target: "
            + ("; ".join(w.split(" (")[0] for w in wins) if wins else "none"),
            "train jointly there, even if only the target matters",
            "; ".join(wins) if wins else "joint is never the clear winner on the target", bool(wins))

    table = pd.DataFrame(found, columns=["rule", "situation", "advice", "evidence", "supported"])
    if not include_unsupported:
        table = table[table["supported"]].reset_index(drop=True)
    return table


def rules_markdown(rules: pd.DataFrame) -> str:
    """The rules as a Markdown table (what the command line writes to ``rules.md``)."""
    check_type("rules", rules, pd.DataFrame)
    if rules.empty:
        return ("No rule of thumb is supported by these results: no difference exceeds the seeds' "
                f"spread (or fewer than {MIN_SEEDS} seeds were run).\n")
    lines = ["| situation | advice | evidence (mean ± std over seeds) |", "|---|---|---|"]
    for _, r in rules.iterrows():
        lines.append(f"| {r['situation']} | {r['advice']} | {r['evidence']} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` measured (chapter 4.3).

    Attributes:
        config: the :class:`StudyConfig` that was run.
        table: tidy ``pandas.DataFrame``, one row per (relatedness, k, method, seed,
            metric), columns ``relatedness``, ``shift``, ``k``, ``method``, ``seed``,
            ``metric``, ``value``; metrics are :data:`METRICS` (no ``source_accuracy`` for
            ``scratch``).
    """

    config: StudyConfig
    table: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        """Mean, sample std and n over seeds per (relatedness, shift, k, method, metric)."""
        return summarize(self.table, by=_CONFIG_COLUMNS)

    def pivot(self, metric: str = "target_accuracy", digits: int = 2) -> pd.DataFrame:
        """A readable wide table: rows (relatedness, k), one column per method, ``"mean ± std"``."""
        check_choice("metric", metric, METRICS)
        check_int("digits", digits, min_value=0, max_value=6)
        s = self.summary
        s = s[s["metric"] == metric]
        text = s.assign(cell=[f"{m:.{digits}f} ± {d:.{digits}f}" for m, d in zip(s["mean"], s["std"])])
        wide = text.pivot(index=["relatedness", "k"], columns="method", values="cell")
        order = sorted(wide.index, key=lambda i: (relatedness_shift(i[0]) if i[0] in RELATEDNESS
                                                   else float(i[0].split("=")[1]), i[1]))
        return wide.loc[order, [m for m in self.config.methods if m in wide.columns]]

    def decision_map(self, metric: str = "target_accuracy") -> pd.DataFrame:
        """:func:`decision_map` of this study's summary."""
        return decision_map(self.summary, metric)

    def rules(self, *, include_unsupported: bool = False) -> pd.DataFrame:
        """:func:`derive_rules` of this study's summary."""
        return derive_rules(self.summary, include_unsupported=include_unsupported)

    def compute(self) -> pd.DataFrame:
        """Compute per method, averaged over all runs: ``steps``, ``examples``, ``seconds``.

        ``examples`` and ``seconds`` include the pretraining of the methods that use it.
        """
        t = self.table[self.table["metric"].isin(["steps", "examples", "seconds"])]
        wide = t.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
        return wide.loc[[m for m in self.config.methods if m in wide.index], ["steps", "examples", "seconds"]]

    def to_csv(self, path: str | Path) -> Path:
        """Write the tidy table to ``path`` (CSV); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path, index=False)
        return path

    def to_json(self, path: str | Path) -> Path:
        """Write the configuration and the tidy table to ``path`` (JSON); returns the path.

        :meth:`from_json` reads it back, e.g. to study a GPU run's results on a laptop.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"config": self.config.to_dict(), "table": self.table.to_dict(orient="records")}
        path.write_text(json.dumps(blob, indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> StudyResult:
        """Read a result written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{str(path)!r} does not exist; write it with StudyResult.to_json or the command line")
        blob = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(blob, dict) or set(blob) != {"config", "table"}:
            raise ValueError(f"{path} is not a study result written by StudyResult.to_json")
        table = pd.DataFrame(blob["table"], columns=[*_CONFIG_COLUMNS, "seed", "metric", "value"])
        return cls(config=StudyConfig.from_dict(blob["config"]), table=table)
