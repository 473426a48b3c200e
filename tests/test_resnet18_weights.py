"""resnet18_trunk(weights=...) in the forms chapter 4.1 teaches, offline (issue 17, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18

from mtl_tl.models import resnet18_trunk


@pytest.fixture()
def hub_dir(tmp_path: Path):
    """An empty torch hub cache, so that nothing cached on this machine is found."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture()
def cached_weights(hub_dir: Path) -> torch.nn.Module:
    """A ResNet-18 saved where torchvision looks for the ImageNet weights before downloading them."""
    torch.manual_seed(0)
    reference = resnet18(weights=None)
    checkpoints = hub_dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / Path(ResNet18_Weights.DEFAULT.url).name)
    return reference


@pytest.mark.parametrize(
    "weights",
    [ResNet18_Weights.DEFAULT, ResNet18_Weights.IMAGENET1K_V1, "DEFAULT", "IMAGENET1K_V1"],
    ids=["enum-DEFAULT", "enum-IMAGENET1K_V1", "name-DEFAULT", "name-IMAGENET1K_V1"],
)
def test_the_enum_and_its_names_load_the_imagenet_weights(weights, cached_weights: torch.nn.Module) -> None:
    trunk = resnet18_trunk(weights=weights)
    assert torch.equal(trunk.stem[0].weight, cached_weights.conv1.weight)
    assert trunk.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 512)


@pytest.mark.parametrize("weights", [ResNet18_Weights.DEFAULT, "DEFAULT"], ids=["enum", "name"])
def test_offline_message_prints_the_actual_url(weights, hub_dir: Path) -> None:
    # Under the test session's socket guard the download fails.
    with pytest.raises(RuntimeError) as info:
        resnet18_trunk(weights=weights)
    message = str(info.value)
    assert "could not download the ImageNet weights of ResNet-18 (IMAGENET1K_V1" in message
    assert f"from {ResNet18_Weights.DEFAULT.url} and pass the file" in message
    assert message.count("https://download.pytorch.org/models/resnet18-") >= 1
    assert ".DEFAULT.url" not in message


def test_other_weights_are_refused_by_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"ResNet18_Weights member.*got ResNet50_Weights\.IMAGENET1K_V2"):
        resnet18_trunk(weights=ResNet50_Weights.DEFAULT)
    with pytest.raises(TypeError, match="ResNet18_Weights member, its name, None or a file path; got int"):
        resnet18_trunk(weights=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'IMAGENET1K_V1', 'DEFAULT'; None; the path of a .pth"):
        resnet18_trunk(weights=str(tmp_path / "imagenet.pth"))
