import pytest
import torch

from mtl_tl.models import (
    MultiTaskNet,
    SmallCNN,
    blocks,
    count_parameters,
    freeze,
    freeze_all_but_last,
    linear_head,
    resnet18_trunk,
    unfreeze,
)


def test_small_cnn_shapes_and_blocks():
    trunk = SmallCNN(in_channels=3, width=8, depth=3)
    out = trunk(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, trunk.out_features) == (2, 32)
    assert list(blocks(trunk)) == ["block1", "block2", "block3"]


def test_small_cnn_rejects_wrong_channels_and_arguments():
    with pytest.raises(ValueError, match=r"expects images \(N, 1, H, W\)"):
        SmallCNN(1)(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="norm='layer'.*'batch', 'group', 'none'"):
        SmallCNN(norm="layer")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        SmallCNN(depth=0)


def test_freezing_by_name_and_depth():
    trunk = SmallCNN(1, 8, 3)
    freeze(trunk, ["block1"])
    assert not any(p.requires_grad for p in trunk.features.block1.parameters())
    assert all(p.requires_grad for p in trunk.features.block3.parameters())
    unfreeze(trunk)
    assert all(p.requires_grad for p in trunk.parameters())
    assert freeze_all_but_last(trunk, 1) == ["block3"]
    trainable = count_parameters(trunk, trainable_only=True)
    assert trainable == count_parameters(trunk.features.block3) < count_parameters(trunk)
    assert freeze_all_but_last(trunk, 0) == [] and count_parameters(trunk, trainable_only=True) == 0
    with pytest.raises(ValueError, match="unknown block.*block1, block2, block3"):
        freeze(trunk, "layer9")
    with pytest.raises(ValueError, match="n must be <= 3"):
        freeze_all_but_last(trunk, 4)


def test_multitask_net_routes_heads():
    trunk = SmallCNN(1, 8, 2)
    net = MultiTaskNet(trunk, {"a": linear_head(16, 3), "b": linear_head(16, 1)})
    out = net(torch.rand(5, 1, 8, 8))
    assert out["a"].shape == (5, 3) and out["b"].shape == (5, 1)
    assert net(torch.rand(5, 1, 8, 8), task="a").shape == (5, 3)
    with pytest.raises(KeyError, match="heads: a, b"):
        net(torch.rand(1, 1, 8, 8), task="c")
    with pytest.raises(ValueError, match="non-empty mapping"):
        MultiTaskNet(trunk, {})


def test_resnet18_trunk_offline_and_local_weights(tmp_path):
    from torchvision.models import resnet18

    trunk = resnet18_trunk(weights=None)
    assert list(blocks(trunk)) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert trunk(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    path = tmp_path / "r18.pth"
    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), path)
    loaded = resnet18_trunk(weights=path)
    assert torch.equal(loaded.stem[0].weight, reference.conv1.weight)
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a ResNet-18 state dict"):
        resnet18_trunk(weights=tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="neither 'DEFAULT', None, nor an existing file"):
        resnet18_trunk(weights=tmp_path / "missing.pth")


def test_resnet18_default_weights_offline_message():
    # Under the test session's socket guard the download fails; the message says what to do.
    torch.hub.set_dir(str(__import__("tempfile").mkdtemp()))
    with pytest.raises(RuntimeError, match="could not download the ImageNet weights"):
        resnet18_trunk()


def test_heads_bad_sizes():
    with pytest.raises(ValueError, match="out_features must be >= 1"):
        linear_head(8, 0)


def test_head_names_that_clash_with_module_attributes():
    with pytest.raises(ValueError, match="task name 'eval' cannot name a head"):
        MultiTaskNet(SmallCNN(1, 8, 2), {"eval": linear_head(16, 2)})
    assert "lp-ft" in MultiTaskNet(SmallCNN(1, 8, 2), {"lp-ft": linear_head(16, 2)}).heads
