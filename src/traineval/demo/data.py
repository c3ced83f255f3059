"""Embedded data for the demo: coloured shapes and textures, and colourful blob images.

Everything is generated from a seed with a private ``torch.Generator`` (the global random
state is left alone), so the same seed gives bit-identical tensors and nothing is downloaded.

>>> from traineval.demo.data import shapes_dataset, CLASS_NAMES
>>> x, y = shapes_dataset(16, seed=0)
>>> tuple(x.shape), x.dtype, int(y.max()) < len(CLASS_NAMES)
((16, 3, 16, 16), torch.float32, True)
>>> bool(torch.equal(x, shapes_dataset(16, seed=0)[0]))   # deterministic
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["CLASS_NAMES", "IMAGE_SIZE", "blobs_dataset", "shapes_dataset"]

IMAGE_SIZE = 16
_SUPER = 2  # supersampling factor: shapes are drawn at 2x and averaged down (anti-aliasing)

CLASS_NAMES = (
    "disk",
    "square",
    "ring",
    "cross",
    "triangle",
    "h-stripes",
    "v-stripes",
    "checker",
)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _contrasting_colours(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background colours at least 0.45 apart (Euclidean, RGB in [0, 1])."""
    fg = torch.rand(n, 3, generator=gen)
    bg = torch.rand(n, 3, generator=gen)
    for _ in range(20):
        close = (fg - bg).norm(dim=1) < 0.45
        if not bool(close.any()):
            break
        bg[close] = torch.rand(int(close.sum()), 3, generator=gen)
    close = (fg - bg).norm(dim=1) < 0.45
    bg[close] = 1.0 - fg[close].round()  # the opposite corner of the colour cube: far enough
    return fg, bg


def shapes_dataset(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (``n×3×16×16``, values in [0, 1]) of coloured shapes and textures, and their labels.

    Eight balanced classes (:data:`CLASS_NAMES`): five shapes of random size and position and
    three stripe/checker textures of random period and phase. Foreground and background
    colours are random and independent of the class, so the label is the *form*; each image
    also gets a random contrast and pixel noise.

    >>> x, y = shapes_dataset(8, seed=1)
    >>> sorted(y.tolist())                       # balanced: one of each class
    [0, 1, 2, 3, 4, 5, 6, 7]
    >>> 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    True
    """
    gen = torch.Generator().manual_seed(int(seed))
    k = len(CLASS_NAMES)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=gen)]
    size = IMAGE_SIZE * _SUPER
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / _SUPER  # pixel centres, 0..16
    yy = coords.view(1, size, 1)
    xx = coords.view(1, 1, size)

    radius = _uniform(gen, n, 3.5, 6.5).view(n, 1, 1)
    cx = (_uniform(gen, n, 0.0, 1.0).view(n, 1, 1) * (IMAGE_SIZE - 2 * radius) + radius)
    cy = (_uniform(gen, n, 0.0, 1.0).view(n, 1, 1) * (IMAGE_SIZE - 2 * radius) + radius)
    dx, dy = xx - cx, yy - cy
    dist = (dx**2 + dy**2).sqrt()
    period = _uniform(gen, n, 3.0, 6.0).view(n, 1, 1)
    phase = _uniform(gen, n, 0.0, 2 * math.pi).view(n, 1, 1)
    wave_x = torch.sin(2 * math.pi * xx / period + phase)
    wave_y = torch.sin(2 * math.pi * yy / period + phase)

    masks = torch.stack(
        [
            dist <= radius,
            torch.maximum(dx.abs(), dy.abs()) <= 0.8 * radius,
            (dist <= radius) & (dist >= 0.55 * radius),
            ((dx.abs() <= radius / 3) & (dy.abs() <= radius)) | ((dy.abs() <= radius / 3) & (dx.abs() <= radius)),
            (dy.abs() <= 0.8 * radius) & (dx.abs() <= (dy + 0.8 * radius) * 0.6),
            (wave_y > 0).expand(n, size, size),
            (wave_x > 0).expand(n, size, size),
            (wave_x * wave_y > 0),
        ]
    )  # (k, n, size, size)
    mask = masks[labels, torch.arange(n)].float().unsqueeze(1)  # (n, 1, size, size)
    mask = F.avg_pool2d(mask, _SUPER)  # anti-aliased coverage in [0, 1]

    fg, bg = _contrasting_colours(gen, n)
    images = bg.view(n, 3, 1, 1) + (fg - bg).view(n, 3, 1, 1) * mask
    contrast = _uniform(gen, n, 0.6, 1.0).view(n, 1, 1, 1)
    images = 0.5 + (images - 0.5) * contrast
    images = images + 0.04 * torch.randn(images.shape, generator=gen)
    return images.clamp_(0.0, 1.0), labels


def blobs_dataset(n: int, *, seed: int) -> torch.Tensor:
    """``n`` colourful images (``n×3×16×16`` in [0, 1]): soft saturated blobs on a coloured gradient.

    Used by the autoencoder example (C6): every image has its own strong colour cast, which a
    BatchNorm fed a batch of one normalises away.

    >>> x = blobs_dataset(4, seed=0)
    >>> tuple(x.shape), 0.0 <= float(x.min()), float(x.max()) <= 1.0
    ((4, 3, 16, 16), True, True)
    """
    gen = torch.Generator().manual_seed(int(seed))
    coords = (torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5) / IMAGE_SIZE  # 0..1
    yy = coords.view(1, 1, IMAGE_SIZE, 1)
    xx = coords.view(1, 1, 1, IMAGE_SIZE)
    # background: a linear gradient between two random colours, at a random angle
    c0 = torch.rand(n, 3, 1, 1, generator=gen)
    c1 = torch.rand(n, 3, 1, 1, generator=gen)
    angle = _uniform(gen, n, 0.0, 2 * math.pi).view(n, 1, 1, 1)
    t = ((xx - 0.5) * torch.cos(angle) + (yy - 0.5) * torch.sin(angle) + 0.5).clamp(0, 1)
    images = c0 + (c1 - c0) * t
    for _ in range(3):
        colour = torch.rand(n, 3, 1, 1, generator=gen)
        colour = colour / colour.amax(dim=1, keepdim=True).clamp_min(1e-3)  # saturated: max channel 1
        bx = torch.rand(n, 1, 1, 1, generator=gen)
        by = torch.rand(n, 1, 1, 1, generator=gen)
        width = _uniform(gen, n, 0.08, 0.22).view(n, 1, 1, 1)
        weight = torch.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * width**2))
        images = images + (colour - images) * weight
    return images.clamp_(0.0, 1.0)
