"""Real images through torchvision: the full profile's datasets and your own folders.

Chapter 4.1's code (the article's section 4.1) loads a source and a target
``ImageFolder`` with augmentation transforms. This module does the same, with the
steps the article left out and checks that make a badly laid out folder, a broken
file or a validation folder whose classes differ from the training folder's fail
at once, by name, instead of silently or mid-training. It also wraps the
torchvision datasets that the full profile uses (MNIST, USPS, SVHN, CIFAR-10,
Fashion-MNIST) so that a machine without internet gets a message saying what to do,
and which files are missing where, instead of a stack trace. Files are read from (and
downloaded to) :func:`mtl_tl.config.data_root`: ``$MTL_TL_DATA``, else ``./data``.
The quick profile (``MTL_TL_PROFILE=quick``) needs none of this: its data is generated
or ships with scikit-learn.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2

from ._checks import check_choice, check_float, check_int, check_type
from ._folders import (
    BACKGROUND,
    IMAGE_EXTENSIONS,
    appledouble_files,
    class_folders,
    class_mismatch,
    is_image_file,
    rgb_loader,
    unreadable_files,
)
from .config import data_root
from .data import TensorData

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DATASETS",
    "DatasetUnavailableError",
    "IMAGE_EXTENSIONS",
    "BACKGROUND",
    "image_transforms",
    "rgb_loader",
    "image_folder",
    "image_folders",
    "torchvision_dataset",
    "to_tensor_data",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet, which the ImageNet-pretrained ResNet-18 expects."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet."""

DATASETS = ("mnist", "usps", "svhn", "cifar10", "fashion_mnist")
"""Names accepted by :func:`torchvision_dataset`."""

_NATIVE_CHANNELS = {"mnist": 1, "usps": 1, "fashion_mnist": 1, "svhn": 3, "cifar10": 3}

_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The files each torchvision class reads under root, by split; "(.gz)" marks files that
# torchvision extracts from the archive of the same name (it then reads the extracted one).
_FILES = {
    "mnist": {split: [f"MNIST/raw/{f}(.gz)" for f in _IDX] for split in (True, False)},
    "fashion_mnist": {split: [f"FashionMNIST/raw/{f}(.gz)" for f in _IDX] for split in (True, False)},
    "usps": {True: ["usps.bz2"], False: ["usps.t.bz2"]},
    "svhn": {True: ["train_32x32.mat"], False: ["test_32x32.mat"]},
    # CIFAR-10 checks all its batches, whichever split is asked for.
    "cifar10": {split: ["cifar-10-batches-py/batches.meta", "cifar-10-batches-py/test_batch",
                        *(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))] for split in (True, False)},
}


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable (typically: no internet)."""


def _check_stats(name: str, value: Sequence[float]) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) not in (1, 3):
        raise TypeError(f"{name} must be a sequence of 1 or 3 numbers (one per channel), got {value!r:.80}")
    return tuple(check_float(f"{name}[{i}]", v) for i, v in enumerate(value))


def image_transforms(
    size: int = 224,
    *,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """The image pipeline of chapter 4.1: PIL image -> normalised float tensor ``(C, size, size)``.

    The article's transforms (``RandomHorizontalFlip``, ``RandomCrop``,
    ``RandomResizedCrop``, ``ColorJitter``) only augment: they leave a PIL image, which
    a ``DataLoader`` cannot batch and a network cannot take, and they never normalise
    with the statistics that ImageNet-pretrained weights were trained with. Here the
    augmentation is followed by the three missing steps: ``v2.ToImage()`` (PIL ->
    uint8 tensor), ``v2.ToDtype(torch.float32, scale=True)`` (-> floats in [0, 1]) and
    ``v2.Normalize(mean, std)``.

    Args:
        size: side length of the output images.
        train: ``True``: random resized crop and horizontal flip (augmentation);
            ``False``: resize the short side to ``size / 0.875`` and take the centre
            crop, the usual deterministic evaluation pipeline.
        mean, std: per-channel statistics (1 or 3 numbers each) to normalise with.

    Returns:
        A ``torchvision.transforms.v2.Compose`` mapping a PIL image or a tensor image to
        a float32 tensor ``(C, size, size)``.
    """
    size = check_int("size", size, min_value=8)
    check_type("train", train, bool)
    mean, std = _check_stats("mean", mean), _check_stats("std", std)
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    if train:
        geometry = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        geometry = [v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)]
    return v2.Compose(
        [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )


def _check_classes(classes: Sequence[str] | None) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not all(
        isinstance(c, str) for c in classes
    ):
        raise TypeError(
            f"classes must be a sequence of str (e.g. train_set.classes) or None, got {classes!r:.80}"
        )
    return list(classes)


def _check_callable(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}: {value!r:.80}")


def _warn_appledouble(root: Union[str, Path], path: Path) -> None:
    ignored = appledouble_files(path)
    if ignored:  # Finder metadata that ends in .jpg: ImageFolder would read it as an image, and fail
        warnings.warn(
            f"image_folder skipped {len(ignored)} macOS metadata file(s) named '._<name>' under '{root}' "
            f"(e.g. '{ignored[0].relative_to(path)}'): they end in an image extension but are not images",
            stacklevel=3,
        )


def _check_files(root: Union[str, Path], samples: list[tuple[str, int]], loader: Callable | None) -> None:
    bad = unreadable_files([path for path, _ in samples], loader)
    if bad:
        shown = "; ".join(f"'{os.path.relpath(path, root)}' ({reason[:120]})" for path, reason in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"root '{root}' has {len(bad)} image file(s) that cannot be loaded: {shown}{more}. Delete or "
            "re-export them; check_files=False skips this check, and training then stops at the "
            "first batch that holds one"
        )


def image_folder(
    root: Union[str, Path],
    *,
    train: bool,
    size: int = 224,
    classes: Sequence[str] | None = None,
    transform: Callable | None = None,
    loader: Callable[[str], Any] | None = None,
    check_files: bool = True,
) -> tv_datasets.ImageFolder:
    """Your own images, one sub-folder per class, as a dataset (chapter 4.1).

    Expects ``root/<class_name>/<image>.jpg`` (or ``.png``, ...: ``IMAGE_EXTENSIONS``).
    Classes are numbered in sorted order of their folder names, case-sensitive (``'Bees'``
    before ``'ants'``): see ``.classes``. Raises ``ValueError``, saying what to do, on a
    root not laid out so (split folders such as ``train/`` taken for classes, class
    folders holding class folders or no images, fewer than 2 classes), on classes other
    than ``classes=``, and with ``check_files`` on any file that cannot be loaded. macOS
    ``._<name>`` files are skipped, with a warning. For train/ and val/: :func:`image_folders`.

    Args:
        root: the folder that holds one sub-folder per class.
        train: use the augmenting training transforms, else the evaluation ones
            (see :func:`image_transforms`).
        size: side length of the images the dataset returns.
        classes: the class names this folder must have, in order; pass the training set's
            ``.classes`` when building the validation set, so that label ``i`` means the
            same class in both. ``None``: no check.
        transform: your own pipeline (PIL image -> tensor) instead of
            ``image_transforms(size, train=train)``; ``size`` is then unused.
        loader: your own ``path -> image`` function instead of :func:`rgb_loader`.
        check_files: load every file once now, naming the ones that fail (about 1-2 ms per
            photo-sized JPEG); ``False`` skips this for very large trees.

    Returns:
        A ``torchvision.datasets.ImageFolder`` whose items are
        ``(float32 tensor (3, size, size), int class index)`` with the default transform,
        and whose ``.classes`` lists the class names by index.
    """
    check_type("root", root, (str, Path))
    check_type("train", train, bool)
    size = check_int("size", size, min_value=8)
    expected = _check_classes(classes)
    _check_callable("transform", transform)
    _check_callable("loader", loader)
    check_type("check_files", check_files, bool)
    transform = image_transforms(size, train=train) if transform is None else transform
    path = Path(root)
    found = class_folders(path)
    names = ("classes=", f"root '{root}'")
    problem = None if expected is None else class_mismatch(expected, found, names=names)
    if problem:
        raise ValueError(f"{problem}. Give both folders the same class folders (e.g. rename them)")
    _warn_appledouble(root, path)
    reader = rgb_loader if loader is None else loader
    dataset = tv_datasets.ImageFolder(str(path), transform=transform, loader=reader, is_valid_file=is_image_file)
    if check_files:
        _check_files(root, dataset.samples, loader)
    return dataset


def image_folders(
    root: Union[str, Path],
    *,
    size: int = 224,
    val: str = "val",
    loader: Callable[[str], Any] | None = None,
    check_files: bool = True,
) -> tuple[tv_datasets.ImageFolder, tv_datasets.ImageFolder]:
    """A training and a validation set whose labels agree: ``root/train/`` and ``root/val/``.

    Expects ``root/train/<class_name>/<image>.jpg`` and ``root/val/<class_name>/<image>.jpg``
    (see :func:`image_folder`). Before loading any image it checks both layouts and that
    both folders hold the same class names, letter case included: ``ImageFolder`` numbers
    each folder's classes by sorted name, so ``val/Bees`` next to ``train/bees``, or a class
    in one folder only, would give the validation images other labels than the training
    ones. The error lists the names that differ.

    Args:
        root: the folder that holds ``train/`` and the validation folder.
        size: side length of the images both datasets return.
        val: name of the validation folder under ``root`` (e.g. ``"valid"`` or ``"test"``).
        loader, check_files: as for :func:`image_folder`.

    Returns:
        ``(train_set, val_set)``: ``ImageFolder`` datasets with the training
        (augmenting) and the evaluation transforms of :func:`image_transforms`; items
        ``(float32 tensor (3, size, size), int class index)``. Their ``.classes`` are equal,
        and ``len(train_set.classes)`` is the number of outputs the head needs.
    """
    check_type("root", root, (str, Path))
    check_int("size", size, min_value=8)
    check_type("val", val, str)
    _check_callable("loader", loader)
    check_type("check_files", check_files, bool)
    if val in ("", ".", "..", "train") or Path(val).name != val:
        raise ValueError(f"val must name a folder directly under root, other than 'train', got {val!r}")
    path = Path(root)
    layout = f"image_folders expects root/train/<class_name>/<image> and root/{val}/<class_name>/<image>"
    if not path.is_dir():
        raise ValueError(f"root '{root}' is not an existing folder; {layout}")
    missing = [name for name in ("train", val) if not (path / name).is_dir()]
    if missing:
        held = ", ".join(sorted(repr(d.name) for d in path.iterdir() if d.is_dir())) or "no folders"
        raise ValueError(
            f"root '{root}' has no {' or '.join(map(repr, missing))} folder (it holds {held}); {layout}"
        )
    train_classes = class_folders(path / "train", "train folder")
    problem = class_mismatch(train_classes, class_folders(path / val, f"{val} folder"), names=("train", val))
    if problem:
        raise ValueError(f"root '{root}': {problem}. Rename class folders so that both hold the same names")
    train_set = image_folder(path / "train", train=True, size=size, loader=loader, check_files=check_files)
    val_set = image_folder(
        path / val, train=False, size=size, classes=train_set.classes, loader=loader, check_files=check_files
    )
    return train_set, val_set


def _constructor(name: str, root: str, train: bool, download: bool, transform: v2.Compose) -> Dataset:
    if name == "svhn":  # SVHN names its splits instead of taking train=
        split = "train" if train else "test"
        return tv_datasets.SVHN(root, split=split, download=download, transform=transform)
    cls = {
        "mnist": tv_datasets.MNIST,
        "usps": tv_datasets.USPS,
        "cifar10": tv_datasets.CIFAR10,
        "fashion_mnist": tv_datasets.FashionMNIST,
    }[name]
    return cls(root, train=train, download=download, transform=transform)


def _inventory(name: str, root: Path, train: bool) -> str:
    """Which of the files torchvision reads for ``name`` are under ``root``, and which are not."""
    found, missing = [], []
    for pattern in _FILES[name][train]:
        plain = pattern.removesuffix("(.gz)")
        if (root / plain).is_file():
            found.append(plain)
        elif pattern != plain and (root / f"{plain}.gz").is_file():
            found.append(f"{plain}.gz (compressed: download=True extracts it, once all four files are there)")
        else:
            missing.append(pattern)
    listing = f"found {', '.join(found) or 'none of them'}; missing {', '.join(missing) or 'none'}"
    note = " (torchvision's MNIST needs the training files even for the test split)" if (
        name in ("mnist", "fashion_mnist") and not train) else ""
    return f"torchvision looks for these files under '{root}'{note}: {listing}"


def torchvision_dataset(
    name: str,
    root: Union[str, Path, None] = None,
    *,
    train: bool,
    download: bool = True,
    size: int | None = None,
    channels: int | None = None,
) -> Dataset:
    """A torchvision dataset with images as float tensors in [0, 1] (full profile, chapter 4.1).

    Args:
        name: one of :data:`DATASETS` (``"mnist"``, ``"usps"``, ``"svhn"``, ``"cifar10"``,
            ``"fashion_mnist"``).
        root: folder the files are read from (and downloaded to); ``None``:
            :func:`mtl_tl.config.data_root` (``$MTL_TL_DATA``, else ``./data``).
        train: the training split, else the test split.
        download: fetch the files if they are not in ``root`` (needs internet once).
        size: resize images to ``size x size`` (e.g. 28 to pair USPS's 16 px with MNIST).
        channels: 1 or 3 to convert (grey -> 3 equal channels, or RGB -> grey), e.g. to
            pair MNIST with SVHN; ``None`` keeps the dataset's own.

    Returns:
        A dataset whose items are ``(float32 tensor (C, H, W) in [0, 1], int label)``.
        No normalisation, so :func:`to_tensor_data` gives the book's conventions.

    Raises:
        DatasetUnavailableError: the files are not in ``root`` and could not be
            downloaded; the message lists the files torchvision looked for, which of
            them it found, and how to get the others.
    """
    name = check_choice("name", name, DATASETS)
    root = data_root(root)
    check_type("train", train, bool)
    check_type("download", download, bool)
    steps: list = [v2.ToImage()]
    if channels is not None:
        channels = check_int("channels", channels, min_value=1, max_value=3)
        if channels == 2:
            raise ValueError("channels=2 is not accepted; choose 1 (grey), 3 (RGB) or None")
        if channels != _NATIVE_CHANNELS[name]:
            steps.append(v2.Grayscale(num_output_channels=channels))
    if size is not None:
        size = check_int("size", size, min_value=8)
        steps.append(v2.Resize((size, size), antialias=True))
    steps.append(v2.ToDtype(torch.float32, scale=True))

    try:
        return _constructor(name, str(root), train, download, v2.Compose(steps))
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        how = "downloading it failed" if download else "download=False was given"
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available in root '{root}' ({how}: {str(err).strip()[:300]}). "
            f"{_inventory(name, root, train)}. "
            "Downloading needs internet access. To fix: run this once on a machine with internet "
            f"(download=True) and copy '{root}' here; or put the files torchvision expects into "
            f"'{root}'; or use the quick profile (MTL_TL_PROFILE=quick), which needs no download."
        ) from err


def to_tensor_data(dataset: Dataset, *, limit: int | None = None, batch_size: int = 512) -> TensorData:
    """Load a (small) dataset into memory as one :class:`~mtl_tl.data.TensorData`.

    Tensors in memory can move to the GPU once and be batched by
    :class:`mtl_tl.data.TensorLoader` with no per-image Python work (chapter 4.1).

    Args:
        dataset: items ``(image tensor (C, H, W), int label)``, e.g. from
            :func:`torchvision_dataset`.
        limit: keep only the first ``limit`` items (``None``: all).
        batch_size: items read per step while loading.

    Returns:
        ``TensorData`` with ``x`` float32 ``(N, C, H, W)`` and ``y`` int64 ``(N,)``.
    """
    check_type("dataset", dataset, Dataset)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("dataset is empty")
    if limit is not None:
        n = min(n, check_int("limit", limit, min_value=1))
    first = dataset[0]
    if not (isinstance(first, (tuple, list)) and len(first) == 2 and isinstance(first[0], torch.Tensor)):
        got = type(first[0]).__name__ if isinstance(first, (tuple, list)) else type(first).__name__
        raise TypeError(
            f"dataset must yield (image tensor, label) pairs, got {got} items; give it a "
            "transform that ends in v2.ToImage() and v2.ToDtype(torch.float32, scale=True)"
        )
    if first[0].ndim != 3 or not first[0].is_floating_point():
        raise TypeError(
            f"dataset images must be float tensors (C, H, W), got dtype {first[0].dtype} "
            f"and shape {tuple(first[0].shape)}"
        )
    xs, ys = [], []
    for x, y in DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    labels = torch.cat(ys)
    if labels.is_floating_point() or labels.ndim != 1:
        raise TypeError(f"dataset labels must be int class indices, got dtype {labels.dtype}")
    return TensorData(torch.cat(xs).float(), labels.long())
