"""Real digits: the MNIST <-> USPS protocol of domain adaptation (chapters 4.1 and 5).

The standard small benchmark of domain adaptation trains on one handwritten-digit
collection and tests on the other. Tzeng et al.'s ADDA paper fixed a protocol that
later papers copied: 2,000 MNIST and 1,800 USPS training images, a LeNet-style network
(:class:`mtl_tl.models.LeNet`) and 28 x 28 pixels. This module loads both data sets
the way that protocol needs (:func:`load_digit_images`), draws the per-seed samples
(:func:`protocol_data`), runs one seed of the methods the book compares
(:func:`run_protocol`) and holds the published numbers to compare with
(:data:`PUBLISHED`).

**The preprocessing trap.** MNIST's digits sit in a 20 x 20 box centred in a 28 x 28
frame; USPS's digits fill their 16 x 16 frame. Blowing USPS up to 28 x 28 therefore
makes its digits about 40% larger than MNIST's: a domain shift made by the loader, not by
the handwriting. ``usps_frame="mnist"`` resizes the 16 x 16 digit to 20 x 20 and pads it
to 28 x 28, as MNIST's digits are framed; ``usps_frame="stretch"`` is the trap.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import pandas as pd
import torch
from torch import nn
from torchvision.transforms import v2

from ._checks import check_choice, check_float, check_frame, check_int, check_type
from .adaptation import train_coral, train_dann
from .config import data_root
from .data import TensorData, k_per_class
from .datasets import to_tensor_data, torchvision_dataset
from .engine import evaluate, fit
from .models import LeNet, linear_head
from .tasks import Task
from .transfer import RECIPES, fine_tune

__all__ = [
    "DIGIT_SETS",
    "USPS_FRAMES",
    "PAIRS",
    "SAMPLE_SIZES",
    "MNIST_POOLS",
    "PROTOCOL_METHODS",
    "PUBLISHED",
    "load_digit_images",
    "protocol_data",
    "run_protocol",
    "beside_published",
]

DIGIT_SETS = ("mnist", "usps")
"""The two digit collections :func:`load_digit_images` reads."""

USPS_FRAMES = ("mnist", "stretch")
"""How USPS's 16 x 16 digits are brought to ``size`` pixels: framed like MNIST's, or stretched."""

PAIRS = ("mnist->usps", "usps->mnist")
"""The two directions of the protocol, ``"source->target"``."""

SAMPLE_SIZES = {"mnist": 2000, "usps": 1800}
"""Training images drawn from each collection per seed (Tzeng et al., 2017)."""

MNIST_POOLS = ("train", "test")
"""Which MNIST split :func:`protocol_data` draws from (see its ``mnist_pool``)."""

PROTOCOL_METHODS = ("source_only", "fine_tune", "dann", "coral")
"""The methods :func:`run_protocol` runs; ``"fine_tune"`` runs each requested recipe."""

PUBLISHED = pd.DataFrame(
    [
        ("mnist->usps", "source_only", 75.2, 1.6, "ADDA protocol (2,000 MNIST, 1,800 USPS)", "tzeng2017adversarial"),
        ("mnist->usps", "dann", 77.1, 1.8, "ADDA protocol (2,000 MNIST, 1,800 USPS)", "tzeng2017adversarial"),
        ("mnist->usps", "adda", 89.4, 0.2, "ADDA protocol (2,000 MNIST, 1,800 USPS)", "tzeng2017adversarial"),
        ("usps->mnist", "source_only", 57.1, 1.7, "ADDA protocol (1,800 USPS, 2,000 MNIST)", "tzeng2017adversarial"),
        ("usps->mnist", "dann", 73.0, 2.0, "ADDA protocol (1,800 USPS, 2,000 MNIST)", "tzeng2017adversarial"),
        ("usps->mnist", "adda", 90.1, 0.8, "ADDA protocol (1,800 USPS, 2,000 MNIST)", "tzeng2017adversarial"),
        ("mnist->usps", "source_only", 82.1, float("nan"), "TLlib benchmark (all training images)", "jiang2020tllib"),
        ("mnist->usps", "dann", 91.7, float("nan"), "TLlib benchmark (all training images)", "jiang2020tllib"),
        ("mnist->usps", "cdan", 96.0, float("nan"), "TLlib benchmark (all training images)", "jiang2020tllib"),
    ],
    columns=["pair", "method", "accuracy", "std", "protocol", "source"],
)
"""Published target test accuracies (%) on MNIST <-> USPS, with their protocol and bib key.

ADDA's numbers (Tzeng et al., 2017, table 2) are mean ± std over runs; "dann" is their
"gradient reversal" row. TLlib's (Jiang et al., Transfer-Learning-Library, digits
benchmark) use all training images and report no spread (``std`` is NaN).
"""


@lru_cache(maxsize=8)
def _native(name: str, train: bool, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    # Read once per process: decoding 10,000 images through PIL takes seconds.
    data = to_tensor_data(torchvision_dataset(name, root, train=train, download=download))
    return data.x, data.y


def _resize(name: str, x: torch.Tensor, size: int, usps_frame: str) -> torch.Tensor:
    """``(N, 1, h, w) -> (N, 1, size, size)``; USPS framed as MNIST (20/28 of the side) or stretched."""
    if name == "mnist" or usps_frame == "stretch":
        return x if x.shape[-1] == size else v2.Resize((size, size), antialias=True)(x)
    inner = round(size * 20 / 28)  # MNIST's digits fill a 20 x 20 box centred in 28 x 28
    before = (size - inner) // 2
    framed = v2.Compose([v2.Resize((inner, inner), antialias=True),
                         v2.Pad([before, before, size - inner - before, size - inner - before])])
    return framed(x)


def load_digit_images(
    name: str,
    *,
    train: bool,
    root: Union[str, Path, None] = None,
    size: int = 28,
    usps_frame: str = "mnist",
    limit: int | None = None,
    download: bool = True,
) -> TensorData:
    """MNIST or USPS in memory, at ``size`` x ``size`` pixels, with the protocol's framing.

    Args:
        name: ``"mnist"`` or ``"usps"``.
        train: the training split, else the test split.
        root: the data folder; ``None``: :func:`mtl_tl.config.data_root`.
        size: side of the returned images (28 in the protocol; 16 is USPS's own).
        usps_frame: USPS only: ``"mnist"`` resizes the 16 x 16 digit to 20/28 of ``size``
            and pads it, as MNIST frames its digits; ``"stretch"`` resizes it to fill the
            frame, which makes USPS's digits larger than MNIST's (a shift made by accident).
        limit: keep the first ``limit`` images (``None``: all).
        download: fetch missing files (needs internet once).

    Returns:
        ``TensorData`` with ``x`` float32 ``(N, 1, size, size)`` in [0, 1] and ``y``
        int64 ``(N,)`` in 0..9.
    """
    name = check_choice("name", name, DIGIT_SETS)
    check_type("train", train, bool)
    folder = data_root(root)
    size = check_int("size", size, min_value=16)
    usps_frame = check_choice("usps_frame", usps_frame, USPS_FRAMES)
    if limit is not None:
        check_int("limit", limit, min_value=1)
    check_type("download", download, bool)
    x, y = _native(name, train, str(folder), download)
    x, y = x[:limit], y[:limit]
    return TensorData(_resize(name, x, size, usps_frame).clamp(0, 1), y.clone())


def _draw(data: TensorData, n: int, seed: int) -> TensorData:
    if n > len(data):
        raise ValueError(f"the protocol draws {n} images but only {len(data)} are available")
    return data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n])


def _mnist_splits(mnist_pool: str, kwargs: dict[str, Any]) -> tuple[TensorData, TensorData]:
    """MNIST's (pool, evaluation) images; with ``mnist_pool="test"``, two disjoint halves of the test split."""
    test = load_digit_images("mnist", train=False, **kwargs)
    if mnist_pool == "train":
        return load_digit_images("mnist", train=True, **kwargs), test
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))  # fixed: the same halves always
    half = len(test) // 2
    return test.subset(order[:half]), test.subset(order[half:])


def protocol_data(
    pair: str,
    seed: int,
    *,
    root: Union[str, Path, None] = None,
    mnist_pool: str = "train",
    size: int = 28,
    usps_frame: str = "mnist",
    download: bool = True,
) -> dict[str, TensorData]:
    """The data of one seed of the MNIST <-> USPS protocol (Tzeng et al., 2017).

    Draws, with ``seed``, 2,000 MNIST and 1,800 USPS training images
    (:data:`SAMPLE_SIZES`): the labelled source sample and the target sample whose
    images domain adaptation sees without labels (and from which fine-tuning draws its
    ``k`` labels per class). Evaluation uses the target's test split.

    Args:
        pair: ``"mnist->usps"`` or ``"usps->mnist"`` (:data:`PAIRS`).
        seed: seed of the draws.
        root: the data folder; ``None``: :func:`mtl_tl.config.data_root`.
        mnist_pool: ``"train"``, the protocol; or ``"test"`` where only MNIST's test
            files are at hand: the 10,000 test images are split once into two fixed,
            disjoint halves, the first standing in for the training split (the pool the
            samples are drawn from), the second the evaluation set. Say so when you
            report the numbers.
        size, usps_frame, download: as for :func:`load_digit_images`.

    Returns:
        ``{"source": TensorData, "target": TensorData, "target_test": TensorData}``,
        images ``(N, 1, size, size)``; with USPS as the target and ``usps_frame="mnist"``
        also ``"target_test_stretched"``, the same USPS test images stretched to fill the frame.
    """
    pair = check_choice("pair", pair, PAIRS)
    seed = check_int("seed", seed, min_value=0)
    mnist_pool = check_choice("mnist_pool", mnist_pool, MNIST_POOLS)
    kwargs = dict(root=root, size=size, usps_frame=usps_frame, download=download)
    mnist_train, mnist_test = _mnist_splits(mnist_pool, kwargs)
    pools = {"mnist": (mnist_train, mnist_test),
             "usps": (load_digit_images("usps", train=True, **kwargs), load_digit_images("usps", train=False, **kwargs))}
    source, target = pair.split("->")
    data = {
        "source": _draw(pools[source][0], SAMPLE_SIZES[source], seed),
        "target": _draw(pools[target][0], SAMPLE_SIZES[target], seed + 1),
        "target_test": pools[target][1],
    }
    if target == "usps" and usps_frame == "mnist":  # the trap, measured on the same test images
        data["target_test_stretched"] = load_digit_images("usps", train=False, **{**kwargs, "usps_frame": "stretch"})
    return data


def _accuracy(trunk: nn.Module, head: nn.Module, data: TensorData) -> float:
    return evaluate(trunk, Task("scored", head, test=data))["scored"]["metric"]


def _adapted(method: str, data: dict[str, TensorData], seed: int, fit_kwargs: dict[str, Any],
             epochs: int, coral_lam: float, dann_kwargs: dict[str, Any]) -> float:
    """Target test accuracy of a fresh LeNet trained with DANN or CORAL on the source and the target images."""
    torch.manual_seed(seed)
    trunk = LeNet(size=data["source"].x.shape[-1])
    task = Task("source", linear_head(trunk.out_features, 10), train=data["source"])
    if method == "dann":
        # The protocol trains every method alike (Adam at a constant rate, fit's default),
        # not with train_dann's SGD recipe of chapter 5; an epoch is one pass over the source.
        dann_kwargs = {"optimizer": "adam", "anneal": False, **dann_kwargs}
        train_dann(trunk, task, data["target"].x, epochs=epochs, seed=seed, **{**fit_kwargs, **dann_kwargs})
    else:
        train_coral(trunk, task, data["target"].x, lam=coral_lam, epochs=epochs, seed=seed, **fit_kwargs)
    return _accuracy(trunk, task.head, data["target_test"])


def _fine_tuned(trunk: nn.Module, data: dict[str, TensorData], recipe: str, k: int, seed: int,
                steps: int, lr: float, fit_kwargs: dict[str, Any]) -> float:
    """Target test accuracy of a copy of ``trunk`` fine-tuned with ``k`` target labels per class and a new head."""
    trunk = copy.deepcopy(trunk)
    torch.manual_seed(seed)
    task = Task("target", linear_head(trunk.out_features, 10), train=k_per_class(data["target"], k, seed=seed))
    batch_size = min(fit_kwargs.get("batch_size", 64), 10 * k)
    fine_tune(trunk, task, recipe=recipe, epochs=1, seed=seed,
              **{**fit_kwargs, "lr": lr, "batch_size": batch_size, "steps_per_epoch": steps})
    return _accuracy(trunk, task.head, data["target_test"])


def run_protocol(
    seed: int,
    data: dict[str, TensorData],
    *,
    methods: tuple[str, ...] = PROTOCOL_METHODS,
    epochs: int = 20,
    lr: float = 1e-3,
    k: int = 1,
    recipes: dict[str, float] | None = None,
    fine_tune_steps: int = 100,
    coral_lam: float = 1.0,
    dann_kwargs: dict[str, Any] | None = None,
    **fit_kwargs: Any,
) -> dict[str, float]:
    """One seed of the protocol: each method's accuracy (fraction) on the target's test images.

    ``"source_only"`` trains a LeNet and a head on the source sample for ``epochs`` and
    tests them on the target as they are (no target data at all). ``"fine_tune"``
    copies that trained trunk and, for each recipe, fine-tunes it with ``k`` labelled
    target images per class and a new head (``fine_tune_steps`` steps). ``"dann"`` and
    ``"coral"`` train a fresh LeNet with :func:`~mtl_tl.adaptation.train_dann` and
    :func:`~mtl_tl.adaptation.train_coral` on the source sample and the target's images
    (no labels), as many steps as source only with its optimizer (Adam, constant ``lr``).

    Args:
        seed: seed of weights, batches and the ``k``-label draw (draw ``data`` with it too).
        data: :func:`protocol_data`'s ``{"source", "target", "target_test"}``.
        methods: a subset of :data:`PROTOCOL_METHODS` (``"fine_tune"`` needs ``"source_only"``).
        epochs, lr: passes over the source sample and Adam's rate, for source only, DANN, CORAL.
        k: labelled target images per class for fine-tuning.
        recipes: ``{recipe: learning rate}``; default ``{"feature_extraction": 1e-2, "full": 1e-3}``.
        fine_tune_steps: optimisation steps of each fine-tuning run.
        coral_lam: weight of the CORAL loss.
        dann_kwargs: ``train_dann``'s own (``hidden``; ``optimizer="sgd", anneal=True``: chapter 5's).
        **fit_kwargs: passed to every :func:`~mtl_tl.engine.fit` (``batch_size``, ``device``, ...).

    Returns:
        ``{"source_only": ..., "fine_tune_<recipe>": ..., "dann": ..., "coral": ...}``
        for the methods run; with USPS as the target and ``"source_only"``, also
        ``"source_only_stretched"``: the same source model on USPS test images stretched
        to fill the frame (the preprocessing trap).
    """
    seed = check_int("seed", seed, min_value=0)
    recipes = _check_protocol_args(data, methods, recipes)
    fit_kwargs = {"progress": False, **fit_kwargs, "lr": check_float("lr", lr, min_value=0.0, strict_min=True)}
    out: dict[str, float] = {}
    if "source_only" in methods:
        torch.manual_seed(seed)
        trunk = LeNet(size=data["source"].x.shape[-1])
        task = Task("source", linear_head(trunk.out_features, 10), train=data["source"])
        fit(trunk, task, epochs=epochs, seed=seed, **fit_kwargs)
        out["source_only"] = _accuracy(trunk, task.head, data["target_test"])
        if "target_test_stretched" in data:
            out["source_only_stretched"] = _accuracy(trunk, task.head, data["target_test_stretched"])
        for recipe, rate in recipes.items() if "fine_tune" in methods else ():
            out[f"fine_tune_{recipe}"] = _fine_tuned(trunk, data, recipe, k, seed, fine_tune_steps, rate, fit_kwargs)
    for method in ("dann", "coral"):
        if method in methods:
            out[method] = _adapted(method, data, seed, fit_kwargs, epochs, coral_lam, dann_kwargs or {})
    return out


def _check_protocol_args(data: Any, methods: Any, recipes: dict[str, float] | None) -> dict[str, float]:
    """:func:`run_protocol`'s door; returns the recipes with their learning rates."""
    needed = ("source", "target", "target_test")
    if not isinstance(data, dict) or any(not isinstance(data.get(key), TensorData) for key in needed):
        raise TypeError(f"data must be protocol_data's dict of TensorData with keys {needed}, got {data!r:.80}")
    unknown = [m for m in methods if m not in PROTOCOL_METHODS] if isinstance(methods, (tuple, list)) else [methods]
    if unknown or not methods or ("fine_tune" in methods and "source_only" not in methods):
        raise ValueError(f"methods must be a non-empty subset of {PROTOCOL_METHODS} ('fine_tune' needs "
                         f"'source_only'), got {methods!r:.120}")
    recipes = {"feature_extraction": 1e-2, "full": 1e-3} if recipes is None else dict(recipes)
    for recipe, rate in recipes.items():
        check_choice("recipe", recipe, RECIPES)
        check_float(f"recipes[{recipe!r}]", rate, min_value=0.0, strict_min=True)
    return recipes


def beside_published(results: pd.DataFrame, pair: str) -> pd.DataFrame:
    """Our accuracies beside the published ones (%), one row per method (chapter 4.1).

    Args:
        results: :func:`mtl_tl.experiments.run_seeds` over :func:`run_protocol` for ``pair``
            (columns ``metric`` and ``value``, one row per seed and metric).
        pair: ``"mnist->usps"`` or ``"usps->mnist"``.

    Returns:
        A ``DataFrame`` indexed by method: ``"ours"`` (mean ± std over seeds, in %) and one
        column per published protocol of :data:`PUBLISHED`, headed with its bib key;
        empty where a source did not report a method.
    """
    pair = check_choice("pair", pair, PAIRS)
    check_frame("results", results, ["metric", "value"])
    ours = results.groupby("metric", sort=False)["value"].agg(["mean", "std"]) * 100
    rows: dict[str, dict[str, str]] = {m: {"ours": f"{r['mean']:.1f} ± {r['std']:.1f}"} for m, r in ours.iterrows()}
    for _, row in PUBLISHED[PUBLISHED["pair"] == pair].iterrows():
        spread = "" if pd.isna(row["std"]) else f" ± {row['std']:.1f}"
        rows.setdefault(row["method"], {})[f"{row['protocol']} [{row['source']}]"] = f"{row['accuracy']:.1f}{spread}"
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")
