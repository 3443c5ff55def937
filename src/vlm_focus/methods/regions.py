"""Image regions for region-level methods: a regular grid, or scikit-image's SLIC superpixels.

Used by ``subset``, by iGOS++'s superpixel start (``init="segments"``) and by the
hallucination study's correction regions. scikit-image is a core dependency; the SLIC path
still checks that it imports (a broken install gets :class:`InputError`, not a traceback).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import InputError
from .compose import phi

SEGMENTS = ("auto", "grid", "slic")
SLIC_MISSING = "segments='slic' needs scikit-image, which did not import (pip install scikit-image)"


def have_skimage() -> bool:
    try:
        import skimage.segmentation  # noqa: F401
    except ImportError:
        return False
    return True


def grid_regions(height: int, width: int, n: int) -> torch.Tensor:
    """Labels ``[height, width]`` (0..R-1) of a grid of about ``n`` near-square cells."""
    rows = min(height, max(1, round(math.sqrt(n * height / width))))
    cols = min(width, max(1, round(n / rows)))
    r = (torch.arange(height) * rows // height).view(-1, 1)
    c = (torch.arange(width) * cols // width).view(1, -1)
    return r * cols + c


def slic_regions(pixels: torch.Tensor, n: int, compactness: float) -> torch.Tensor:
    """Labels ``[H, W]`` (0..R-1, contiguous) of scikit-image's SLIC superpixels of ``pixels``."""
    from skimage.segmentation import slic

    image = pixels.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    labels = slic(image, n_segments=n, compactness=compactness, start_label=0, channel_axis=-1)
    _, inverse = torch.unique(torch.as_tensor(labels).long(), return_inverse=True)
    return inverse


def make_regions(
    pixels: torch.Tensor, n_regions: int, segments: str = "grid", compactness: float = 10.0
) -> torch.Tensor:
    """Region labels ``[H, W]`` (0..R-1) of ``pixels`` ``[3, H, W]``: ``segments`` is one of
    :data:`SEGMENTS` (``"auto"``: SLIC when scikit-image can be imported, else the grid)."""
    if segments not in SEGMENTS:
        raise InputError(f"segments must be one of {SEGMENTS}, got {segments!r}")
    if segments == "slic" or (segments == "auto" and have_skimage()):
        if not have_skimage():
            raise InputError(SLIC_MISSING)
        return slic_regions(pixels, n_regions, compactness)
    H, W = pixels.shape[-2:]
    return grid_regions(H, W, n_regions)


def each_deleted(
    score: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    regions: torch.Tensor | None = None,
) -> torch.Tensor:
    """``score`` (images ``[B, 3, H, W]`` -> ``[B]``) of ``pixels`` with each of ``regions``
    (labels of ``labels`` ``[H, W]``; all of them by default; -1 deletes nothing) replaced by
    ``baseline``, ``batch_size`` images at a time: the ``[len(regions)]`` scores. Each batch's
    masks are built when it is scored, so memory does not grow with the number of regions."""
    todo = torch.arange(int(labels.max()) + 1, device=labels.device) if regions is None else regions
    values = []
    for chunk in todo.to(labels.device).split(batch_size):
        keep = (labels[None] != chunk.view(-1, 1, 1)).to(pixels.dtype)[:, None]
        values.append(score(phi(pixels[None], baseline[None], keep)).reshape(-1))
    return torch.cat(values)
