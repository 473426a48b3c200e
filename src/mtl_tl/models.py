"""Backbones, heads and freezing: the model side of chapters 2 and 4.

Every network in the book is a *trunk* (the shared representation, 共享表示) plus one
*head* per task. A trunk maps images ``(N, C, H, W)`` to features ``(N, D)`` and
exposes its layers as named *blocks*, ordered from the input to the output, so that
"freeze the first two blocks" or "fine-tune the last block" means the same thing for
the small CNN of the quick profile and for torchvision's ResNet-18 of the full one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ._checks import check_choice, check_int, check_type

# For resnet18_trunk's annotation only, in full names so that the API page resolves them:
# importing torchvision takes seconds, so resnet18_trunk imports it when it is called.
if TYPE_CHECKING:
    import pathlib

    import torchvision

__all__ = [
    "SmallCNN",
    "LeNet",
    "resnet18_trunk",
    "linear_head",
    "MultiTaskNet",
    "blocks",
    "freeze",
    "unfreeze",
    "freeze_all_but_last",
    "count_parameters",
]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class SmallCNN(nn.Module):
    """The quick profile's backbone: ``depth`` conv blocks, then global average pooling.

    Each block is conv3x3 -> norm -> ReLU -> 2x2 max-pool, doubling the width.
    With the defaults it has about 94k parameters and trains on a 2-core CPU in seconds.

    Args:
        in_channels: 1 for digits, 3 for RGB.
        width: channels of the first block.
        depth: number of blocks (named ``block1`` .. ``block{depth}``).
        norm: ``"batch"``, ``"group"`` (batch-size independent, e.g. for
            multi-process training) or ``"none"``.

    Shapes:
        input ``(N, in_channels, H, W)`` with ``H, W >= 2**depth``; output ``(N, out_features)``.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, depth: int = 3, norm: str = "batch") -> None:
        super().__init__()
        check_int("in_channels", in_channels, min_value=1)
        check_int("width", width, min_value=1)
        check_int("depth", depth, min_value=1, max_value=6)
        check_choice("norm", norm, ("batch", "group", "none"))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            layers[f"block{i + 1}"] = nn.Sequential(
                nn.Conv2d(channels, out, 3, padding=1, bias=norm == "none"),
                _norm(norm, out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            channels = out
        self.features = nn.Sequential(layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.in_channels = in_channels
        self.out_features = channels

    def blocks(self) -> OrderedDict[str, nn.Module]:
        """The named blocks, from the input to the output."""
        return OrderedDict(self.features.named_children())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallCNN expects images (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        return self.pool(self.features(x))


class LeNet(nn.Module):
    """The LeNet-style trunk of the MNIST <-> USPS protocol (chapters 4.1 and 5).

    The encoder of Tzeng et al.'s ADDA experiments (after LeCun et al.'s LeNet):
    ``conv1``: conv5x5 (20 channels) -> 2x2 max-pool -> ReLU; ``conv2``: conv5x5
    (50 channels) -> channel dropout -> 2x2 max-pool -> ReLU; ``fc``: flatten ->
    linear (``out_features``, 500 in the paper) -> ReLU. No normalisation layers,
    so domain-adversarial training needs no care about batch statistics.

    Args:
        in_channels: 1 for grey digits.
        size: side of the square input images; 28 for the protocol (16 is the smallest).
        out_features: width of the feature vector.
        dropout: channel-dropout probability after the second convolution.

    Shapes:
        input ``(N, in_channels, size, size)``; output ``(N, out_features)``.
    """

    def __init__(self, in_channels: int = 1, size: int = 28, out_features: int = 500, dropout: float = 0.5) -> None:
        super().__init__()
        check_int("in_channels", in_channels, min_value=1)
        check_int("size", size, min_value=16)
        check_int("out_features", out_features, min_value=1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r:.80}")
        side = ((size - 4) // 2 - 4) // 2  # two valid 5x5 convolutions, each followed by a 2x2 pool
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(20, 50, 5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(50 * side * side, out_features), nn.ReLU())
        self.in_channels, self.size, self.out_features = in_channels, size, out_features

    def blocks(self) -> OrderedDict[str, nn.Module]:
        """The named blocks, from the input to the output: ``conv1``, ``conv2``, ``fc``."""
        return OrderedDict((n, getattr(self, n)) for n in ("conv1", "conv2", "fc"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.size, self.size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"LeNet expects images (N, {', '.join(map(str, expected))}), got shape {tuple(x.shape)}")
        return self.fc(self.conv2(self.conv1(x)))


class _ResNetTrunk(nn.Module):
    """torchvision's ResNet-18 without its classifier: ``(N, 3, H, W) -> (N, 512)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = net.fc.in_features
        self.in_channels = 3

    def blocks(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict((n, getattr(self, n)) for n in ("stem", "layer1", "layer2", "layer3", "layer4"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks().values():
            x = block(x)
        return self.pool(x)


def resnet18_trunk(
    weights: torchvision.models.ResNet18_Weights | str | pathlib.Path | None = "DEFAULT",
) -> torch.nn.Module:
    """torchvision's ResNet-18 as a trunk (the full profile's backbone, chapter 4.1).

    This is what the article's ``nn.ResNet18(pretrained=True)`` meant: that name
    does not exist; the model lives in ``torchvision.models`` and ``pretrained=``
    was replaced by ``weights=``.

    Args:
        weights: ImageNet weights, downloaded once to the torch cache: a
            ``torchvision.models.ResNet18_Weights`` member as chapter 4.1 writes it
            (``ResNet18_Weights.DEFAULT``), or its name (``"DEFAULT"``,
            ``"IMAGENET1K_V1"``); ``None`` (random initialisation); or the path of a
            local ``.pth`` state dict for offline machines.

    Returns:
        A trunk ``(N, 3, H, W) -> (N, 512)`` with blocks ``stem, layer1..layer4``.
    """
    from torchvision.models import ResNet18_Weights, WeightsEnum, resnet18

    if weights is None:
        return _ResNetTrunk(resnet18(weights=None))
    if isinstance(weights, str) and weights in ResNet18_Weights.__members__:
        weights = ResNet18_Weights[weights]
    accepted = "a ResNet18_Weights member, its name, None or a file path"
    if isinstance(weights, WeightsEnum) and not isinstance(weights, ResNet18_Weights):
        raise TypeError(f"weights must be {accepted}; got {weights}, the weights of another model")
    if isinstance(weights, ResNet18_Weights):
        try:
            return _ResNetTrunk(resnet18(weights=weights))
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise RuntimeError(
                f"could not download the ImageNet weights of ResNet-18 ({weights.name}; no internet?). "
                f"Download them once on a connected machine from {weights.url} and pass the file: "
                "resnet18_trunk(weights='path/to/resnet18.pth'), or use weights=None, "
                f"or the quick profile (MTL_TL_PROFILE=quick). Cause: {err}"
            ) from err
    if not isinstance(weights, (str, Path)):
        raise TypeError(f"weights must be {accepted}; got {type(weights).__name__}: {weights!r:.80}")
    path = Path(weights)
    if not path.is_file():
        names = ", ".join(repr(n) for n in ResNet18_Weights.__members__)
        raise ValueError(
            f"weights={str(weights)!r} is neither 'DEFAULT', None, nor an existing file (accepted: a "
            f"ResNet18_Weights member or its name, {names}; None; the path of a .pth state dict)"
        )
    net = resnet18(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a ResNet-18 state dict: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    return _ResNetTrunk(net)


def linear_head(in_features: int, out_features: int) -> nn.Linear:
    """A task head: one linear layer ``(N, in_features) -> (N, out_features)``.

    Replacing the head is how a pretrained network gets a new number of classes
    (the step the article's code skips).
    """
    check_int("in_features", in_features, min_value=1)
    check_int("out_features", out_features, min_value=1)
    return nn.Linear(in_features, out_features)


class MultiTaskNet(nn.Module):
    """Hard parameter sharing: one trunk, one named head per task (chapter 2).

    ``forward(x)`` returns ``{task_name: head(trunk(x))}``; with ``task=`` it returns
    that head's output alone. A single-task transfer model is the special case of one head.

    Shapes:
        ``x``: ``(N, C, H, W)``; each output ``(N, out_features_of_that_head)``.
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        check_type("trunk", trunk, nn.Module)
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError("heads must be a non-empty mapping {task_name: nn.Module}")
        for name, head in heads.items():
            check_type(f"heads[{name!r}]", head, nn.Module)
            if not isinstance(name, str) or not name or "." in name or hasattr(nn.ModuleDict(), name):
                raise ValueError(
                    f"task name {name!r} cannot name a head: use a name without '.' that is not an "
                    "nn.Module attribute (e.g. 'shape', 'digit-left'; not 'eval', 'train', 'to')"
                )
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))

    def forward(self, x: torch.Tensor, task: str | None = None) -> dict[str, torch.Tensor] | torch.Tensor:
        if task is None:
            features = self.trunk(x)
            return {name: head(features) for name, head in self.heads.items()}
        try:  # no check per call: an unknown name surfaces here, explained
            head = self.heads[task]
        except KeyError:
            raise KeyError(f"no head named {task!r}; heads: {', '.join(self.heads)}") from None
        return head(self.trunk(x))


def blocks(model: nn.Module) -> OrderedDict[str, nn.Module]:
    """The named blocks of a trunk (or of a :class:`MultiTaskNet`'s trunk), input first."""
    trunk = model.trunk if isinstance(model, MultiTaskNet) else model
    if not hasattr(trunk, "blocks"):
        # Any other module: its direct children stand in for blocks.
        return OrderedDict(trunk.named_children())
    return trunk.blocks()


def _select(model: nn.Module, names: Iterable[str] | None) -> list[nn.Module]:
    named = blocks(model)
    if names is None:
        return list(named.values())
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"unknown block(s) {unknown}; this trunk has blocks: {', '.join(named)}")
    return [named[n] for n in names]


def _set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(flag)


def freeze(model: nn.Module, names: Iterable[str] | str | None = None) -> None:
    """Stop gradients through the named blocks (all blocks when ``names`` is None).

    Frozen blocks also keep their normalisation statistics: the engine puts any
    norm layer whose parameters are all frozen in eval mode during training.
    """
    _set_requires_grad(_select(model, names), False)


def unfreeze(model: nn.Module, names: Iterable[str] | str | None = None) -> None:
    """Let gradients through the named blocks again (all blocks when ``names`` is None)."""
    _set_requires_grad(_select(model, names), True)


def freeze_all_but_last(model: nn.Module, n: int) -> list[str]:
    """Freeze every block except the last ``n``; returns the names left trainable.

    ``n=0`` is feature extraction, ``n=len(blocks(model))`` is full fine-tuning.
    """
    named = list(blocks(model))
    check_int("n", n, min_value=0, max_value=len(named))
    freeze(model)
    trainable = named[len(named) - n :]
    if trainable:
        unfreeze(model, trainable)
    return trainable


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (scalars) in ``model``, or only those with ``requires_grad``."""
    check_type("model", model, nn.Module)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
