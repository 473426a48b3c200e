"""The design of a study: methods, relatedness levels, budgets and :class:`StudyConfig` (chapter 4.3).

The vocabulary every other part of :mod:`mtl_tl.study` uses.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch

from .._checks import check_choice, check_float, check_int, check_type
from ..config import DEVICES
from ..synthetic import COLOURS, DOMAINS, SHAPES, Domain


METHODS = ("scratch", "transfer", "feature_extraction", "sequential", "joint")
"""The methods compared, in the order tables list them."""

SOURCE_METHODS = ("transfer", "feature_extraction", "sequential", "joint")
"""The methods that use the source task."""

PRETRAINED_METHODS = ("transfer", "feature_extraction", "sequential")
"""The methods that pretrain on the source and then adapt, "transfer" in the broad sense."""

RELATEDNESS: dict[str, float] = {"source": 0.0, "near": 0.2, "far": 0.55, "unrelated": 1.0}
"""The named relatedness levels, the preset domains of :data:`mtl_tl.synthetic.DOMAINS`, and
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

NEGLIGIBLE = 0.05
"""The accuracy gain the rules call negligible.

"A gains nothing over B" is stated only as the upper bound ``mean(A - B) + 2 SE <
NEGLIGIBLE`` on paired seeds (chapter 1's rule), never from a failure to find a difference."""

UNRELATED_SHIFT = 0.75
"""Shift strength from which a relatedness level counts as *unrelated* in the rules
(contrast inversion then affects half the images or more)."""

CONFIG_COLUMNS = ("relatedness", "shift", "k", "method")
"""The columns of a study's tidy table that name one configuration: a grid cell and a method."""

Relatedness = Union[str, float]


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


def relatedness_domain(level: Relatedness) -> Domain:
    """The target domain of a relatedness level: the preset of that name, or the source moved by ``shift``."""
    shift = relatedness_shift(level)  # checks the level
    return DOMAINS[level] if isinstance(level, str) else Domain.interpolate(shift)


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines one head-to-head study (chapter 4.3).

    Attributes:
        methods: which of :data:`~mtl_tl.study.design.METHODS` to run.
        ks: target labels per class, each >= 1 (sorted ascending).
        relatedness: target domains, each a preset name of :data:`~mtl_tl.study.design.RELATEDNESS` or a shift
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
        width: channels of the first block of the :class:`~mtl_tl.models.SmallCNN` backbone.
        depth: its number of blocks.
        norm: its normalisation, ``"none"`` by default: batch norm would confound the
            comparison (its running statistics mix the two domains in joint training, and
            a target batch holds only ``k * n_classes`` images); ``"batch"`` shows how much.
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
