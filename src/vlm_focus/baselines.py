"""Baseline images that carry no visual evidence: blur (default), blank, noise.

The blur follows the paper's reference code: an OpenCV-style Gaussian blur whose kernel
grows with the image width (101 / 201 / 301 / 501 px for widths < 500 / >= 500 / >= 800 /
>= 2000) with sigma = kernel - 1. On small images that is close to a flat image of the
mean colour, as intended. Differences from the reference: the blur is done in torch on
the ``[0, 1]`` pixel tensor (separable, reflect-101 border like OpenCV's default, with the
border reflected repeatedly when the kernel is wider than the image) instead of OpenCV on
the uint8 image, so there is no rounding to 8 bits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import InputError

BASELINES: dict[str, Callable[..., torch.Tensor]] = {}


def _register(name: str):
    def wrap(fn):
        BASELINES[name] = fn
        return fn

    return wrap


def blur_kernel_size(width: int) -> int:
    """The reference code's kernel size for an image ``width`` pixels wide."""
    if width >= 2000:
        return 501
    if width >= 800:
        return 301
    if width >= 500:
        return 201
    return 101


def _reflect_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Reflect-101 padding of ``pad`` on both sides of ``dim``, repeated if ``pad`` >= size."""
    while pad > 0:
        n = x.shape[dim]
        p = min(pad, n - 1)
        if p <= 0:  # a 1-pixel line: nothing to reflect, repeat it
            return torch.cat([x.narrow(dim, 0, 1)] * pad + [x] + [x.narrow(dim, 0, 1)] * pad, dim)
        before = x.narrow(dim, 1, p).flip(dim)
        after = x.narrow(dim, n - 1 - p, p).flip(dim)
        x = torch.cat([before, x, after], dim)
        pad -= p
    return x


def gaussian_blur(pixels: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[..., 3, H, W]`` with reflect-101 borders."""
    half = kernel // 2
    coords = torch.arange(kernel, dtype=torch.float32, device=pixels.device) - half
    weights = torch.exp(-(coords**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).to(pixels.dtype)
    shape = pixels.shape
    x = pixels.reshape(-1, 1, *shape[-2:])
    x = _reflect_pad(x, half, 3)
    x = F.conv2d(x, weights.view(1, 1, 1, -1))
    x = _reflect_pad(x, half, 2)
    x = F.conv2d(x, weights.view(1, 1, -1, 1))
    return x.reshape(shape)


@_register("blur")
def blur(pixels: torch.Tensor, kernel: int | None = None, sigma: float | None = None, **_) -> torch.Tensor:
    """Strong Gaussian blur scaled with the image (paper default)."""
    k = kernel or blur_kernel_size(pixels.shape[-1])
    return gaussian_blur(pixels, k, sigma if sigma is not None else float(k - 1))


@_register("blank")
def blank(pixels: torch.Tensor, value: float | None = None, **_) -> torch.Tensor:
    """A flat image: the image's mean colour, or grey level ``value`` in [0, 1]."""
    if value is not None:
        return torch.full_like(pixels, float(value))
    return pixels.mean(dim=(-2, -1), keepdim=True).expand_as(pixels).clone()


@_register("noise")
def noise(pixels: torch.Tensor, seed: int = 0, **_) -> torch.Tensor:
    """Uniform random noise in [0, 1] (seeded; the reference code's noise baseline)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(pixels.shape, generator=gen).to(pixels)


def make_baseline(name: str, pixels: torch.Tensor, **options) -> torch.Tensor:
    """Baseline ``name`` for ``pixels`` ``[3, H, W]`` in [0, 1]."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    return BASELINES[name](pixels, **options)
