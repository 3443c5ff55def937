"""Differentiable torch re-implementations of Hugging Face image processors' steps.

Each function takes pixels ``[B, 3, H, W]`` in ``[0, 1]`` and keeps the autograd graph,
so a mask applied to the image reaches the model through exactly the preprocessing its
processor would do. Tests hold each against the Hugging Face processor's output.

Hugging Face processors resize 8-bit images (PIL or torchvision on uint8) and so round
the resized image to 1/255 steps; :func:`quantize` reproduces that rounding with a
straight-through gradient, which keeps the outputs within 1e-3 of the processor's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PIL_BICUBIC, PIL_BILINEAR = 3, 2


def size_dict(size) -> dict:
    """A processor's ``size``/``crop_size`` (int, dict or SizeDict) as a plain dict."""
    if isinstance(size, int):
        return {"shortest_edge": size}
    if isinstance(size, dict):
        return dict(size)
    keys = ("shortest_edge", "longest_edge", "height", "width", "max_height", "max_width")
    return {k: getattr(size, k) for k in keys if getattr(size, k, None) is not None}


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 1/255 steps in the forward pass; identity gradient (straight-through)."""
    q = torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255  # PIL rounds half up
    return x + (q - x).detach()


def _pillow_major() -> int:
    import PIL

    return int(PIL.__version__.split(".")[0])


def resize(
    pixels: torch.Tensor, size: tuple[int, int], resample: int = PIL_BICUBIC, round8: bool = True
) -> torch.Tensor:
    """Pillow-like antialiased resize to ``size = (height, width)``.

    Pillow resamples in two passes, rounding to 8 bits after each (so do we when
    ``round8``): the horizontal pass first, except (Pillow >= 13, python-pillow/Pillow#9549)
    when the height shrinks by more than twice as many pixels as the width,
    ``h < H and H - h > 2 * (W - w)``. Measured against Pillow 13.0 on 600 random size
    pairs: all equal; the other order is off by one 8-bit step in 15-30 % of the pixels.
    """
    h, w = size
    H, W = pixels.shape[-2:]
    if (H, W) == (h, w):
        return pixels
    mode = "bicubic" if resample == PIL_BICUBIC else "bilinear"
    vertical_first = _pillow_major() >= 13 and h < H and H - h > 2 * (W - w)
    x = pixels
    for step in [(h, W), (h, w)] if vertical_first else [(H, w), (h, w)]:
        if tuple(x.shape[-2:]) != step:
            x = F.interpolate(x, size=step, mode=mode, antialias=True, align_corners=False)
            x = quantize(x) if round8 else x
    return x


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """Output size when the shorter side is resized to ``shortest_edge`` (HF's rule)."""
    short, long = (height, width) if height <= width else (width, height)
    new_long = int(shortest_edge * long / short)
    return (shortest_edge, new_long) if height <= width else (new_long, shortest_edge)


def center_crop(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the centre ``(height, width)``; pads with zeros when the image is smaller."""
    h, w = size
    H, W = pixels.shape[-2:]
    if H < h or W < w:
        ph, pw = max(0, h - H), max(0, w - W)
        pixels = F.pad(pixels, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        H, W = pixels.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return pixels[..., top : top + h, left : left + w]


def normalize(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    return (pixels - m) / s
