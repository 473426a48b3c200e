"""Tests of mtl_tl.datasets: transforms, ImageFolder, offline torchvision datasets."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2

from mtl_tl.datasets import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetUnavailableError,
    image_folder,
    image_transforms,
    to_tensor_data,
    torchvision_dataset,
)


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    for i in range(3):
        _png(root / "cat" / f"{i}.png", (200, 10, 10))
        _png(root / "dog" / f"{i}.png", (10, 10, 200))
    return root


# -- transforms ---------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_image_transforms_turn_a_pil_image_into_a_normalised_tensor(train: bool) -> None:
    transform = image_transforms(24, train=train)
    image = Image.new("RGB", (50, 40), (255, 255, 255))
    out = transform(image)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out.mean((1, 2)), expected, atol=1e-3)


def test_image_transforms_include_the_steps_the_article_forgot() -> None:
    steps = [type(t) for t in image_transforms(32, train=True).transforms]
    assert steps[0] is v2.ToImage
    assert v2.RandomResizedCrop in steps and v2.RandomHorizontalFlip in steps
    assert steps[-2:] == [v2.ToDtype, v2.Normalize]
    eval_steps = [type(t) for t in image_transforms(32, train=False).transforms]
    assert v2.Resize in eval_steps and v2.CenterCrop in eval_steps
    assert v2.RandomResizedCrop not in eval_steps


def test_image_transforms_custom_stats_and_bad_input() -> None:
    white = torch.full((1, 10, 10), 255, dtype=torch.uint8)
    out = image_transforms(8, train=False, mean=[0.5], std=[0.5])(white)
    assert torch.allclose(out, torch.ones(1, 8, 8))
    with pytest.raises(TypeError, match="train must be bool"):
        image_transforms(32, train="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'train'"):
        image_transforms(32)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="size must be >= 8"):
        image_transforms(4, train=True)
    with pytest.raises(TypeError, match="mean must be a sequence of 1 or 3 numbers"):
        image_transforms(32, train=True, mean=[0.1, 0.2])
    with pytest.raises(ValueError, match="std must be positive"):
        image_transforms(32, train=True, std=[0.2, 0.0, 0.2])
    with pytest.raises(ValueError, match="same length"):
        image_transforms(32, train=True, mean=[0.5], std=IMAGENET_STD)


# -- ImageFolder --------------------------------------------------------------------------


def test_image_folder_loads_through_a_dataloader(folder: Path) -> None:
    dataset = image_folder(folder, train=True, size=16)
    assert dataset.classes == ["cat", "dog"]
    x, y = next(iter(DataLoader(dataset, batch_size=4, shuffle=False)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    # red cats, blue dogs: the red channel is above the mean for cats only
    batch = next(iter(DataLoader(image_folder(folder, train=False, size=16), batch_size=6)))
    red = batch[0][:, 0].mean((1, 2))
    assert (red[batch[1] == 0] > 0).all() and (red[batch[1] == 1] < 0).all()


def test_image_folder_explains_a_bad_layout(tmp_path: Path, folder: Path) -> None:
    expected = r"root '.*missing' does not exist; ImageFolder expects root/<class_name>/<image>"
    with pytest.raises(ValueError, match=expected):
        image_folder(tmp_path / "missing", train=True)
    one_class = tmp_path / "one"
    _png(one_class / "cat" / "0.png", (1, 2, 3))
    with pytest.raises(ValueError, match=r"at least 2 class folders with images, found 1 \('cat'\)"):
        image_folder(one_class, train=True)
    (folder / "empty").mkdir()
    (folder / "empty" / "notes.txt").write_text("not an image")
    expected = r"class folders without images: 'empty' \(holds 1 '.txt'\); accepted extensions"
    with pytest.raises(ValueError, match=expected):
        image_folder(folder, train=True)
    flat = tmp_path / "flat"
    _png(flat / "0.png", (1, 2, 3))
    with pytest.raises(ValueError, match="found 0 .none."):
        image_folder(flat, train=False)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        image_folder(flat / "0.png", train=False)
    with pytest.raises(TypeError, match="root must be str or Path"):
        image_folder(3, train=True)  # type: ignore[arg-type]


# -- torchvision datasets, offline --------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_missing_files_without_download_give_a_helpful_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError) as info:
        torchvision_dataset(name, tmp_path, train=True, download=False)
    message = str(info.value)
    assert repr(name) in message and str(tmp_path) in message
    assert "internet" in message and "MTL_TL_PROFILE=quick" in message
    assert isinstance(info.value, RuntimeError)


def test_failed_download_gives_the_same_helpful_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self: object) -> None:
        raise URLError("no network in this test")

    monkeypatch.setattr(tv_datasets.MNIST, "download", offline)
    expected = (
        r"'mnist' is not available in root .*downloading it failed.*no network in this test"
        r".*internet.*MTL_TL_PROFILE=quick"
    )
    with pytest.raises(DatasetUnavailableError, match=expected):
        torchvision_dataset("mnist", tmp_path, train=True, download=True)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def fake_mnist(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[0] = 255  # a known image: all white
        _write_idx(raw / f"{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


def test_local_mnist_files_load_offline(fake_mnist: Path) -> None:
    dataset = torchvision_dataset("mnist", fake_mnist, train=True, download=False)
    assert len(dataset) == 12
    x, y = dataset[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, torch.ones(1, 28, 28)) and y == 0
    resized = torchvision_dataset("mnist", fake_mnist, train=False, download=False, size=32, channels=3)
    assert len(resized) == 5
    x, y = resized[3]
    assert x.shape == (3, 32, 32) and y == 3
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey copied to RGB
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_to_tensor_data_materialises_a_dataset(fake_mnist: Path) -> None:
    dataset = torchvision_dataset("mnist", fake_mnist, train=True, download=False, size=16)
    data = to_tensor_data(dataset, batch_size=5)
    assert data.x.shape == (12, 1, 16, 16) and data.x.dtype == torch.float32
    assert torch.equal(data.y, torch.arange(12) % 10) and data.y.dtype == torch.int64
    assert len(to_tensor_data(dataset, limit=7)) == 7
    assert len(to_tensor_data(dataset, limit=100)) == 12


def test_to_tensor_data_of_an_image_folder(folder: Path) -> None:
    data = to_tensor_data(image_folder(folder, train=False, size=8))
    assert data.x.shape == (6, 3, 8, 8)
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_torchvision_dataset_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name='imagenet' is not accepted; choose one of: 'mnist', 'usps'"):
        torchvision_dataset("imagenet", tmp_path, train=True)
    with pytest.raises(ValueError, match="channels=2 is not accepted"):
        torchvision_dataset("mnist", tmp_path, train=True, channels=2)
    with pytest.raises(ValueError, match="size must be >= 8"):
        torchvision_dataset("mnist", tmp_path, train=True, size=2)
    with pytest.raises(TypeError, match="download must be bool"):
        torchvision_dataset("mnist", tmp_path, train=True, download="no")  # type: ignore[arg-type]


def test_to_tensor_data_rejects_bad_datasets() -> None:
    class PilImages(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            return Image.new("RGB", (4, 4)), 0

    with pytest.raises(TypeError, match="give it a transform that ends in v2.ToImage"):
        to_tensor_data(PilImages())
    uint8 = TensorDataset(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="images must be float tensors"):
        to_tensor_data(uint8)
    float_labels = TensorDataset(torch.zeros(3, 1, 4, 4), torch.zeros(3))
    with pytest.raises(TypeError, match="labels must be int class indices"):
        to_tensor_data(float_labels)
    with pytest.raises(ValueError, match="dataset is empty"):
        to_tensor_data(TensorDataset(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="limit must be >= 1"):
        to_tensor_data(TensorDataset(torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)), limit=0)
    with pytest.raises(TypeError, match="dataset must be Dataset"):
        to_tensor_data([(torch.zeros(1, 4, 4), 0)])  # type: ignore[arg-type]
