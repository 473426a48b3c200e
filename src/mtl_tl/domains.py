"""Domain shift for any batch of images: the target domain of chapter 4.1, made to order.

Transfer learning assumes a *source* domain and a *target* domain that are related
but not the same. :func:`domain_shift` turns any image tensor (the digits, MNIST,
the shapes of :mod:`mtl_tl.synthetic`) into a target domain whose distance from the
source is one number, ``strength``: 0 leaves the images as they are, 1 is a large
shift. Labels are untouched: the task stays the same, only the images change.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_int, check_probability, check_tensor

__all__ = ["KINDS", "domain_shift"]

KINDS = ("rotation", "noise", "invert", "colour", "mixed")
"""The kinds of shift :func:`domain_shift` applies."""

_MAX_ANGLE = 180.0  # degrees, at strength 1
_MAX_NOISE_STD = 0.3  # at strength 1
_MAX_HUE_ANGLE = 120.0  # degrees; 120 maps R -> G -> B -> R, a pure channel permutation
_MAX_GAMMA = 3.0  # grey images: x ** gamma, gamma from 1 to this


def _rotate(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Each image turned by its own angle, uniform in +-strength * 180 degrees (zeros fill in)."""
    u = torch.rand(len(x), generator=generator).to(x.device)
    angle = torch.deg2rad((2 * u - 1) * strength * _MAX_ANGLE)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _add_noise(x: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return x + strength * _MAX_NOISE_STD * noise


def _invert(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Blend towards the negative: contrast fades to grey at 0.5 and comes back reversed at 1."""
    return (1.0 - strength) * x + strength * (1.0 - x)


def _recolour(x: torch.Tensor, strength: float) -> torch.Tensor:
    """RGB: rotate every colour about the grey axis; grey: a gamma curve (darker mid-tones)."""
    if x.shape[1] == 1:
        return x.clamp(0.0, 1.0) ** (_MAX_GAMMA**strength)
    # Rodrigues' rotation about (1, 1, 1) / sqrt(3): greys stay grey, hues turn.
    angle = math.radians(strength * _MAX_HUE_ANGLE)
    c, s = math.cos(angle), math.sin(angle)
    a, b = (1 - c) / 3, s / math.sqrt(3)
    matrix = torch.tensor(
        [[c + a, a - b, a + b], [a + b, c + a, a - b], [a - b, a + b, c + a]],
        dtype=x.dtype, device=x.device,
    )
    return torch.einsum("ij,njhw->nihw", matrix, x)


def domain_shift(x: torch.Tensor, strength: float, *, kind: str = "mixed", seed: int = 0) -> torch.Tensor:
    """A shifted copy of a batch of images: a target domain at distance ``strength`` (chapter 4.1).

    Kinds (each scaled by ``strength`` in [0, 1]):

    * ``"rotation"``: each image turned by its own random angle in +-``strength`` x 180 degrees;
      corners that come from outside the image are black.
    * ``"noise"``: Gaussian pixel noise with standard deviation ``strength`` x 0.3.
    * ``"invert"``: ``x -> (1 - strength) * x + strength * (1 - x)``. Contrast fades to
      uniform grey at 0.5 and returns reversed (a negative) at 1.
    * ``"colour"``: RGB colours turn about the grey axis by ``strength`` x 120 degrees
      (at 1, the channels are permuted R -> G -> B -> R); one-channel images get a
      gamma curve ``x ** (3 ** strength)`` instead.
    * ``"mixed"``: colour, rotation, inversion and noise together. Instead of fading
      every image to grey, inversion here turns a share ``2 * strength - 1`` of the
      images (none below 0.5) into full negatives, so that images stay informative at
      every strength, as in :meth:`mtl_tl.synthetic.Domain.interpolate`.

    Args:
        x: images ``(N, C, H, W)`` with C = 1 or 3, floating point, values in [0, 1].
        strength: 0 returns an identical copy; 1 is the largest shift.
        kind: one of :data:`KINDS`.
        seed: seed of the random parts (rotation angles, noise, which images invert);
            the same seed gives the same output. ``"colour"`` and ``"invert"`` use no
            randomness.

    Returns:
        A new tensor with the shape, dtype and device of ``x``, values in [0, 1].
    """
    check_tensor("x", x, ndim=4, floating=True, min_len=1)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels (N, C, H, W), got shape {tuple(x.shape)}")
    low, high = x.min().item(), x.max().item()
    if low < 0.0 or high > 1.0:
        raise ValueError(f"x must hold values in [0, 1], got values in [{low:.3g}, {high:.3g}]")
    strength = check_probability("strength", strength)
    kind = check_choice("kind", kind, KINDS)
    seed = check_int("seed", seed)
    if strength == 0.0:
        return x.clone()

    generator = torch.Generator().manual_seed(seed)
    out = x.float()
    if kind in ("colour", "mixed"):
        out = _recolour(out, strength)
    if kind in ("rotation", "mixed"):
        out = _rotate(out, strength, generator)
    if kind == "invert":
        out = _invert(out, strength)
    if kind == "mixed":
        share = max(0.0, 2 * strength - 1)
        flip = (torch.rand(len(out), generator=generator) < share).to(out.device)
        out = torch.where(flip[:, None, None, None], 1.0 - out, out)
    if kind in ("noise", "mixed"):
        out = _add_noise(out, strength, seed)
    return out.clamp_(0.0, 1.0).to(x.dtype)
