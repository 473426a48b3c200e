"""Your own image folders (issue 17): layout, class names, unreadable files, 16-bit and alpha.

Every test writes its own small images into ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets as tv_datasets
from torchvision.datasets.folder import default_loader
from torchvision.transforms import v2

from mtl_tl.datasets import (
    BACKGROUND,
    IMAGE_EXTENSIONS,
    image_folder,
    image_folders,
    image_transforms,
    rgb_loader,
)


def _save(path: Path, image: Image.Image, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def _photo(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A noisy 8-bit RGB image: JPEG-compresses like a photo, unlike a flat colour."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _classes(root: Path, names: tuple[str, ...], per_class: int = 2, seed: int = 0) -> Path:
    for c, name in enumerate(names):
        for i in range(per_class):
            _save(root / name / f"{i}.jpg", _photo(seed + 10 * c + i), quality=90)
    return root


# -- the loader ---------------------------------------------------------------------------


def test_ordinary_images_load_exactly_as_with_torchvision(tmp_path: Path) -> None:
    grey = Image.fromarray(np.arange(1200, dtype=np.uint8).reshape(30, 40) % 251)
    files = [
        _save(tmp_path / "rgb.jpg", _photo(0), quality=90),
        _save(tmp_path / "rgb.png", _photo(1)),
        _save(tmp_path / "grey.png", grey),
        _save(tmp_path / "grey.jpg", grey),
        _save(tmp_path / "palette.png", _photo(2).quantize(16)),
        _save(tmp_path / "cmyk.jpg", _photo(3).convert("CMYK")),
        _save(tmp_path / "rgb.bmp", _photo(4)),
    ]
    for path in files:
        ours = rgb_loader(path)
        assert ours.mode == "RGB" and ours.size == (40, 30)
        assert np.array_equal(np.asarray(ours), np.asarray(default_loader(str(path)))), path.name


def test_a_folder_of_ordinary_images_gives_the_same_tensors_as_torchvision(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"), per_class=3)
    _save(root / "cat" / "x.png", _photo(7))
    ours = image_folder(root, train=False, size=16)
    plain = tv_datasets.ImageFolder(str(root), transform=image_transforms(16, train=False))
    assert ours.classes == plain.classes and ours.samples == plain.samples
    x_ours, y_ours = next(iter(DataLoader(ours, batch_size=len(ours))))
    x_plain, y_plain = next(iter(DataLoader(plain, batch_size=len(plain))))
    assert torch.equal(x_ours, x_plain) and torch.equal(y_ours, y_plain)


def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 40 * 30).round().astype(np.uint16).reshape(30, 40)
    path = _save(tmp_path / "depth.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    assert (np.asarray(default_loader(str(path))) >= 0.99 * 255).mean() > 0.99  # the bug
    out = np.asarray(rgb_loader(path))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    expected = np.round(values / 257).astype(np.uint8)
    assert all(np.array_equal(out[..., c], expected) for c in range(3))
    assert out.min() == 0 and out.max() == 255


def test_32_bit_integer_image_is_read_as_16_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 40000, 65535, 70000, -5]], dtype=np.int32)
    path = _save(tmp_path / "wide.tif", Image.fromarray(values))
    assert Image.open(path).mode == "I"
    assert np.asarray(rgb_loader(path))[0, :, 0].tolist() == [0, 1, 156, 255, 255, 0]


def test_transparency_is_composited_onto_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)  # transparent pixels store black, as many editors do
    rgba[0] = (200, 10, 10, 255)  # opaque red
    rgba[1, 1] = (0, 0, 0, 128)  # half-transparent black
    path = _save(tmp_path / "logo.png", Image.fromarray(rgba))
    assert np.asarray(default_loader(str(path)))[1, 0].tolist() == [0, 0, 0]  # the bug: black
    out = np.asarray(rgb_loader(path))
    assert BACKGROUND == (255, 255, 255)
    assert out[0].tolist() == [[200, 10, 10]] * 3
    assert out[1, 0].tolist() == [255, 255, 255] and out[1, 2].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [127, 127, 127]  # 0 * 128/255 + 255 * 127/255


def test_transparent_palette_and_grey_alpha_are_composited_too(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    p_path = _save(tmp_path / "p.png", palette, transparency=0)
    assert np.asarray(rgb_loader(p_path)).tolist() == [[[255, 255, 255], [0, 0, 255]]]
    la_path = _save(tmp_path / "la.png", Image.new("LA", (2, 2), (30, 0)))
    assert np.asarray(rgb_loader(la_path)).tolist() == [[[255, 255, 255]] * 2] * 2


def test_loader_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(OSError, match=r"cannot load image file '.*notes.jpg'"):
        rgb_loader(path)
    floats = _save(tmp_path / "float.tif", Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32)))
    with pytest.raises(OSError, match=r"float.tif'.*floating-point pixels \(mode 'F'\)"):
        rgb_loader(floats)


# -- unreadable files ---------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_jpeg_is_named_before_training(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"), per_class=3)
    _save(root / "dog" / "big.jpg", _photo(9, (120, 90)), quality=95)
    _truncate(root / "dog" / "big.jpg")
    with Image.open(root / "dog" / "big.jpg") as image:
        image.verify()  # a header check alone does not see the truncation
    expected = r"1 image file\(s\) that cannot be loaded: 'dog/big.jpg' \(.*truncated"
    with pytest.raises(ValueError, match=expected):
        image_folder(root, train=True, size=16)
    unchecked = image_folder(root, train=False, size=16, check_files=False)
    index = [Path(p).name for p, _ in unchecked.samples].index("big.jpg")
    with pytest.raises(OSError, match=r"cannot load image file '.*big.jpg'.*truncated"):
        unchecked[index]


def test_every_bad_file_is_counted_and_the_first_ten_named(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"), per_class=1)
    for i in range(12):
        (root / "cat" / f"broken{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError) as info:
        image_folder(root, train=True)
    message = str(info.value)
    assert "has 12 image file(s) that cannot be loaded" in message and "and 2 more" in message
    assert "'cat/broken00.png'" in message and "'cat/broken10.png'" not in message
    assert "check_files=False" in message


def test_macos_appledouble_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"))
    (root / "cat" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    with pytest.raises(Exception):  # what torchvision alone does with it
        default_loader(str(root / "cat" / "._0.jpg"))
    with pytest.warns(UserWarning, match=r"skipped 1 macOS metadata file.*'cat/._0.jpg'"):
        dataset = image_folder(root, train=False, size=8)
    assert len(dataset) == 4 and not any(Path(p).name.startswith("._") for p, _ in dataset.samples)
    only_metadata = root / "bird"
    only_metadata.mkdir()
    (only_metadata / "._1.jpg").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(ValueError, match=r"without images: 'bird' \(holds 1 '._' macOS metadata\)"):
        image_folder(root, train=False)


# -- layout -------------------------------------------------------------------------------


def test_a_root_holding_train_and_val_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _classes(data / "train", ("ants", "bees"))
    _classes(data / "val", ("ants", "bees"))
    with pytest.raises(ValueError) as info:
        image_folder(data, train=True)
    message = str(info.value)
    assert "holds 'train', 'val', which name data splits, not classes" in message
    assert f"'{data / 'train'}'" in message and "image_folders(" in message
    assert "root/<class_name>/<image>" in message


def test_a_root_one_level_too_high_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _classes(data / "source", ("cat", "dog"))
    _classes(data / "target", ("ant", "bee"))
    with pytest.raises(ValueError, match=r"one level too high.*'source' holds 'cat', 'dog'"):
        image_folder(data, train=True)
    single = tmp_path / "download"
    _classes(single / "hymenoptera", ("ants", "bees"))
    with pytest.raises(ValueError, match="one level too high"):
        image_folder(single, train=True)
    # images in sub-folders of only some classes is a valid layout (ImageFolder searches recursively)
    _save(data / "source" / "cat" / "loose.jpg", _photo(5))
    _save(data / "target" / "ant" / "more" / "0.jpg", _photo(6))
    assert len(image_folder(data / "target", train=True)) == 5


@pytest.mark.parametrize("extension", [".gif", ".heic"])
def test_a_class_of_unaccepted_files_lists_the_accepted_extensions(tmp_path: Path, extension: str) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"))
    for i in range(2):
        path = root / "bird" / f"{i}{extension}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"GIF89a" if extension == ".gif" else b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(ValueError) as info:
        image_folder(root, train=True)
    message = str(info.value)
    assert f"'bird' (holds 2 '{extension}')" in message
    assert "accepted extensions: " + ", ".join(IMAGE_EXTENSIONS) in message
    assert ".jpg" in message and ".png" in message


# -- class names of train and val ---------------------------------------------------------


def test_class_names_that_differ_in_case_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _classes(data / "train", ("ants", "bees"))
    _classes(data / "val", ("ants", "Bees"))
    plain_train = tv_datasets.ImageFolder(str(data / "train"))
    plain_val = tv_datasets.ImageFolder(str(data / "val"))
    assert plain_train.class_to_idx["bees"] != plain_val.class_to_idx["Bees"]  # the bug: labels swap
    with pytest.raises(ValueError) as info:
        image_folders(data, size=16)
    message = str(info.value)
    assert "only in train: 'bees'" in message and "only in val: 'Bees'" in message
    assert "'bees' and 'Bees' differ only in letter case" in message
    train_set = image_folder(data / "train", train=True, size=16)
    with pytest.raises(ValueError, match=r"only in classes=: 'bees'; only in root '.*val': 'Bees'"):
        image_folder(data / "val", train=False, size=16, classes=train_set.classes)


def test_a_class_only_in_val_is_refused_before_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _classes(data / "train", ("ants", "bees"))
    _classes(data / "val", ("ants", "bees", "wasps"))
    with pytest.raises(ValueError, match=r"only in train: none; only in val: 'wasps'"):
        image_folders(data)
    with pytest.raises(ValueError, match="same classes in a different order"):
        image_folder(data / "train", train=True, classes=["bees", "ants"])


def test_image_folders_returns_a_matching_pair(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _classes(data / "train", ("ants", "bees"), per_class=3)
    _classes(data / "valid", ("ants", "bees"), per_class=2, seed=100)
    train_set, val_set = image_folders(data, size=16, val="valid")
    assert train_set.classes == val_set.classes == ["ants", "bees"]
    assert (len(train_set), len(val_set)) == (6, 4)
    assert v2.RandomResizedCrop in [type(t) for t in train_set.transform.transforms]
    assert v2.CenterCrop in [type(t) for t in val_set.transform.transforms]
    x, y = val_set[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    with pytest.raises(ValueError, match=r"has no 'val' folder \(it holds 'train', 'valid'\)"):
        image_folders(data)
    with pytest.raises(ValueError, match="val must name a folder directly under root"):
        image_folders(data, val="train")
    with pytest.raises(ValueError, match="val must name a folder directly under root"):
        image_folders(data, val="a/b")
    with pytest.raises(ValueError, match="is not an existing folder"):
        image_folders(tmp_path / "missing")
    with pytest.raises(TypeError, match="val must be str"):
        image_folders(data, val=1)  # type: ignore[arg-type]


# -- your own transform and loader --------------------------------------------------------


def test_your_own_transform_and_loader(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"))
    (root / "dog" / "2.jpg").write_text("broken")
    calls: list[str] = []

    def grey_loader(path: str) -> Image.Image:
        calls.append(Path(path).name)
        if Path(path).name == "2.jpg":
            raise OSError("my loader cannot read this")
        return Image.open(path).convert("L")

    transform = v2.Compose([v2.ToImage(), v2.Resize((8, 8)), v2.ToDtype(torch.float32, scale=True)])
    with pytest.raises(ValueError, match=r"'dog/2.jpg' \(OSError: my loader cannot read this\)"):
        image_folder(root, train=True, transform=transform, loader=grey_loader)
    assert sorted(calls) == ["0.jpg", "0.jpg", "1.jpg", "1.jpg", "2.jpg"]  # check_files used it
    (root / "dog" / "2.jpg").unlink()
    dataset = image_folder(root, train=True, transform=transform, loader=grey_loader, check_files=False)
    x, y = dataset[0]
    assert x.shape == (1, 8, 8) and y == 0


def test_image_folder_rejects_bad_new_arguments(tmp_path: Path) -> None:
    root = _classes(tmp_path / "pets", ("cat", "dog"))
    with pytest.raises(TypeError, match="transform must be callable or None, got int"):
        image_folder(root, train=True, transform=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loader must be callable or None, got str"):
        image_folder(root, train=True, loader="pil")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="classes must be a sequence of str"):
        image_folder(root, train=True, classes="cat,dog")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="check_files must be bool"):
        image_folder(root, train=True, check_files=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size must be >= 8"):
        image_folder(root, train=True, size=2, transform=lambda image: image)
