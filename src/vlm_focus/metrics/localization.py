"""Localisation metrics: does a heatmap point at the evidence? Pure functions of
``(heatmap [H, W], mask [H, W])``.

The mask marks the pixels an honest answer depends on (for the shapes scenes,
:attr:`vlm_focus.data.shapes.Sample.evidence`). Heatmap and mask must share one grid - the
heatmaps of :class:`~vlm_focus.explanation.Explanation` already live on the image's grid.
Any nonzero mask value counts as inside. **An empty mask gives NaN**: nothing in the image
is evidence, so the sample is skipped by averages (:func:`vlm_focus.metrics.mean_ci`
ignores NaN).

Flat heatmaps (every pixel equal, e.g. the all-zero map of a method that found nothing)
are treated as "no preference": mass-based scores give the chance level ``|mask| / N``
and the pointing game counts a miss.

Example::

    >>> import numpy as np
    >>> heat = np.zeros((4, 4)); heat[0, 0] = 1.0; heat[3, 3] = 0.5
    >>> mask = np.zeros((4, 4), bool); mask[0, :2] = True
    >>> pointing_game(heat, mask), relevance_mass(heat, mask)
    (1.0, 0.6666666666666666)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import InputError

POINTING_TOLERANCE = 15  # pixels, as Zhang et al. (2016/2018)


def as_map(x: Any, name: str = "heatmap") -> np.ndarray:
    """A 2-D float64 array from a numpy array, nested list or torch tensor."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name} must be 2-D [H, W], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return a


def _pair(heatmap: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    h = as_map(heatmap)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.shape != h.shape:
        raise InputError(
            f"heatmap {h.shape} and mask {m.shape} must have the same shape "
            "(resize the heatmap to the mask's grid first)"
        )
    return h, m != 0


def pointing_game(heatmap: Any, mask: Any, tolerance: float = POINTING_TOLERANCE) -> float:
    """1.0 if the heatmap's maximum lies within ``tolerance`` pixels of the mask, else 0.0
    (with tied maxima: the share of them that do).

    Reference: Zhang et al., "Top-down neural attention by excitation backprop" (ECCV 2016;
    IJCV 2018), which counts a hit when the maximum falls within 15 px of the object.
    Definition: with ``d(p)`` the Euclidean distance from pixel ``p`` to the nearest mask
    pixel (0 inside), hit iff ``d(argmax h) <= tolerance``. Tied maxima (common: iGOS++
    masks saturate at 0, giving many pixels of heat 1) count by their share within the
    tolerance - the expected hit of a random tie-break - so a saturated map neither always
    hits nor always misses. Differences: a flat map has no maximum and counts as a miss
    (otherwise it would always hit); the tolerance is a parameter because 15 px is a
    quarter of a 64-px scene - scale it with the image. NaN for an empty mask.
    """
    if tolerance < 0:
        raise InputError(f"tolerance must be >= 0 pixels, got {tolerance}")
    h, m = _pair(heatmap, mask)
    if not m.any():
        return float("nan")
    if h.max() == h.min():
        return 0.0
    distance = ndimage.distance_transform_edt(~m)  # 0 on the mask
    return float((distance[h == h.max()] <= tolerance).mean())


def relevance_mass(heatmap: Any, mask: Any) -> float:
    """Share of the positive relevance that falls inside the mask, in [0, 1].

    Reference: Arras, Osman & Samek, "CLEVR-XAI: a benchmark dataset for the ground truth
    evaluation of neural network explanations" (Information Fusion 2022), relevance mass
    accuracy ``R_within / R_total`` over positive relevance only:
    ``sum(max(h, 0) * mask) / sum(max(h, 0))``. A map without positive relevance gives the
    chance level ``|mask| / N``. NaN for an empty mask.
    """
    h, m = _pair(heatmap, mask)
    if not m.any():
        return float("nan")
    pos = np.maximum(h, 0.0)
    total = pos.sum()
    if total <= 0:
        return float(m.mean())
    return float(pos[m].sum() / total)


def relevance_rank(heatmap: Any, mask: Any) -> float:
    """Share of the ``K = |mask|`` most relevant pixels that lie inside the mask, in [0, 1].

    Reference: Arras, Osman & Samek (2022), relevance rank accuracy: take the top-K pixels
    of the heatmap, K the number of mask pixels, and count the share inside the mask.
    Ties at the K-th value are split evenly (the expected score under random tie-breaking),
    so the result does not depend on pixel order and a flat map scores ``|mask| / N``.
    NaN for an empty mask.
    """
    h, m = _pair(heatmap, mask)
    k = int(m.sum())
    if k == 0:
        return float("nan")
    flat, inside = h.ravel(), m.ravel()
    kth = np.partition(flat, flat.size - k)[flat.size - k]  # the K-th largest value
    above, tied = flat > kth, flat == kth
    share_of_ties = (k - above.sum()) / tied.sum()
    hits = (above & inside).sum() + share_of_ties * (tied & inside).sum()
    return float(hits / k)


def energy_pointing(heatmap: Any, mask: Any) -> float:
    """Energy-based pointing game: the share of the map's energy inside the mask, in [0, 1].

    Reference: Wang et al., "Score-CAM: score-weighted visual explanations for convolutional
    neural networks" (CVPR-W 2020), Sec. 5.1.2: ``sum(L * mask) / sum(L)`` for a saliency map
    ``L`` normalised to [0, 1]. The map is min-max normalised here first, so unlike
    :func:`relevance_mass` a constant offset does not count as energy; for the package's
    heatmaps (already in [0, 1] with minimum 0) the two agree. A flat map gives the chance
    level ``|mask| / N``. NaN for an empty mask.
    """
    h, m = _pair(heatmap, mask)
    if not m.any():
        return float("nan")
    lo, hi = h.min(), h.max()
    if hi == lo:
        return float(m.mean())
    energy = (h - lo) / (hi - lo)
    return float(energy[m].sum() / energy.sum())


def localization_scores(heatmap: Any, mask: Any, tolerance: float = POINTING_TOLERANCE) -> dict[str, float]:
    """All four scores above as a dict (NaN each for an empty mask)."""
    return {
        "pointing_game": pointing_game(heatmap, mask, tolerance),
        "relevance_mass": relevance_mass(heatmap, mask),
        "relevance_rank": relevance_rank(heatmap, mask),
        "energy_pointing": energy_pointing(heatmap, mask),
    }
