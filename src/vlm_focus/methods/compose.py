"""Compositing an image with its baseline through a low-resolution mask (paper Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(mask: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Upsampling of ``[B, 1, h, w]`` masks to ``size = (H, W)`` (bilinear or nearest)."""
    if mode == "nearest":
        return F.interpolate(mask, size=size, mode="nearest")
    return F.interpolate(mask, size=size, mode=mode, align_corners=False)


def phi(image: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image * mask + baseline * (1 - mask)``; mask ``[B, 1, H, W]`` broadcasts over channels."""
    return image * mask + baseline * (1 - mask)
