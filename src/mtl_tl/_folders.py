"""Checks and loading for your own image folders (chapter 4.1), used by ``mtl_tl.datasets``.

torchvision's ``ImageFolder`` accepts almost any tree and fails late, or never: a root
one level too high turns ``train`` and ``val`` into classes, a truncated JPEG breaks
the first batch of training with an error that does not name the file, a 16-bit PNG
loads as a white image, a transparent PNG loses its alpha channel. The functions here
find these problems when the dataset is built, and load every image as RGB correctly.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = [
    "BACKGROUND",
    "IMAGE_EXTENSIONS",
    "LAYOUT",
    "rgb_loader",
    "is_image_file",
    "appledouble_files",
    "class_folders",
    "class_mismatch",
    "unreadable_files",
]

IMAGE_EXTENSIONS: tuple[str, ...] = tuple(IMG_EXTENSIONS)
"""File name endings ``ImageFolder`` accepts as images (case-insensitive)."""

BACKGROUND = (255, 255, 255)
"""The colour :func:`rgb_loader` puts behind transparent pixels: white."""

LAYOUT = "ImageFolder expects root/<class_name>/<image>.png (or .jpg, ...), one folder per class"
"""The expected layout, repeated in every layout error."""

_SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing"}
# "I;16*": 16-bit unsigned; "I": 32-bit signed, which is how Pillow opens 16-bit PNGs
# and TIFFs in some versions, so it is read as 16-bit too (values clipped to 0..65535).
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT:
        # Pillow's convert("RGB") clips 16-bit values at 255: almost every pixel turns white.
        # Scale 0..65535 to 0..255 instead, rounding to the nearest (65535 / 257 = 255).
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((values + 128) // 257).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        raise ValueError("32-bit floating-point pixels (mode 'F') have no standard range to map to 0..255")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # convert("RGB") drops alpha and keeps whatever colour transparent pixels store
        # (often black); composite onto BACKGROUND, as a browser shows the image on a page.
        backdrop = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(backdrop, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")  # what torchvision's default loader does, bit for bit


# No return annotation: the API page is built offline, without PIL's inventory, and its
# nitpicky build (-n -W) would fail on the unresolved PIL.Image.Image.
def rgb_loader(path: Union[str, Path]):
    """Load one image file as an 8-bit RGB PIL image: the loader of :func:`image_folder`.

    Ordinary 8-bit RGB, grey, palette and CMYK images load exactly as with torchvision's
    default loader (``Image.open(path).convert("RGB")``). Two kinds differ, because the
    default loader gets them wrong:

    - 16-bit images (Pillow modes ``"I;16"``, ``"I;16B"``, ``"I"``: 16-bit grey PNGs and
      TIFFs) are scaled from 0..65535 to 0..255, rounding to the nearest value; the
      default loader clips them at 255, so they come out (almost) white. 16-bit colour
      PNGs are already reduced to 8 bits by Pillow.
    - Images with transparency (an alpha channel, or a transparent palette entry or
      colour) are composited onto white (``BACKGROUND``); the default loader drops the
      alpha channel, so transparent areas show whatever colour they store, often black.

    Args:
        path: the image file.

    Returns:
        A PIL image in mode ``"RGB"`` (3 channels, 8 bits each), ``(H, W)`` as in the file.

    Raises:
        OSError: the file cannot be read as an image (truncated, not an image, 32-bit float
            pixels); the message names the file.
    """
    try:
        with open(path, "rb") as file:
            return _to_rgb(Image.open(file))
    except Exception as err:  # PIL raises many types (OSError, ValueError, SyntaxError, ...)
        raise OSError(f"cannot load image file '{path}': {type(err).__name__}: {err}") from err


def is_image_file(path: Union[str, Path]) -> bool:
    """Whether ``ImageFolder`` should read ``path``: an image extension, not a ``._`` file.

    macOS writes a ``._<name>`` "AppleDouble" file of Finder metadata next to each file it
    copies to a non-Mac disk or zip; ``._cat.jpg`` ends in ``.jpg`` but is not an image.
    """
    name = os.path.basename(path)  # called once per file of the tree: no Path object
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("._")


def appledouble_files(root: Path) -> list[Path]:
    """The ``._<name>`` files under ``root`` with an image extension (ignored by ImageFolder here)."""
    return sorted(p for p in root.rglob("._*") if p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS))


def _has_images(folder: Path) -> bool:
    return any(f.is_file() and is_image_file(f) for f in folder.rglob("*"))


def _holds_classes(folder: Path) -> bool:
    """No image directly inside, but sub-folders with images: a folder of class folders."""
    if any(f.is_file() and is_image_file(f) for f in folder.iterdir()):
        return False
    return any(d.is_dir() and _has_images(d) for d in folder.iterdir())


def _contents(folder: Path) -> str:
    files = [f for f in folder.rglob("*") if f.is_file()]
    if not files:
        return "empty"
    kinds = Counter("'._' macOS metadata" if f.name.startswith("._") else repr(f.suffix.lower() or f.name)
                    for f in files)
    return "holds " + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common(4))


def class_folders(root: Path, name: str = "root") -> list[str]:
    """Check that ``root`` is laid out as ``root/<class_name>/<image>`` and return the class names.

    Refused, each with a message saying what to pass instead: a missing ``root``, a file,
    class folders named like data splits (``train``, ``val``, ``test``, ...), class folders
    that hold class folders instead of images (``root`` one level too high), class
    folders without images (listing the accepted extensions), fewer than 2 classes.

    Returns:
        The class names in ``ImageFolder``'s order (sorted, case-sensitive): index ``i``
        of this list is class label ``i``.
    """
    if not root.exists():
        raise ValueError(f"{name} '{root}' does not exist; {LAYOUT}")
    if not root.is_dir():
        raise ValueError(f"{name} '{root}' is a file, not a folder; {LAYOUT}")
    folders = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    splits = [d.name for d in folders if d.name.lower() in _SPLIT_NAMES]
    if splits:
        raise ValueError(
            f"{name} '{root}' holds {', '.join(map(repr, splits))}, which name data splits, not classes: "
            f"pass the split folder itself (e.g. '{root / splits[0]}'), or image_folders('{root}') for "
            f"train/ and val/ together. {LAYOUT}"
        )
    if folders and all(_holds_classes(d) for d in folders):
        inner = sorted(d.name for d in folders[0].iterdir() if d.is_dir())
        raise ValueError(
            f"{name} '{root}' is one level too high: its folders hold folders, not images "
            f"('{folders[0].name}' holds {', '.join(map(repr, inner[:5]))}); pass the folder whose "
            f"sub-folders are the classes. {LAYOUT}"
        )
    empty = [f"'{d.name}' ({_contents(d)})" for d in folders if not _has_images(d)]
    if empty:  # ImageFolder makes every sub-folder a class, and fails on one without images
        raise ValueError(
            f"{name} '{root}' has class folders without images: {', '.join(empty)}; accepted "
            f"extensions: {', '.join(IMAGE_EXTENSIONS)} (any case). Add images, convert the files "
            f"(e.g. GIF or HEIC to PNG or JPEG), or remove the folders. {LAYOUT}"
        )
    if len(folders) < 2:
        found = ", ".join(repr(d.name) for d in folders) or "none"
        raise ValueError(
            f"{name} '{root}' must hold at least 2 class folders with images, found {len(folders)} "
            f"({found}); {LAYOUT}"
        )
    return [d.name for d in folders]


def class_mismatch(expected: Sequence[str], found: Sequence[str], *, names: tuple[str, str]) -> str | None:
    """Why two class lists would give different labels (``None`` if they are equal).

    ``ImageFolder`` labels class ``i`` by the ``i``-th sorted folder name, so two datasets
    agree on labels only if their class lists are equal, letter case included.
    ``names`` says what to call ``expected`` and ``found`` in the message.
    """
    expected, found = list(expected), list(found)
    if expected == found:
        return None
    only_expected = [c for c in expected if c not in found]
    only_found = [c for c in found if c not in expected]
    if not only_expected and not only_found:
        return (f"{names[0]} and {names[1]} have the same classes in a different order "
                f"({expected} vs {found}); ImageFolder numbers classes in sorted order")
    parts = [f"only in {names[0]}: {', '.join(map(repr, only_expected)) or 'none'}",
             f"only in {names[1]}: {', '.join(map(repr, only_found)) or 'none'}"]
    lower = {c.lower(): c for c in only_expected}
    cased = [f"{lower[c.lower()]!r} and {c!r}" for c in only_found if c.lower() in lower]
    if cased:
        parts.append(f"{'; '.join(cased)} differ only in letter case (class names are case-sensitive)")
    return (f"{names[0]} and {names[1]} have different classes ({'; '.join(parts)}); their labels "
            "would not match, since ImageFolder numbers classes by sorted folder name")


def unreadable_files(
    paths: Sequence[str], loader: Callable[[str], Any] | None = None
) -> list[tuple[str, str]]:
    """The files among ``paths`` that cannot be loaded, each with the reason.

    With ``loader=None`` each file is decoded the way :func:`rgb_loader` reads it, but a
    JPEG at 1/8 of its size (``Image.draft``): that still reads every byte, so a truncated
    file is caught, at about 0.7 times the cost of a full decode. With a ``loader``, each
    file is loaded with it.

    Returns:
        ``[(path, "ErrorType: message"), ...]``, empty when every file loads.
    """
    bad = []
    for path in paths:
        try:
            if loader is not None:
                loader(path)
                continue
            with Image.open(path) as image:
                image.draft(image.mode, (1, 1))  # JPEG only; other formats ignore it
                image.load()
                _to_rgb(image)
        except Exception as err:  # any failure here would stop training at this file
            bad.append((path, f"{type(err).__name__}: {err}"))
    return bad
