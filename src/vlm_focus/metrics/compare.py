"""Comparing two maps: a model's focus against a reference or human attention map
(paper Table 8, VQA-HAT: IoU ~0.01, rank correlation ~ -0.2), or two methods/models.

Both functions take 2-D maps (numpy arrays or torch tensors). With ``resize=True`` the
second map is resized (area-averaged when shrinking, else bilinearly) to the first map's grid;
otherwise the shapes must match. A flat map (all values equal) has no focus to compare:
the result is NaN.

Example::

    >>> import numpy as np
    >>> a = np.array([[0.0, 1.0], [0.5, 0.0]])
    >>> round(soft_iou(a, a), 3), round(rank_correlation(a, a), 3)
    (1.0, 1.0)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

from ..errors import InputError
from .localization import as_map


def resize_map(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``[h, w]`` to ``shape``: area averaging when shrinking, else bilinear with
    half-pixel centres (as ``to_image_grid``)."""
    if tuple(x.shape) == tuple(shape):
        return x
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))[None, None]
    if shape[0] <= x.shape[0] and shape[1] <= x.shape[1]:  # shrinking: average the covered pixels
        out = F.interpolate(t, size=tuple(shape), mode="area")
    else:
        shrink = shape[0] < x.shape[0] or shape[1] < x.shape[1]
        out = F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].numpy()


def _pair(a: Any, b: Any, resize: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_map(a, "first map"), as_map(b, "second map")
    if x.shape != y.shape:
        if not resize:
            raise InputError(f"maps of shapes {x.shape} and {y.shape} differ; pass resize=True")
        y = resize_map(y, x.shape)
    return x, y


def _unit(x: np.ndarray) -> np.ndarray | None:
    lo, hi = x.min(), x.max()
    return None if hi == lo else (x - lo) / (hi - lo)


def soft_iou(a: Any, b: Any, resize: bool = True) -> float:
    """Soft (fuzzy) intersection over union of two maps, in [0, 1].

    Definition: both maps are min-max normalised to [0, 1], then
    ``IoU = sum(min(a, b)) / sum(max(a, b))`` - the Ruzicka similarity, which equals the
    usual IoU when both maps are binary. Reference: the paper compares model focus with
    VQA-HAT human attention by IoU (Table 8); with hard masks use binary maps here.
    NaN when either map is flat.
    """
    ux, uy = (_unit(m) for m in _pair(a, b, resize))
    if ux is None or uy is None:
        return float("nan")
    return float(np.minimum(ux, uy).sum() / np.maximum(ux, uy).sum())


def rank_correlation(a: Any, b: Any, resize: bool = True) -> float:
    """Spearman rank correlation between the pixel values of two maps, in [-1, 1].

    Reference: Das et al., "Human attention in visual question answering" (VQA-HAT, 2016)
    compare attention maps by rank correlation; the paper reports ~ -0.2 between LVLM focus
    and human attention (Table 8). Computed with :func:`scipy.stats.spearmanr` over all
    pixels (ties get average ranks). NaN when either map is flat.
    """
    x, y = _pair(a, b, resize)
    if x.max() == x.min() or y.max() == y.min():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = stats.spearmanr(x.ravel(), y.ravel()).statistic
    return float(rho)
