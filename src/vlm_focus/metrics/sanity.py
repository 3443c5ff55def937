"""Similarity of two heatmaps for the model-randomisation sanity check (Adebayo et al.,
"Sanity checks for saliency maps", NeurIPS 2018): pure functions of two maps.

The check itself (randomise the model's weights, explain again) runs a model, so it lives
in :mod:`vlm_focus.randomization` (one explanation) and :mod:`vlm_focus.study.sanity` (a
dataset); this module keeps only the comparison: Spearman rank correlation and SSIM of the
two min-max normalised maps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .compare import rank_correlation
from .localization import as_map


def ssim(a: Any, b: Any, data_range: float = 1.0, sigma: float = 1.5, truncate: float = 3.5) -> float:
    """Structural similarity of two maps of one shape, in [-1, 1].

    Reference: Wang et al., "Image quality assessment: from error visibility to structural
    similarity" (IEEE TIP 2004): local means, variances and covariance under a Gaussian
    window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, averaged over the map. As
    scikit-image's ``structural_similarity(gaussian_weights=True)``: reflected borders and
    the border of half a window width left out of the mean (kept for maps too small).
    """
    x, y = as_map(a, "first map"), as_map(b, "second map")
    if x.shape != y.shape:
        raise InputError(f"ssim needs maps of one shape, got {x.shape} and {y.shape}")

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(z, sigma, mode="reflect", truncate=truncate)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = int(truncate * sigma + 0.5)
    if min(s.shape) > 2 * r:
        s = s[r:-r, r:-r]
    return float(s.mean())


def similarity(map_a: Any, map_b: Any) -> dict[str, float]:
    """``{"spearman", "ssim"}`` between two heatmaps of one shape.

    Both are min-max normalised to [0, 1] first (SSIM with ``data_range = 1``), as Adebayo
    et al. compare normalised maps. NaN when either map is flat.
    """
    x, y = as_map(map_a, "first map"), as_map(map_b, "second map")
    if x.shape != y.shape:
        raise InputError(f"maps of shapes {x.shape} and {y.shape} differ")
    if x.max() == x.min() or y.max() == y.min():
        return {"spearman": math.nan, "ssim": math.nan}
    x, y = (x - x.min()) / (x.max() - x.min()), (y - y.min()) / (y.max() - y.min())
    return {"spearman": rank_correlation(x, y, resize=False), "ssim": ssim(x, y)}
