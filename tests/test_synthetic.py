"""Tests of mtl_tl.synthetic: generated shapes, domains and two-digit composites."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mtl_tl.data import TensorData
from mtl_tl.synthetic import COLOURS, DOMAINS, SHAPES, Domain, make_multi_digits, make_shapes


@pytest.fixture(scope="module")
def shapes() -> TensorData:
    return make_shapes(400, seed=0)


def test_shapes_tensor_shapes_dtypes_and_ranges(shapes: TensorData) -> None:
    assert shapes.x.shape == (400, 3, 32, 32)
    assert shapes.x.dtype == torch.float32
    assert shapes.x.min() >= 0.0 and shapes.x.max() <= 1.0
    y = shapes.y
    assert set(y) == {"shape", "colour", "size", "position"}
    assert y["shape"].dtype == torch.int64 and y["shape"].shape == (400,)
    assert y["colour"].dtype == torch.int64 and y["colour"].shape == (400,)
    assert y["size"].dtype == torch.float32 and y["size"].shape == (400,)
    assert y["position"].dtype == torch.float32 and y["position"].shape == (400, 2)
    # every class occurs, and only valid ones
    assert set(y["shape"].tolist()) == set(range(len(SHAPES)))
    assert set(y["colour"].tolist()) == set(range(len(COLOURS)))
    assert 0.0 <= y["size"].min() and y["size"].max() <= 1.0
    assert 0.0 < y["position"].min() and y["position"].max() < 1.0


def test_shapes_other_size() -> None:
    data = make_shapes(5, size=20, seed=1)
    assert data.x.shape == (5, 3, 20, 20)


def test_shapes_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    a, b, c = make_shapes(50, seed=3), make_shapes(50, seed=3), make_shapes(50, seed=4)
    assert torch.equal(a.x, b.x)
    assert all(torch.equal(a.y[k], b.y[k]) for k in a.y)
    assert not torch.equal(a.x, c.x)
    assert not torch.equal(a.y["position"], c.y["position"])


def test_shape_is_drawn_where_the_position_label_says(shapes: TensorData) -> None:
    # Subtracting the background (median pixel) leaves the shape: its brightness-weighted
    # centre must sit close to the "position" label.
    x = make_shapes(200, seed=5, domain=Domain(texture=0.0, noise=0.0)).x
    labels = make_shapes(200, seed=5).y  # same seed: same objects in every domain
    weight = (x - x.flatten(2).median(dim=2).values[..., None, None]).abs().sum(1)
    grid = (torch.arange(32) + 0.5) / 32
    total = weight.sum((1, 2))
    cx = (weight * grid[None, None, :]).sum((1, 2)) / total
    cy = (weight * grid[None, :, None]).sum((1, 2)) / total
    error = (torch.stack([cx, cy], 1) - labels["position"]).abs()
    assert error.median() < 0.03


def test_bigger_size_label_means_bigger_shape() -> None:
    data = make_shapes(300, seed=6, domain=Domain(texture=0.0, noise=0.0))
    area = ((data.x - 0.12).abs().sum(1) > 0.3).float().sum((1, 2))
    size = data.y["size"]
    small, large = area[size < 0.3].mean(), area[size > 0.7].mean()
    assert large > 1.5 * small


def test_shape_label_matches_the_drawn_area() -> None:
    # Area in units of radius squared: triangle 1.30 < cross 2.04 < square 2.56 < circle 3.14.
    data = make_shapes(400, seed=6, domain=Domain(texture=0.0, noise=0.0, rotation=0.0))
    coverage = (data.x - 0.12).abs().max(1).values  # background is 0.12 in every channel
    area = (coverage / coverage.flatten(1).max(1).values[:, None, None]).sum((1, 2))
    radius = 32 * (0.12 + 0.18 * data.y["size"])
    ratio = area / radius**2
    means = [ratio[data.y["shape"] == k].mean().item() for k in range(len(SHAPES))]
    circle, square, triangle, cross = means
    assert triangle < cross < square < circle
    assert circle == pytest.approx(3.14, rel=0.1) and triangle == pytest.approx(1.30, rel=0.1)


def test_colour_label_matches_dominant_hue() -> None:
    # red (0) has its largest channel in R; blue (3) in B
    data = make_shapes(300, seed=7, domain=Domain(texture=0.0, noise=0.0))
    mean_rgb = data.x.flatten(2).max(dim=2).values  # brightest value per channel
    red, blue = data.y["colour"] == 0, data.y["colour"] == 3
    assert (mean_rgb[red].argmax(1) == 0).float().mean() > 0.9
    assert (mean_rgb[blue].argmax(1) == 2).float().mean() > 0.9


def test_domains_keep_labels_and_shift_more_from_near_to_unrelated() -> None:
    source = make_shapes(300, seed=8)
    distances = []
    for name in ("near", "far", "unrelated"):
        other = make_shapes(300, seed=8, domain=name)
        assert all(torch.equal(source.y[k], other.y[k]) for k in source.y)
        assert other.x.min() >= 0.0 and other.x.max() <= 1.0
        distances.append((other.x - source.x).abs().mean().item())
    assert 0.0 < distances[0] < distances[1] < distances[2]


def test_unrelated_domain_is_inverted() -> None:
    # inverted contrast: the background turns light
    source, unrelated = make_shapes(100, seed=9), make_shapes(100, seed=9, domain="unrelated")
    assert source.x.median() < 0.3
    assert unrelated.x.median() > 0.6


def test_domain_presets_and_interpolation() -> None:
    assert set(DOMAINS) == {"source", "near", "far", "unrelated"}
    assert Domain.interpolate(0.0) == DOMAINS["source"]
    assert Domain.interpolate(1.0) == DOMAINS["unrelated"]
    assert Domain.interpolate(0.2) == DOMAINS["near"]
    assert Domain.interpolate(0.55) == DOMAINS["far"]
    for field in ("texture", "noise", "hue_shift", "rotation"):
        values = [getattr(Domain.interpolate(s), field) for s in (0.0, 0.3, 0.6, 1.0)]
        assert values == sorted(values) and values[0] < values[-1], field
    assert Domain.interpolate(0.5).invert_prob == 0.0  # inversion starts half way
    assert Domain.interpolate(0.75).invert_prob == pytest.approx(0.5)


def test_domain_validates_fields_and_strength() -> None:
    with pytest.raises(ValueError, match="noise must be <= 1"):
        Domain(noise=2.0)
    with pytest.raises(ValueError, match="rotation must be >= 0"):
        Domain(rotation=-5.0)
    with pytest.raises(TypeError, match="texture must be a number"):
        Domain(texture="heavy")
    with pytest.raises(ValueError, match="strength must be <= 1"):
        Domain.interpolate(1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DOMAINS["near"].noise = 0.0  # type: ignore[misc]


def test_make_shapes_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        make_shapes(0)
    with pytest.raises(TypeError, match="n must be an int"):
        make_shapes(10.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size must be >= 16"):
        make_shapes(10, size=8)
    with pytest.raises(ValueError, match="domain='nearby' is not accepted; choose one of: 'source'"):
        make_shapes(10, domain="nearby")
    with pytest.raises(TypeError, match="domain must be a preset name"):
        make_shapes(10, domain=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device='gpu0'"):
        make_shapes(10, device="gpu0")


# -- two-digit composites ----------------------------------------------------------------


def _stripe_digits() -> TensorData:
    """Ten 'digits' that can be told apart by eye: digit k lights row block k only."""
    x = torch.zeros(10, 1, 10, 10)
    for k in range(10):
        x[k, 0, k, :] = 1.0
    return TensorData(x, torch.arange(10) + 100)  # labels 100..109, to check they are copied


def test_multi_digits_shapes_and_labels_match_the_digits_used() -> None:
    digits = _stripe_digits()
    out = make_multi_digits(digits, 40, seed=0, size=36)
    assert out.x.shape == (40, 1, 36, 36) and out.x.dtype == torch.float32
    assert out.x.min() >= 0.0 and out.x.max() <= 1.0
    left, right = out.y["left"], out.y["right"]
    assert left.dtype == torch.int64 and right.dtype == torch.int64
    assert set(left.tolist()) <= set(range(100, 110))
    for i in range(40):
        # Rebuild the composite by hand from the reference construction.
        a = torch.nn.functional.interpolate(digits.x[left[i] - 100][None], size=(30, 30), mode="bilinear")
        b = torch.nn.functional.interpolate(digits.x[right[i] - 100][None], size=(30, 30), mode="bilinear")
        canvas = torch.zeros(1, 1, 36, 36)
        canvas[..., :30, :30] = a
        canvas[..., 6:, 6:] = torch.maximum(canvas[..., 6:, 6:], b)
        assert torch.allclose(out.x[i], canvas[0], atol=1e-5)


def test_multi_digits_default_size_and_seeds() -> None:
    generator = torch.Generator().manual_seed(0)
    train = TensorData(torch.rand(50, 1, 16, 16, generator=generator), torch.arange(50) % 10)
    out = make_multi_digits(train, 64, seed=1)
    assert out.x.shape == (64, 1, 28, 28)
    assert out.y["left"].max() <= 9 and out.y["right"].min() >= 0
    again, other = make_multi_digits(train, 64, seed=1), make_multi_digits(train, 64, seed=2)
    assert torch.equal(out.x, again.x) and torch.equal(out.y["left"], again.y["left"])
    assert not torch.equal(out.x, other.x)


def test_multi_digits_rejects_bad_input() -> None:
    digits = _stripe_digits()
    rgb = TensorData(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="single-channel"):
        make_multi_digits(rgb, 5)
    floats = TensorData(torch.zeros(4, 1, 8, 8), torch.zeros(4))
    with pytest.raises(TypeError, match="int64 class labels"):
        make_multi_digits(floats, 5)
    multi = TensorData(torch.zeros(4, 1, 8, 8), {"a": torch.zeros(4, dtype=torch.long)})
    with pytest.raises(TypeError, match="int64 class labels.*dict"):
        make_multi_digits(multi, 5)
    with pytest.raises(ValueError, match="at least 2 digits"):
        make_multi_digits(digits.subset([0]), 5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_multi_digits(digits, 0)
    with pytest.raises(TypeError, match="data must be TensorData"):
        make_multi_digits(digits.x, 5)  # type: ignore[arg-type]
