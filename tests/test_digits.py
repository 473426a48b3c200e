"""Real MNIST and USPS files through the code the notebooks use (chapters 4.1 and 5).

The tests that need real files read them from ``<repo>/../shared/data`` (torchvision's
layout; see its README) and are skipped, with a message, where that folder is absent.
They copy a slice of each file into a temporary folder, so nothing is written next to
the shared copy, and add tiny stand-in MNIST training files: torchvision's MNIST looks
for all four files even when only the test split is asked for.
"""

from __future__ import annotations

import bz2
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_tl import digits
from mtl_tl.config import data_root
from mtl_tl.data import TensorData
from mtl_tl.datasets import DatasetUnavailableError, torchvision_dataset
from mtl_tl.digits import PUBLISHED, beside_published, load_digit_images, protocol_data, run_protocol
from mtl_tl.engine import fit
from mtl_tl.models import LeNet, linear_head
from mtl_tl.tasks import Task

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_real = pytest.mark.skipif(
    not (SHARED / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file() or not (SHARED / "usps.bz2").is_file(),
    reason=f"real MNIST/USPS files not found in {SHARED} (see its README); these tests need them",
)
N_MNIST, N_USPS_TRAIN, N_USPS_TEST = 4200, 1900, 300  # enough for the protocol's 2 x 2,000 and 1,800 draws


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _idx_slice(source: Path, target: Path, n: int) -> None:
    """The first ``n`` items of a real IDX file, written uncompressed (as torchvision extracts it)."""
    raw = gzip.decompress(source.read_bytes())
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    per_item = math.prod(shape[1:])
    body = raw[4 + 4 * ndim : 4 + 4 * ndim + n * per_item]
    _write_idx(target, np.frombuffer(body, dtype=np.uint8).reshape(n, *shape[1:]))


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real MNIST/USPS files not found in {SHARED}")
    root = tmp_path_factory.mktemp("digits")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        _idx_slice(SHARED / "MNIST" / "raw" / f"t10k-{kind}-ubyte.gz", raw / f"t10k-{kind}-ubyte", N_MNIST)
    _write_idx(raw / "train-images-idx3-ubyte", np.zeros((10, 28, 28)))  # stand-ins: never read here
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(10))
    for name, n in (("usps.bz2", N_USPS_TRAIN), ("usps.t.bz2", N_USPS_TEST)):
        lines = bz2.decompress((SHARED / name).read_bytes()).splitlines(keepends=True)[:n]
        (root / name).write_bytes(bz2.compress(b"".join(lines)))
    return root


@needs_real
def test_real_mnist_and_usps_load_at_28_pixels(real_root: Path) -> None:
    mnist = load_digit_images("mnist", train=False, root=real_root, download=False)
    usps = load_digit_images("usps", train=True, root=real_root, download=False, limit=500)
    for data, n in ((mnist, N_MNIST), (usps, 500)):
        assert data.x.shape == (n, 1, 28, 28) and data.x.dtype == torch.float32
        assert data.x.min() >= 0 and data.x.max() <= 1 and data.x.max() > 0.9
        assert data.y.dtype == torch.int64 and set(data.y.tolist()) == set(range(10))
    # MNIST's digits sit inside a 20 x 20 box: the outer 4-pixel border is (almost) empty.
    assert mnist.x[..., :4].mean() < 0.01 and usps.x[..., :4].mean() < 1e-6
    stretched = load_digit_images("usps", train=True, root=real_root, download=False, usps_frame="stretch", limit=500)
    assert stretched.x[..., :4].mean() > 0.03  # stretched, USPS's strokes reach the border
    assert torch.equal(stretched.y, usps.y)
    native = load_digit_images("usps", train=True, root=real_root, download=False, size=16, usps_frame="stretch")
    assert native.x.shape == (N_USPS_TRAIN, 1, 16, 16)


@needs_real
def test_real_digits_train_a_lenet_for_one_epoch(real_root: Path) -> None:
    torch.manual_seed(0)
    data = load_digit_images("usps", train=True, root=real_root, download=False, limit=256)
    assert isinstance(data, TensorData)
    trunk = LeNet()
    history = fit(trunk, Task("usps", linear_head(trunk.out_features, 10), train=data), epochs=1,
                  batch_size=64, device="cpu", progress=False)
    assert math.isfinite(history.last("usps", split="train", key="loss"))


@needs_real
def test_one_seed_of_the_protocol_on_real_files(real_root: Path) -> None:
    data = protocol_data("mnist->usps", 0, root=real_root, mnist_pool="test", download=False)
    assert len(data["source"]) == 2000 and len(data["target"]) == 1800 and len(data["target_test"]) == N_USPS_TEST
    assert data["target_test_stretched"].x.shape == data["target_test"].x.shape
    again = protocol_data("mnist->usps", 0, root=real_root, mnist_pool="test", download=False)
    assert torch.equal(again["source"].x, data["source"].x)  # the draw is seeded
    back = protocol_data("usps->mnist", 0, root=real_root, mnist_pool="test", download=False)
    # With mnist_pool="test" the drawn MNIST images and the evaluation images are disjoint halves.
    assert len(back["target_test"]) == N_MNIST // 2
    pool = {tuple(x.flatten().tolist()) for x in back["target"].x[:50]}
    assert not pool & {tuple(x.flatten().tolist()) for x in back["target_test"].x}
    out = run_protocol(0, data, epochs=1, steps_per_epoch=2, fine_tune_steps=2, batch_size=32, device="cpu")
    expected = {"source_only", "source_only_stretched", "fine_tune_feature_extraction", "fine_tune_full", "dann",
                "coral"}
    assert set(out) == expected and all(0 <= v <= 1 for v in out.values())


@needs_real
def test_missing_files_are_listed_by_name(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        name = f"t10k-{kind}-ubyte.gz"
        (raw / name).write_bytes((SHARED / "MNIST" / "raw" / name).read_bytes())
    with pytest.raises(DatasetUnavailableError) as info:
        torchvision_dataset("mnist", tmp_path, train=False, download=False)
    message = str(info.value)
    assert "found MNIST/raw/t10k-images-idx3-ubyte.gz" in message
    assert "missing MNIST/raw/train-images-idx3-ubyte(.gz), MNIST/raw/train-labels-idx1-ubyte(.gz)" in message
    assert "even for the test split" in message and str(tmp_path) in message


def test_missing_usps_names_its_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"found none of them; missing usps\.t\.bz2"):
        torchvision_dataset("usps", tmp_path, train=False, download=False)


def test_data_root_explicit_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MTL_TL_DATA", raising=False)
    assert data_root() == Path("data")
    monkeypatch.setenv("MTL_TL_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root("elsewhere") == Path("elsewhere")
    # torchvision_dataset reads from it when no root is given.
    with pytest.raises(DatasetUnavailableError, match=f"usps.*not available in root '{tmp_path}'"):
        torchvision_dataset("usps", train=True, download=False)


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="root must be a str or pathlib.Path"):
        data_root(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="root is an empty string"):
        data_root(" ")
    with pytest.raises(ValueError, match="name='svhn' is not accepted; choose one of: 'mnist', 'usps'"):
        load_digit_images("svhn", train=True, root=tmp_path)
    with pytest.raises(ValueError, match="usps_frame='pad' is not accepted"):
        load_digit_images("usps", train=True, root=tmp_path, usps_frame="pad")
    with pytest.raises(ValueError, match="size must be >= 16"):
        load_digit_images("usps", train=True, root=tmp_path, size=8)
    with pytest.raises(TypeError, match="train must be bool"):
        load_digit_images("usps", train="yes", root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pair='mnist->svhn' is not accepted"):
        protocol_data("mnist->svhn", 0, root=tmp_path)
    with pytest.raises(ValueError, match="mnist_pool='val' is not accepted"):
        protocol_data("mnist->usps", 0, root=tmp_path, mnist_pool="val")
    with pytest.raises(TypeError, match="data must be protocol_data's dict"):
        run_protocol(0, {"source": None})
    one = TensorData(torch.rand(4, 1, 28, 28), torch.arange(4))
    data = {"source": one, "target": one, "target_test": one}
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        run_protocol(0, data, methods=("fine_tune",))
    with pytest.raises(ValueError, match="recipe='linear' is not accepted"):
        run_protocol(0, data, recipes={"linear": 1e-3})


def test_lenet_shapes_blocks_and_bad_input() -> None:
    net = LeNet()
    assert list(net.blocks()) == ["conv1", "conv2", "fc"]
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 500)
    assert LeNet(size=16, out_features=32)(torch.rand(2, 1, 16, 16)).shape == (2, 32)
    with pytest.raises(ValueError, match=r"LeNet expects images \(N, 1, 28, 28\), got shape \(2, 1, 16, 16\)"):
        net(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="size must be >= 16"):
        LeNet(size=12)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        LeNet(dropout=1.0)


def test_published_numbers_cite_the_bibliography() -> None:
    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    for key in PUBLISHED["source"].unique():
        assert f"{{{key}," in bib
    assert set(PUBLISHED["pair"]) <= set(digits.PAIRS)
    adda = PUBLISHED[(PUBLISHED["source"] == "tzeng2017adversarial") & (PUBLISHED["pair"] == "mnist->usps")]
    assert adda.set_index("method")["accuracy"].to_dict() == {"source_only": 75.2, "dann": 77.1, "adda": 89.4}


def test_beside_published_puts_ours_next_to_the_papers() -> None:
    import pandas as pd

    results = pd.DataFrame({"seed": [0, 1, 0, 1], "metric": ["source_only", "source_only", "dann", "dann"],
                            "value": [0.80, 0.82, 0.85, 0.90]})
    table = beside_published(results, "mnist->usps")
    assert table.loc["source_only", "ours"] == "81.0 ± 1.4"
    adda = "ADDA protocol (2,000 MNIST, 1,800 USPS) [tzeng2017adversarial]"
    assert table.loc["dann", adda] == "77.1 ± 1.8" and table.loc["adda", "ours"] == ""
    assert table.loc["cdan", "TLlib benchmark (all training images) [jiang2020tllib]"] == "96.0"
    with pytest.raises(ValueError, match="pair='usps' is not accepted"):
        beside_published(results, "usps")
