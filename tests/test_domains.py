"""Tests of mtl_tl.domains.domain_shift."""

from __future__ import annotations

import pytest
import torch

from mtl_tl.domains import KINDS, domain_shift


def _rgb(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def _grey(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def test_kinds_constant() -> None:
    assert KINDS == ("rotation", "noise", "invert", "colour", "mixed")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", [_rgb, _grey])
def test_output_is_a_new_tensor_of_same_shape_dtype_in_range(kind: str, make) -> None:
    x = make()
    before = x.clone()
    out = domain_shift(x, 0.7, kind=kind, seed=3)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()
    assert torch.equal(x, before)  # the input is left alone


@pytest.mark.parametrize("kind", KINDS)
def test_strength_zero_is_an_identical_copy(kind: str) -> None:
    x = _rgb()
    out = domain_shift(x, 0.0, kind=kind)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("kind", ["rotation", "noise", "mixed"])
def test_random_kinds_are_deterministic_per_seed(kind: str) -> None:
    x = _rgb()
    a, b = domain_shift(x, 0.5, kind=kind, seed=1), domain_shift(x, 0.5, kind=kind, seed=1)
    c = domain_shift(x, 0.5, kind=kind, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", ["noise", "invert", "mixed"])
def test_shift_grows_with_strength(kind: str) -> None:
    x = _rgb(20)
    distance = [(domain_shift(x, s, kind=kind) - x).abs().mean().item() for s in (0.2, 0.5, 1.0)]
    assert distance[0] < distance[1] < distance[2]


def test_invert_full_strength_is_the_negative_and_half_is_grey() -> None:
    x = _grey()
    assert torch.allclose(domain_shift(x, 1.0, kind="invert"), 1.0 - x)
    assert torch.allclose(domain_shift(x, 0.5, kind="invert"), torch.full_like(x, 0.5))


def test_colour_full_strength_permutes_rgb_channels() -> None:
    x = _rgb()
    out = domain_shift(x, 1.0, kind="colour")
    assert torch.allclose(out, x[:, [2, 0, 1]], atol=1e-5)
    grey = torch.full((2, 3, 4, 4), 0.4)  # greys stay grey under a hue rotation
    assert torch.allclose(domain_shift(grey, 0.6, kind="colour"), grey, atol=1e-5)


def test_colour_on_one_channel_darkens_mid_tones() -> None:
    x = torch.full((1, 1, 4, 4), 0.5)
    out = domain_shift(x, 1.0, kind="colour")
    assert torch.allclose(out, torch.full_like(x, 0.5**3))


def test_rotation_keeps_a_centred_disc_and_moves_an_off_centre_blob() -> None:
    coords = torch.arange(32) + 0.5 - 16
    r = (coords[None, :] ** 2 + coords[:, None] ** 2).sqrt()
    disc = (r < 8).float()[None, None].repeat(4, 1, 1, 1)
    rotated = domain_shift(disc, 1.0, kind="rotation", seed=0)
    assert (rotated - disc).abs().mean() < 0.02
    blob = torch.zeros(4, 1, 32, 32)
    blob[:, :, 2:8, 14:18] = 1.0  # near the top edge
    moved = domain_shift(blob, 1.0, kind="rotation", seed=0)
    assert (moved - blob).abs().mean() > 0.01


def test_mixed_full_strength_inverts_every_image() -> None:
    x = torch.full((8, 3, 16, 16), 0.1)  # a dark image becomes a light one
    out = domain_shift(x, 1.0, kind="mixed")
    assert out[:, :, 4:12, 4:12].mean() > 0.6


def test_keeps_float64() -> None:
    x = _rgb().double()
    assert domain_shift(x, 0.3, kind="mixed").dtype == torch.float64


def test_bad_inputs_raise_naming_the_argument() -> None:
    x = _rgb()
    with pytest.raises(ValueError, match="strength must be <= 1"):
        domain_shift(x, 1.5)
    with pytest.raises(ValueError, match="strength must be >= 0"):
        domain_shift(x, -0.1)
    with pytest.raises(TypeError, match="strength must be a number"):
        domain_shift(x, "strong")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind='blur' is not accepted; choose one of: 'rotation'"):
        domain_shift(x, 0.5, kind="blur")
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        domain_shift(x[0], 0.5)
    with pytest.raises(ValueError, match="x must have 1 or 3 channels"):
        domain_shift(torch.rand(2, 2, 8, 8), 0.5)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        domain_shift(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        domain_shift(x * 255, 0.5)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        domain_shift(x.numpy(), 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be an int"):
        domain_shift(x, 0.5, seed=1.0)  # type: ignore[arg-type]
