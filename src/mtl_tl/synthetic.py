"""Data the code makes: coloured shapes with four labels, and two-digit composites.

Chapter 4.1 (transfer learning) trains on one *domain* of shapes and transfers to
another; chapter 4.2 (multi-task learning) learns the four labels of a shape image
(its shape, colour, size and position), or the two digits of a
:func:`make_multi_digits` or :func:`make_multi_mnist` composite, with one shared
network. Nothing here downloads: the composites are made from digits you pass in.

Every image is drawn at once for the whole batch with tensor operations: each shape is
a *signed distance* on a grid of pixel coordinates (negative inside the shape), which
turns into a soft mask, so 100,000 images on a GPU take one call and no Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Union

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_float, check_int, check_probability, check_tensor, check_type
from .data import TensorData

__all__ = [
    "SHAPES",
    "COLOURS",
    "Domain",
    "DOMAINS",
    "make_shapes",
    "make_multi_digits",
    "make_multi_mnist",
]

SHAPES = ("circle", "square", "triangle", "cross")
"""Names of the ``"shape"`` classes, in label order."""

COLOURS = ("red", "yellow", "green", "blue", "magenta")
"""Names of the ``"colour"`` classes, in label order (hues 0, 72, 144, 216 and 288 degrees)."""

_HUE_STEP = 360.0 / len(COLOURS)  # degrees between two colour classes
_RADIUS = (0.12, 0.30)  # outer radius of a shape, as a fraction of the image side
_INVERT_ONSET = 0.5  # relatedness at which contrast inversion starts (see Domain.interpolate)
_DOMAIN_LIMITS = {"texture": 1.0, "noise": 1.0, "hue_shift": 360.0, "rotation": 180.0, "invert_prob": 1.0}


@dataclass(frozen=True)
class Domain:
    """How shape images *look*: the knob that makes a source and a target domain.

    Texture, noise and rotation change appearance only (covariate shift): the labels
    keep their meaning (``shape`` 2 is always a triangle), so a model trained on one
    domain can be scored on another, and how much of its accuracy survives measures how
    related the two domains are (chapter 4.1). ``hue_shift`` and ``invert_prob`` change
    what a colour *means* for the ``colour`` label (concept shift: P(Y|X) changes); at
    72 degrees the colour labels are permuted, which by Pan and Yang's definition is
    another task (chapter 4.3). Shape labels keep their meaning in every domain.

    Attributes:
        texture: largest amplitude of the stripe texture laid over every pixel, in [0, 1];
            each image draws its own amplitude uniformly in [0, texture].
        noise: largest standard deviation of the Gaussian pixel noise, in [0, 1]; each
            image draws its own standard deviation uniformly in [0, noise].
        hue_shift: hue rotation of the palette in degrees, in [0, 360]. At 72 degrees
            (one colour class) each colour is drawn with the hue of the next class, so
            the ``colour`` label no longer matches what a source model learned.
        rotation: shapes are rotated by a random angle in [-rotation, rotation] degrees,
            with ``rotation`` in [0, 180]; from 60 on every pose of every shape occurs.
        invert_prob: probability in [0, 1] that an image is drawn with inverted contrast
            (light background, complementary colours).
    """

    texture: float = 0.15
    noise: float = 0.08
    hue_shift: float = 0.0
    rotation: float = 10.0
    invert_prob: float = 0.0

    def __post_init__(self) -> None:
        for name, largest in _DOMAIN_LIMITS.items():
            check_float(name, getattr(self, name), min_value=0.0, max_value=largest)

    @classmethod
    def interpolate(cls, strength: float) -> Domain:
        """A domain on the continuum from ``"source"`` (``strength=0``) to ``"unrelated"`` (1).

        Texture, noise, hue shift and rotation move linearly from their source values to
        their unrelated values. Contrast inversion starts only half way
        (``invert_prob = 2 * strength - 1`` above 0.5), because an inverted image is a
        large change at once rather than a small one. The presets ``"near"`` and
        ``"far"`` are ``interpolate(0.2)`` and ``interpolate(0.55)``.
        """
        strength = check_probability("strength", strength)
        source, unrelated = _SOURCE, _UNRELATED
        values = {}
        for f in fields(cls):
            a, b = getattr(source, f.name), getattr(unrelated, f.name)
            t = _ramp(strength, _INVERT_ONSET) if f.name == "invert_prob" else strength
            values[f.name] = round(a + t * (b - a), 6)  # 0.1, not 0.10000000000000009
        return cls(**values)


def _ramp(strength: float, onset: float) -> float:
    """0 up to ``onset``, then linear up to 1 at ``strength = 1``."""
    return max(0.0, (strength - onset) / (1.0 - onset))


_SOURCE = Domain(texture=0.15, noise=0.08, hue_shift=0.0, rotation=10.0, invert_prob=0.0)
# Rotating by 60 degrees already turns every shape into any of its poses (a triangle
# repeats every 120 degrees, a square and a cross every 90), so 60 is "fully random".
_UNRELATED = Domain(texture=0.35, noise=0.15, hue_shift=_HUE_STEP, rotation=60.0, invert_prob=1.0)

DOMAINS: dict[str, Domain] = {
    "source": _SOURCE,
    "near": Domain.interpolate(0.2),
    "far": Domain.interpolate(0.55),
    "unrelated": _UNRELATED,
}
"""Named domains, from the training domain ``"source"`` to ``"unrelated"`` (chapter 4.1).

A network trained on ``"source"`` keeps most of its accuracy on ``"near"``, loses much
of it on ``"far"`` and falls to chance on ``"unrelated"``, while a network trained on
``"unrelated"`` itself still learns the task: only the link to the source is gone.
On ``"unrelated"`` the colour classes land on the next hue, so a source model's colour
predictions fall *below* chance. Chapters 2 and 4.3 measure these gaps.
"""


def _as_domain(domain: Union[str, Domain]) -> Domain:
    if isinstance(domain, Domain):
        return domain
    if isinstance(domain, str):
        return DOMAINS[check_choice("domain", domain, DOMAINS)]
    raise TypeError(
        f"domain must be a preset name ({', '.join(map(repr, DOMAINS))}) or a Domain, "
        f"got {type(domain).__name__}: {domain!r:.80}"
    )


def _hue_to_rgb(hue_degrees: torch.Tensor) -> torch.Tensor:
    """Fully saturated colours ``(N, 3)`` for hues ``(N,)`` in degrees (HSV with S = V = 1)."""
    h = (hue_degrees % 360.0) / 60.0
    offsets = torch.tensor([0.0, 4.0, 2.0], device=h.device)  # where R, G and B peak
    return ((h[:, None] + offsets) % 6.0 - 3.0).abs().sub(1.0).clamp(0.0, 1.0)


def _signed_distance(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of each image's shape, in units of its radius.

    ``u`` and ``v`` are ``(N, H, W)`` pixel coordinates in the shape's own rotated frame,
    divided by its radius; ``shape`` is ``(N,)`` with class ids in :data:`SHAPES` order.
    """
    circle = torch.sqrt(u * u + v * v) - 1.0
    square = torch.maximum(u.abs(), v.abs()) - 0.8
    # Equilateral triangle pointing up (v grows downwards, as image rows do): the largest
    # of the distances to its three edges, each 0.5 from the centre.
    cos30 = math.cos(math.pi / 6)
    triangle = torch.maximum(torch.maximum(v, cos30 * u - 0.5 * v), -cos30 * u - 0.5 * v) - 0.5
    arm_h = torch.maximum(u.abs() - 1.0, v.abs() - 0.3)
    arm_v = torch.maximum(u.abs() - 0.3, v.abs() - 1.0)
    cross = torch.minimum(arm_h, arm_v)
    every_shape = torch.stack([circle, square, triangle, cross], dim=1)  # (N, 4, H, W)
    index = shape[:, None, None, None].expand(-1, 1, *u.shape[1:])
    return every_shape.gather(1, index).squeeze(1)


# The random numbers behind one image: one row of a uniform (n, 21) draw, by column.
_COLUMNS = (
    "shape", "colour", "radius", "x", "y", "rotation", "hue_jitter", "brightness", "invert",
    "freq1", "orient1", "freq2", "orient2", "texture_level", "noise_level",
)
_PHASES = (slice(15, 18), slice(18, 21))  # per-channel phases of the two stripe patterns
_N_COLUMNS = 21


def _objects(params: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each image shows, from its random numbers: the labels plus the nuisances."""
    p = dict(zip(_COLUMNS, params.unbind(1)))
    radius = _RADIUS[0] + p["radius"] * (_RADIUS[1] - _RADIUS[0])  # fraction of the side
    margin = 1.15 * radius  # a rotated square's corner reaches 0.8 * sqrt(2) radii out
    return {
        "shape": (p["shape"] * len(SHAPES)).long().clamp(max=len(SHAPES) - 1),
        "colour": (p["colour"] * len(COLOURS)).long().clamp(max=len(COLOURS) - 1),
        "size": p["radius"],
        "radius": radius,
        "position": torch.stack([margin + p[c] * (1 - 2 * margin) for c in ("x", "y")], dim=1),
        **{k: p[k] for k in _COLUMNS[5:]},
    }


def _render(params: torch.Tensor, noise: torch.Tensor, size: int, domain: Domain) -> torch.Tensor:
    """Images ``(N, 3, size, size)`` from the random numbers ``(N, 21)`` of :func:`make_shapes`."""
    o = _objects(params)
    radius = (size * o["radius"])[:, None, None]  # pixels, (N, 1, 1)
    centre = size * o["position"]
    angle = torch.deg2rad((2 * o["rotation"] - 1) * domain.rotation)[:, None, None]

    # Pixel centres: x is the column, y the row (growing downwards).
    coords = torch.arange(size, device=params.device, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    dx = gx - centre[:, 0, None, None]
    dy = gy - centre[:, 1, None, None]
    u = (torch.cos(angle) * dx + torch.sin(angle) * dy) / radius
    v = (-torch.sin(angle) * dx + torch.cos(angle) * dy) / radius
    # Distance in pixels -> coverage: a one-pixel soft edge instead of jagged staircases.
    alpha = (0.5 - _signed_distance(o["shape"], u, v) * radius).clamp(0.0, 1.0)[:, None]

    hue = o["colour"] * _HUE_STEP + (2 * o["hue_jitter"] - 1) * 10.0 + domain.hue_shift
    rgb = _hue_to_rgb(hue) * (0.7 + 0.3 * o["brightness"])[:, None]  # (N, 3)
    background = 0.12
    image = background + alpha * (rgb[:, :, None, None] - background)  # (N, 3, H, W)

    # Texture: two oriented stripe patterns, with a different phase in each channel.
    texture = torch.zeros_like(image)
    for k, phases in zip((1, 2), _PHASES):
        freq = (2.0 + 5.0 * o[f"freq{k}"])[:, None, None, None]  # cycles per image
        theta = (math.pi * o[f"orient{k}"])[:, None, None]
        along = ((torch.cos(theta) * gx + torch.sin(theta) * gy) / size)[:, None]
        phase = (2 * math.pi * params[:, phases])[:, :, None, None]
        texture += 0.5 * torch.sin(2 * math.pi * freq * along + phase)
    # Texture and noise strength vary per image, so that a model trained on a domain has
    # seen a range of levels: one trained at a single noise level fails at a slightly higher one.
    image = image + (domain.texture * o["texture_level"])[:, None, None, None] * texture

    inverted = (o["invert"] < domain.invert_prob)[:, None, None, None]
    image = torch.where(inverted, 1.0 - image, image)
    return (image + (domain.noise * o["noise_level"])[:, None, None, None] * noise).clamp_(0.0, 1.0)


def make_shapes(
    n: int,
    *,
    size: int = 32,
    seed: int = 0,
    domain: Union[str, Domain] = "source",
    device: Union[torch.device, str] = "cpu",
) -> TensorData:
    """``n`` RGB images of one coloured shape each, with four labels (chapters 4.1 and 4.2).

    Every image shows a circle, square, triangle or cross of a random colour, size,
    position and (slight) rotation on a dark, faintly striped background with pixel
    noise. The ``domain`` changes how the images look, never what the labels mean.

    Args:
        n: number of images.
        size: side length in pixels (at least 16).
        seed: the same seed (and ``n``, ``size``, ``domain``, ``device``) gives the same
            data. The labels and object layout come from a CPU generator, so the same
            seed gives the *same objects* in every domain and on every device, drawn
            differently; only the pixel noise is drawn on ``device``.
        domain: a preset name from :data:`DOMAINS` (``"source"``, ``"near"``, ``"far"``,
            ``"unrelated"``) or a :class:`Domain`, e.g. ``Domain.interpolate(0.3)``.
        device: where to build the images (a GPU makes 100,000 in one call).

    Returns:
        :class:`~mtl_tl.data.TensorData` with ``x`` float32 ``(n, 3, size, size)`` in [0, 1]
        and ``y`` a dict of labels:

        * ``"shape"``: int64 ``(n,)`` in 0..3, names in :data:`SHAPES`;
        * ``"colour"``: int64 ``(n,)`` in 0..4, names in :data:`COLOURS`;
        * ``"size"``: float32 ``(n,)`` in [0, 1], the shape's outer radius rescaled from
          its range of 12%-30% of the image side;
        * ``"position"``: float32 ``(n, 2)`` in [0, 1], the shape's centre ``(x, y)`` as a
          fraction of the image side (``x`` = column, ``y`` = row, from the top left).
    """
    n = check_int("n", n, min_value=1)
    size = check_int("size", size, min_value=16)
    seed = check_int("seed", seed)
    domain = _as_domain(domain)
    check_type("device", device, (torch.device, str))
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a device torch knows ('cpu', 'cuda', ...)") from err

    generator = torch.Generator().manual_seed(seed)
    params = torch.rand(n, _N_COLUMNS, generator=generator).to(device)
    noise_generator = torch.Generator(device=device).manual_seed(seed)

    # Rendering in chunks bounds the memory of the (chunk, 4, size, size) distance maps.
    chunk = max(1, 2**22 // (size * size))
    x = torch.empty(n, 3, size, size, device=device)
    for start in range(0, n, chunk):
        part = params[start : start + chunk]
        noise = torch.randn(len(part), 3, size, size, generator=noise_generator, device=device)
        x[start : start + chunk] = _render(part, noise, size, domain)

    objects = _objects(params)
    return TensorData(x, {k: objects[k].clone() for k in ("shape", "colour", "size", "position")})


def _pairs(n_digits: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(left, right)``, each ``(n,)``, of two different digits per composite."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.randint(n_digits, (n,), generator=generator)
    # An offset in 1..N-1 makes the right digit a different image from the left one.
    right = (left + torch.randint(1, n_digits, (n,), generator=generator)) % n_digits
    return left, right


def make_multi_digits(data: TensorData, n: int, *, seed: int = 0, size: int = 28) -> TensorData:
    """MultiMNIST-style images of two overlapping digits of any size, one label per digit (chapter 4.2).

    A variant of Sener and Koltun's construction (:func:`make_multi_mnist`) for digits of
    any size, such as scikit-learn's 8x8 ones: each digit is resized to 30x30 and
    pasted on an empty 36x36 canvas, the *left* one with its top-left corner at (0, 0)
    and the *right* one at (6, 6); where they overlap the brighter pixel wins
    (elementwise max). The canvas is then resized to ``size``. Reading both digits is
    two classification tasks on one image.

    Args:
        data: single-digit images, ``x`` of shape ``(N, 1, H, W)`` in [0, 1] and ``y``
            int64 ``(N,)`` (e.g. :func:`mtl_tl.data.load_digits` or MNIST), with N >= 2.
        n: number of composites to make.
        seed: seed of the choice of digit pairs.
        size: side length of the output in pixels (at least 8).

    Returns:
        :class:`~mtl_tl.data.TensorData` with ``x`` float32 ``(n, 1, size, size)`` in
        [0, 1] on ``data``'s device and ``y = {"left": int64 (n,), "right": int64 (n,)}``,
        the labels of the digit pasted at (0, 0) and of the one at (6, 6). The two
        digits of a composite are always two different images.
    """
    check_type("data", data, TensorData)
    n = check_int("n", n, min_value=1)
    seed = check_int("seed", seed)
    size = check_int("size", size, min_value=8)
    if data.x.shape[1] != 1:
        raise ValueError(
            f"data.x must be single-channel digits (N, 1, H, W), got shape {tuple(data.x.shape)}"
        )
    if not isinstance(data.y, torch.Tensor) or data.y.dtype != torch.long or data.y.ndim != 1:
        got = (
            f"{data.y.dtype} of shape {tuple(data.y.shape)}"
            if isinstance(data.y, torch.Tensor) else "a dict of labels"
        )
        raise TypeError(f"data.y must be int64 class labels of shape (N,), got {got}")
    if len(data) < 2:
        raise ValueError(f"data must hold at least 2 digits to pair, got {len(data)}")

    left, right = (index.to(data.x.device) for index in _pairs(len(data), n, seed))

    def resized(index: torch.Tensor) -> torch.Tensor:
        return F.interpolate(data.x[index].float(), size=(30, 30), mode="bilinear", align_corners=False)

    canvas = torch.zeros(n, 1, 36, 36, device=data.x.device)
    canvas[:, :, :30, :30] = resized(left)
    canvas[:, :, 6:, 6:] = torch.maximum(canvas[:, :, 6:, 6:], resized(right))
    x = F.interpolate(canvas, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return TensorData(x.clamp_(0.0, 1.0), {"left": data.y[left], "right": data.y[right]})


def _check_digits(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``images`` as ``(N, 1, H, H)`` floats in [0, 1], checked against ``labels (N,)``."""
    check_tensor("images", images, ndim=(3, 4), floating=True, min_len=2)
    digits = images.unsqueeze(1) if images.ndim == 3 else images
    if digits.shape[1] != 1 or digits.shape[2] != digits.shape[3]:
        raise ValueError(
            "images must be square single-channel digits, (N, H, H) or (N, 1, H, H), "
            f"got shape {tuple(images.shape)}"
        )
    if not bool(((digits >= 0) & (digits <= 1)).all()):
        raise ValueError(
            f"images must hold values in [0, 1], got [{float(digits.min()):.3g}, {float(digits.max()):.3g}]; "
            "divide 8-bit pixels by 255"
        )
    check_tensor("labels", labels, ndim=1, dtype=torch.long)
    if len(labels) != len(digits):
        raise ValueError(f"images has {len(digits)} digits but labels has {len(labels)} entries; they must match")
    return digits


def make_multi_mnist(
    images: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    *,
    seed: int = 0,
    canvas: int = 36,
    offset: int = 6,
    size: int = 28,
) -> TensorData:
    """MultiMNIST as Sener and Koltun (2018) built it: two overlapping digits, two tasks (chapter 4.2).

    Each composite pastes one digit, at its own size, with its top-left corner at (0, 0)
    of an empty ``canvas x canvas`` image (the *left* digit) and another at
    ``(offset, offset)`` (the *right* digit, towards the bottom right); where they
    overlap the brighter pixel wins (elementwise max). The canvas is then resized to
    ``size`` with nearest-neighbour sampling. With MNIST's 28x28 digits the defaults
    are the paper's construction: a 36x36 canvas, the right digit at (6, 6), 28x28
    output. :func:`make_multi_digits` is the variant for digits of other sizes.

    Args:
        images: digits ``(N, H, H)`` or ``(N, 1, H, H)``, floats in [0, 1], N >= 2
            (e.g. torchvision's MNIST, any split, divided by 255).
        labels: int64 ``(N,)``, the digits' classes.
        n: number of composites to make.
        seed: seed of the choice of digit pairs.
        canvas: side of the canvas in pixels; at least ``H + offset``.
        offset: where the right digit's top-left corner goes, ``(offset, offset)``; >= 1.
        size: side length of the output in pixels (at least 8).

    Returns:
        :class:`~mtl_tl.data.TensorData` with ``x`` float32 ``(n, 1, size, size)`` in
        [0, 1] on ``images``' device and ``y = {"left": int64 (n,), "right": int64 (n,)}``,
        the labels of the digit at (0, 0) and of the one at (offset, offset). The two
        digits of a composite are always two different images.
    """
    digits = _check_digits(images, labels)
    n = check_int("n", n, min_value=1)
    seed = check_int("seed", seed)
    offset = check_int("offset", offset, min_value=1)
    side = digits.shape[-1]
    canvas = check_int("canvas", canvas, min_value=1)
    if canvas < side + offset:
        raise ValueError(
            f"canvas={canvas} is too small for {side}x{side} digits with the right one at offset={offset}; "
            f"choose canvas >= {side + offset} (MNIST: canvas=36, offset=6)"
        )
    size = check_int("size", size, min_value=8)

    left, right = (index.to(digits.device) for index in _pairs(len(digits), n, seed))
    x = torch.zeros(n, 1, canvas, canvas, device=digits.device)
    x[:, :, :side, :side] = digits[left].float()
    placed = x[:, :, offset : offset + side, offset : offset + side]
    x[:, :, offset : offset + side, offset : offset + side] = torch.maximum(placed, digits[right].float())
    x = F.interpolate(x, size=(size, size), mode="nearest")
    labels = labels.to(digits.device)
    return TensorData(x, {"left": labels[left], "right": labels[right]})
