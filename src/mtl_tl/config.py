"""Profiles, devices and seeds: the one setup call every notebook makes first.

Two profiles run the same code:

* ``quick`` (default): small data the code makes or scikit-learn ships, small CNNs,
  few epochs. Runs offline on a laptop CPU; every notebook finishes in about a minute.
* ``full``: more data, more seeds and epochs, torchvision datasets and ImageNet
  weights (downloaded on first use). Meant for a GPU, e.g. Colab.

Choose with the environment variable ``MTL_TL_PROFILE`` or ``setup(profile=...)``.
The device is chosen as ``cuda``, then ``mps``, then ``cpu`` unless ``MTL_TL_DEVICE``
or an argument says otherwise (chapter 1, "How to run this book").

Every seed in the book derives from one *seed base*, ``MTL_TL_SEED_BASE`` (default 0):
``setup()`` seeds everything with it and ``Setup.seeds(n)`` lists the ``n`` seeds a
notebook repeats its runs over. ``make robust`` runs every notebook again with another
base, so that no claim rests on the particular seeds it was written with.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._checks import check_int

__all__ = [
    "PROFILES",
    "DEVICES",
    "Setup",
    "get_profile",
    "get_device",
    "get_seed_base",
    "seed_everything",
    "quiet",
    "in_colab",
    "data_root",
    "setup",
]

PROFILES = ("quick", "full")
"""The profiles every notebook runs in (``MTL_TL_PROFILE``)."""

DEVICES = ("cpu", "cuda", "mps")
"""The device types :func:`get_device` accepts (``MTL_TL_DEVICE``)."""


def get_profile(profile: str | None = None) -> str:
    """The profile to run: ``profile`` if given, else ``$MTL_TL_PROFILE``, else ``"quick"``."""
    source = "profile"
    if profile is None:
        profile = os.environ.get("MTL_TL_PROFILE", "quick")
        source = "MTL_TL_PROFILE"
    value = profile.strip().lower() if isinstance(profile, str) else profile
    if value not in PROFILES:
        raise ValueError(f"{source}={profile!r} is not accepted; choose one of: {', '.join(PROFILES)}")
    return value


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``; when
            ``None``, ``$MTL_TL_DEVICE`` if set, else the first of cuda, mps, cpu available.

    Raises:
        ValueError: for an unknown device name, or one this machine does not have.
    """
    source = "device"
    if device is None:
        device = os.environ.get("MTL_TL_DEVICE") or None
        source = "MTL_TL_DEVICE"
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, str):
        try:
            device = torch.device(device.strip().lower())
        except RuntimeError:
            raise ValueError(
                f"{source}={device!r} is not a device; choose one of: {', '.join(DEVICES)}"
            ) from None
    if not isinstance(device, torch.device):
        raise TypeError(f"{source} must be a str or torch.device, got {type(device).__name__}")
    if device.type not in DEVICES:
        raise ValueError(f"{source}={str(device)!r} is not accepted; choose one of: {', '.join(DEVICES)}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{source}={str(device)!r} was requested but CUDA is not available on this machine "
                "(no NVIDIA GPU or a CPU-only PyTorch); use 'cpu', or on Colab choose "
                "Runtime > Change runtime type > GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"{source}={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"{source}={str(device)!r} was requested but Apple MPS is not available here; use 'cpu'")
    return device


def get_seed_base() -> int:
    """``$MTL_TL_SEED_BASE`` as an int >= 0 (default 0): where every seed list of the book starts."""
    raw = os.environ.get("MTL_TL_SEED_BASE", "0").strip()
    if not raw.isdigit():
        raise ValueError(f"MTL_TL_SEED_BASE={raw!r} is not accepted; give an integer >= 0, e.g. 1000")
    return check_int("MTL_TL_SEED_BASE", int(raw), min_value=0, max_value=2**32 - 1 - 10_000)


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a run repeats exactly on CPU.

    Returns the seed, so that a notebook can print what it used.
    """
    seed = check_int("seed", seed, min_value=0, max_value=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def quiet() -> bool:
    """True under tests and CI, or when ``MTL_TL_QUIET=1``: progress bars stay silent."""
    flag = os.environ.get("MTL_TL_QUIET")
    if flag is not None:
        return flag.strip().lower() not in ("", "0", "false", "no")
    return bool(os.environ.get("CI") or os.environ.get("PYTEST_CURRENT_TEST") or "nbmake" in sys.modules)


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def data_root(root: str | Path | None = None) -> Path:
    """The folder datasets are read from and downloaded to (full profile, chapters 4.1 and 5).

    ``root`` if given, else ``$MTL_TL_DATA``, else ``./data`` relative to the working
    directory (next to the notebook that runs). Point ``MTL_TL_DATA`` at one shared copy
    and every notebook of a class reads the same files instead of downloading its own.
    The folder need not exist yet: a download creates it.

    Returns:
        The folder as a ``pathlib.Path`` (not resolved, not created).
    """
    if root is None:
        raw = os.environ.get("MTL_TL_DATA", "").strip()
        return Path(raw) if raw else Path("data")
    if not isinstance(root, (str, Path)):
        raise TypeError(
            f"root must be a str or pathlib.Path (the data folder), or None for $MTL_TL_DATA "
            f"or ./data; got {type(root).__name__}: {root!r:.80}"
        )
    if not str(root).strip():
        raise ValueError("root is an empty string; give a folder, or None for $MTL_TL_DATA or ./data")
    return Path(root)


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` chose: the profile, the device and the seed."""

    profile: str
    device: torch.device
    seed: int

    def seeds(self, n: int) -> list[int]:
        """The ``n`` seeds to repeat a run over: ``seed, seed + 1, ...`` from the seed base."""
        return list(range(self.seed, self.seed + check_int("n", n, min_value=1)))

    @property
    def quick(self) -> bool:
        """True in the quick (CPU, offline) profile."""
        return self.profile == "quick"

    def pick(self, quick, full):  # noqa: ANN001, ANN201 - any value type
        """``quick`` in the quick profile, ``full`` in the full one (sizes, epochs, seeds)."""
        return quick if self.quick else full

    def __str__(self) -> str:
        return (
            f"mtl_tl: profile={self.profile}, device={self.device}, seed={self.seed}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        )


def _threads(threads: int | None, profile: str, device: torch.device) -> int | None:
    source = "threads"
    if threads is None and os.environ.get("MTL_TL_THREADS"):
        source, raw = "MTL_TL_THREADS", os.environ["MTL_TL_THREADS"]
        if not raw.strip().isdigit():
            raise ValueError(f"MTL_TL_THREADS={raw!r} is not accepted; give a positive integer")
        threads = int(raw)
    if threads is None:
        # The quick profile's models are so small that a second CPU thread buys little,
        # and on a busy machine (a laptop running a browser, a shared 2-core VM) the
        # threads' spin-waiting can make each step ten times slower. One thread is
        # predictable; MTL_TL_THREADS or threads= overrides it.
        return 1 if (profile == "quick" and device.type == "cpu") else None
    return check_int(source, threads, min_value=1)


def setup(
    profile: str | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    threads: int | None = None,
) -> Setup:
    """The first code cell of every notebook: choose profile and device, seed everything.

    Args:
        profile: ``"quick"`` or ``"full"``; default ``$MTL_TL_PROFILE`` or quick.
        device: see :func:`get_device`.
        seed: seeds Python, NumPy and PyTorch; default :func:`get_seed_base`
            (``$MTL_TL_SEED_BASE``, else 0). :meth:`Setup.seeds` counts from it.
        threads: CPU threads for PyTorch; default ``$MTL_TL_THREADS``, else 1 in the
            quick profile on a CPU (the book's small models run best that way) and
            PyTorch's own choice otherwise.

    Example:
        >>> cfg = setup()           # doctest: +SKIP
        >>> epochs = cfg.pick(quick=5, full=30)  # doctest: +SKIP
    """
    seed = get_seed_base() if seed is None else seed
    chosen = Setup(profile=get_profile(profile), device=get_device(device), seed=seed_everything(seed))
    n_threads = _threads(threads, chosen.profile, chosen.device)
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    if chosen.device.type == "cuda":
        # Faster float32 matmuls on Ampere+ at no cost to what the book measures.
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    return chosen
