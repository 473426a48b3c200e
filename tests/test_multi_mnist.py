"""Tests of mtl_tl.synthetic.make_multi_mnist: generated digits, and a slice of real MNIST.

The real-data tests read MNIST's test files from ``../shared/data`` (next to the
repository) and are skipped, with a message, where that folder does not exist.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
import torch

from mtl_tl.synthetic import make_multi_mnist

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "MNIST" / "raw"


def _blocks(n: int = 20, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits ``(n, side, side)`` that are one bright square each, with labels ``i % 10``."""
    images = torch.zeros(n, side, side)
    for i in range(n):
        images[i, 2 + i % 5 : 8 + i % 5, 3:9] = 0.1 + 0.9 * (i + 1) / n
    return images, torch.arange(n) % 10


def test_multi_mnist_shapes_labels_and_the_reference_layout() -> None:
    images = torch.rand(20, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20)  # one label per image, so that a label names its image
    out = make_multi_mnist(images, labels, 30, seed=0, size=36)  # size 36: the canvas itself
    assert out.x.shape == (30, 1, 36, 36) and out.x.dtype == torch.float32
    assert set(out.y) == {"left", "right"}
    for key in ("left", "right"):
        assert out.y[key].dtype == torch.int64 and out.y[key].shape == (30,)
    # Sener and Koltun's layout: the left digit at (0, 0), the right one at (6, 6), max where they overlap.
    for i in range(30):
        expected = torch.zeros(36, 36)
        expected[:28, :28] = images[out.y["left"][i]]
        expected[6:34, 6:34] = torch.maximum(expected[6:34, 6:34], images[out.y["right"][i]])
        assert torch.equal(out.x[i, 0], expected)
    assert bool((out.y["left"] != out.y["right"]).all()), "two different images per composite"


def test_multi_mnist_resizes_to_28_and_repeats_per_seed() -> None:
    images, labels = _blocks()
    out = make_multi_mnist(images.unsqueeze(1), labels, 16, seed=3)
    assert out.x.shape == (16, 1, 28, 28)
    again, other = make_multi_mnist(images, labels, 16, seed=3), make_multi_mnist(images, labels, 16, seed=4)
    assert torch.equal(out.x, again.x) and torch.equal(out.y["right"], again.y["right"])
    assert not torch.equal(out.x, other.x)


def test_multi_mnist_never_pairs_a_digit_with_itself() -> None:
    images = torch.zeros(2, 28, 28)
    images[0, :10, :10], images[1, :10, :10] = 0.4, 0.8
    out = make_multi_mnist(images, torch.tensor([3, 7]), 50, seed=0, size=36)
    assert torch.equal(out.y["left"] != out.y["right"], torch.ones(50, dtype=torch.bool))


def test_multi_mnist_rejects_bad_input() -> None:
    images, labels = _blocks()
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        make_multi_mnist(images.numpy(), labels, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point"):
        make_multi_mnist((images * 255).to(torch.uint8), labels, 5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*255"):
        make_multi_mnist(images * 255, labels, 5)
    with pytest.raises(ValueError, match="square single-channel"):
        make_multi_mnist(images.unsqueeze(1).expand(-1, 3, -1, -1), labels, 5)
    with pytest.raises(ValueError, match="square single-channel"):
        make_multi_mnist(images[:, :, :20], labels, 5)
    with pytest.raises(TypeError, match="labels must have dtype torch.int64"):
        make_multi_mnist(images, labels.float(), 5)
    with pytest.raises(ValueError, match="labels has 19 entries"):
        make_multi_mnist(images, labels[:19], 5)
    with pytest.raises(ValueError, match="at least 2"):
        make_multi_mnist(images[:1], labels[:1], 5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_multi_mnist(images, labels, 0)
    with pytest.raises(ValueError, match="canvas=30 is too small.*canvas >= 34"):
        make_multi_mnist(images, labels, 5, canvas=30)
    with pytest.raises(ValueError, match="size must be >= 8"):
        make_multi_mnist(images, labels, 5, size=4)


def _write_idx(path: Path, array: torch.Tensor) -> None:
    """An uncompressed idx file (MNIST's format) holding uint8 ``array`` of 1 or 3 dimensions."""
    magic = 0x0801 if array.ndim == 1 else 0x0803
    with open(path, "wb") as f:
        f.write(struct.pack(f">{1 + array.ndim}i", magic, *array.shape))
        f.write(array.to(torch.uint8).numpy().tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision MNIST folder: the real test files, and 600 of their images as a stand-in training split."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST files not found at {SHARED_MNIST} (tests with real data are skipped)")
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = tmp_path_factory.mktemp("data") / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(SHARED_MNIST / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    # torchvision's MNIST needs all four files; only the test split could be brought offline.
    _write_idx(raw / "train-images-idx3-ubyte", read_image_file(str(raw / "t10k-images-idx3-ubyte"))[:600])
    _write_idx(raw / "train-labels-idx1-ubyte", read_label_file(str(raw / "t10k-labels-idx1-ubyte"))[:600])
    return raw.parents[1]


def test_real_mnist_slice_through_make_multi_mnist_and_a_two_task_fit(mnist_root: Path) -> None:
    """The full profile's path of chapter 4.2 on CPU: torchvision MNIST -> MultiMNIST -> left and right."""
    from mtl_tl.datasets import to_tensor_data, torchvision_dataset
    from mtl_tl.engine import evaluate
    from mtl_tl.models import SmallCNN, linear_head
    from mtl_tl.multitask import Task, train_jointly

    mnist = to_tensor_data(torchvision_dataset("mnist", mnist_root, train=True, download=False))
    assert mnist.x.shape == (600, 1, 28, 28) and 0.0 <= float(mnist.x.min()) and float(mnist.x.max()) <= 1.0
    train = make_multi_mnist(mnist.x, mnist.y, 256, seed=0)
    test = make_multi_mnist(mnist.x, mnist.y, 128, seed=1)
    assert train.x.shape == (256, 1, 28, 28)
    # Both digits show: a composite holds more ink than either digit alone would.
    assert float(train.x.sum(dim=(1, 2, 3)).mean()) > float(mnist.x.sum(dim=(1, 2, 3)).mean())
    assert set(train.y["left"].tolist()) <= set(range(10)) and len(set(train.y["right"].tolist())) > 5

    torch.manual_seed(0)
    trunk = SmallCNN(1, width=4)
    tasks = [Task(side, linear_head(trunk.out_features, 10), train, test) for side in ("left", "right")]
    for strategy in ("equal", "pcgrad"):
        history = train_jointly(trunk, tasks, strategy=strategy, epochs=1, lr=3e-3, batch_size=64, seed=0)
        assert {r["task"] for r in history.records} == {"left", "right"}
    results = evaluate(trunk, tasks)
    assert set(results) == {"left", "right"}
    assert all(0.0 <= r["metric"] <= 1.0 for r in results.values())
