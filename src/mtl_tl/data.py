"""Tensors in memory: the container, the fast loader, scikit-learn's digits and the splits.

Chapter 4.1 uses the digits class split (0-4 -> 5-9) and k-labels-per-class
subsampling; every chapter trains through :class:`TensorLoader`.

Conventions
-----------
Images are float32 tensors ``(N, C, H, W)`` with values in [0, 1]. Labels are an
int64 tensor ``(N,)`` (classification), a float32 tensor ``(N,)`` or ``(N, D)``
(regression), or a ``dict`` of such tensors when one image carries several labels
(multi-task data). Nothing here downloads anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from ._checks import check_int, check_probability, check_tensor, check_type

Labels = Union[torch.Tensor, dict[str, torch.Tensor]]

__all__ = [
    "TensorData",
    "TensorLoader",
    "load_digits",
    "class_split",
    "k_per_class",
    "train_test_split",
]


@dataclass
class TensorData:
    """Images (or features) and their label(s), all held as tensors.

    Attributes:
        x: images ``(N, C, H, W)``, or features ``(N, D)`` such as a frozen trunk's
            outputs cached once (chapter 6: training a head on cached features).
        y: labels ``(N, ...)``, or a dict ``{label_name: (N, ...)}`` for multi-label data.
    """

    x: torch.Tensor
    y: Labels

    def __post_init__(self) -> None:
        check_tensor("x", self.x, ndim=(2, 4), floating=True, min_len=1)
        labels = self.y.items() if isinstance(self.y, Mapping) else [("y", self.y)]
        if isinstance(self.y, Mapping) and len(self.y) == 0:
            raise ValueError("y is an empty dict; give at least one label tensor")
        for key, value in labels:
            check_tensor(f"y[{key!r}]" if isinstance(self.y, Mapping) else "y", value)
            if len(value) != len(self.x):
                raise ValueError(
                    f"x has {len(self.x)} images but label {key!r} has {len(value)} entries; "
                    "they must match"
                )

    def __len__(self) -> int:
        return len(self.x)

    def label(self, key: str | None = None) -> torch.Tensor:
        """The label tensor ``(N, ...)``: ``y`` itself, or ``y[key]`` for multi-label data."""
        if not isinstance(self.y, Mapping):
            return self.y
        if key is None or key not in self.y:
            raise KeyError(f"label {key!r} not in this data; it holds: {', '.join(self.y)}")
        return self.y[key]

    def subset(self, index: torch.Tensor | Sequence[int]) -> TensorData:
        """A new :class:`TensorData` with the rows ``index`` (int64 indices or a bool mask)."""
        index = torch.as_tensor(index)
        if isinstance(self.y, Mapping):
            y: Labels = {k: v[index] for k, v in self.y.items()}
        else:
            y = self.y[index]
        return TensorData(self.x[index], y)

    def to(self, device: torch.device | str) -> TensorData:
        """A copy on ``device`` (one transfer, before training, not one per batch)."""
        if isinstance(self.y, Mapping):
            y: Labels = {k: v.to(device) for k, v in self.y.items()}
        else:
            y = self.y.to(device)
        return TensorData(self.x.to(device), y)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example, ``(C, H, W)`` for images and ``(D,)`` for features."""
        return tuple(self.x.shape[1:])


class TensorLoader:
    """Batches of a :class:`TensorData`, sliced from tensors that already sit on the device.

    Unlike ``DataLoader(TensorDataset(...))`` it does no Python work per sample:
    each epoch draws one ``randperm`` and every batch is one ``index_select``.
    Under ``torchrun`` it shards with :class:`torch.utils.data.DistributedSampler`
    so that each rank sees its own part of the same permutation (chapter 4).

    Args:
        data: the tensors to batch.
        batch_size: examples per batch, per process.
        shuffle: draw a fresh permutation each epoch.
        drop_last: drop a last, smaller batch.
        seed: seed of the permutation (epoch ``e`` uses ``seed + e``).
        rank, world_size: this process's place under ``torchrun``; the defaults
            mean a single process.

    Yields:
        ``(x, y)`` with ``x`` of shape ``(B, C, H, W)`` and ``y`` shaped like ``data.y``.
    """

    def __init__(
        self,
        data: TensorData,
        batch_size: int = 64,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_type("data", data, TensorData)
        self.data = data
        self.batch_size = check_int("batch_size", batch_size, min_value=1)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = check_int("seed", seed)
        self.world_size = check_int("world_size", world_size, min_value=1)
        self.rank = check_int("rank", rank, min_value=0, max_value=world_size - 1)
        self.epoch = 0
        self._sampler = None
        if world_size > 1:
            self._sampler = DistributedSampler(
                range(len(data)), num_replicas=world_size, rank=rank,
                shuffle=shuffle, seed=seed, drop_last=True,
            )

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` on the next iteration."""
        self.epoch = check_int("epoch", epoch, min_value=0)

    def _indices(self) -> torch.Tensor:
        device = self.data.x.device
        if self._sampler is not None:
            self._sampler.set_epoch(self.epoch)
            return torch.tensor(list(self._sampler), dtype=torch.long, device=device)
        if not self.shuffle:
            return torch.arange(len(self.data), device=device)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.data), generator=generator).to(device)

    def __len__(self) -> int:
        n = len(self.data) // self.world_size if self.world_size > 1 else len(self.data)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Labels]]:
        index = self._indices()
        x, y = self.data.x, self.data.y
        for b in range(len(self)):
            rows = index[b * self.batch_size : (b + 1) * self.batch_size]
            # index_select, not x[rows]: on the CPU advanced indexing takes a slower,
            # general kernel, about 2x the time of this plain row gather (benchmarks/).
            if isinstance(y, Mapping):
                yield x.index_select(0, rows), {k: v.index_select(0, rows) for k, v in y.items()}
            else:
                yield x.index_select(0, rows), y.index_select(0, rows)
        self.epoch += 1


def train_test_split(data: TensorData, test_fraction: float = 0.25, seed: int = 0) -> tuple[TensorData, TensorData]:
    """Split ``data`` into seeded, class-stratified train and test parts.

    Stratifies on ``data.y`` when it is an int64 class vector; otherwise splits at random.
    """
    check_type("data", data, TensorData)
    test_fraction = check_probability("test_fraction", test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    from sklearn.model_selection import train_test_split as sk_split

    index = np.arange(len(data))
    labels = data.y if isinstance(data.y, torch.Tensor) and data.y.dtype == torch.long else None
    stratify = labels.cpu().numpy() if labels is not None else None
    train_idx, test_idx = sk_split(index, test_size=test_fraction, random_state=seed, stratify=stratify)
    return data.subset(torch.from_numpy(np.sort(train_idx))), data.subset(torch.from_numpy(np.sort(test_idx)))


def load_digits(size: int = 16, *, test_fraction: float = 0.25, seed: int = 0) -> tuple[TensorData, TensorData]:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes) as tensors, offline.

    Args:
        size: side length in pixels: 8 (as shipped), 16 or 28 (bilinear upsampling,
            so that deeper networks have room to pool).
        test_fraction: share of each class held out for testing.
        seed: seed of the stratified split.

    Returns:
        ``(train, test)``, each a :class:`TensorData` with ``x`` of shape
        ``(N, 1, size, size)`` in [0, 1] and ``y`` int64 ``(N,)`` in 0..9.
    """
    if size not in (8, 16, 28):
        raise ValueError(f"size={size!r} is not accepted; choose one of: 8, 16, 28")
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    y = torch.tensor(bunch.target, dtype=torch.long)
    return train_test_split(TensorData(x, y), test_fraction=test_fraction, seed=seed)


def class_split(data: TensorData, classes: Sequence[int], *, relabel: bool = True) -> TensorData:
    """Keep only the examples whose class is in ``classes`` (e.g. digits 5-9 as a target task).

    Args:
        data: data with an int64 class vector ``y``.
        classes: the classes to keep, in the order that defines the new labels.
        relabel: map ``classes[i]`` to label ``i`` so that a head of ``len(classes)``
            outputs fits (digits 5..9 become 0..4).
    """
    check_type("data", data, TensorData)
    labels = data.label()
    if labels.dtype != torch.long:
        raise TypeError(f"class_split needs int64 class labels, got dtype {labels.dtype}")
    classes = list(classes)
    if not classes:
        raise ValueError("classes is empty; give the class ids to keep, e.g. [5, 6, 7, 8, 9]")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {classes}")
    present = set(labels.unique().tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"classes {missing} do not occur in the data; it has classes {sorted(present)}")
    keep = torch.isin(labels, torch.tensor(classes, device=labels.device))
    part = data.subset(keep.nonzero().squeeze(1))
    if relabel:
        lookup = torch.full((max(present) + 1,), -1, dtype=torch.long, device=labels.device)
        lookup[torch.tensor(classes, device=labels.device)] = torch.arange(len(classes), device=labels.device)
        part = TensorData(part.x, lookup[part.label()])
    return part


def k_per_class(data: TensorData, k: int, *, seed: int = 0, label: str | None = None) -> TensorData:
    """A seeded, stratified subsample with exactly ``k`` labelled examples per class.

    Args:
        data: data with an int64 class vector (``label`` picks it in multi-label data).
        k: examples per class; every class must have at least ``k``.
        seed: seed of the draw; the same seed gives the same subset.
    """
    check_type("data", data, TensorData)
    k = check_int("k", k, min_value=1)
    labels = data.label(label) if isinstance(data.y, Mapping) else data.label()
    if labels.dtype != torch.long:
        raise TypeError(f"k_per_class needs int64 class labels, got dtype {labels.dtype}")
    classes, counts = labels.unique(return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"k_per_class needs at least 2 classes, got {len(classes)}")
    short = {int(c): int(n) for c, n in zip(classes, counts) if n < k}
    if short:
        raise ValueError(
            f"k={k} is larger than the examples available for some classes "
            f"(class: count) {short}; choose k <= {int(counts.min())}"
        )
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        rows = (labels == c).nonzero().squeeze(1).cpu()
        chosen.append(rows[torch.randperm(len(rows), generator=generator)[:k]])
    return data.subset(torch.sort(torch.cat(chosen)).values.to(labels.device))
