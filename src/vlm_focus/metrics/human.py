"""Model focus against a human attention map (VQA-HAT; paper Table 8). Pure functions of
``(heatmap [H, W], human [h, w])``; the human map is resized to the heatmap's grid.

- soft IoU and Spearman rank correlation: :func:`~vlm_focus.metrics.compare.soft_iou` and
  :func:`~vlm_focus.metrics.compare.rank_correlation` (the paper's two numbers);
- :func:`topk_iou`: the IoU of the two maps' top-``fraction`` pixels - the hard-mask reading
  of "do they look at the same place", insensitive to how peaked either map is.

Example::

    >>> import numpy as np
    >>> heat = np.array([[1.0, 0.0], [0.0, 0.0]]); human = np.array([[0.9, 0.1], [0.0, 0.0]])
    >>> topk_iou(heat, human, fraction=0.25)
    1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .compare import _pair, rank_correlation, soft_iou

TOP_FRACTION = 0.1  # the top 10% of the pixels


def top_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Float ``[H, W]`` weights of the ``k`` largest pixels of ``x``: 1 above the ``k``-th
    largest value, and the ties at that value sharing what is left of ``k`` evenly, so
    the mask does not depend on pixel order (a flat map spreads ``k`` over every pixel)."""
    flat = x.ravel()
    kth = np.partition(flat, flat.size - k)[flat.size - k]
    above, tied = flat > kth, flat == kth
    weights = above.astype(np.float64)
    weights[tied] = (k - above.sum()) / tied.sum()
    return weights.reshape(x.shape)


def topk_iou(heatmap: Any, human: Any, fraction: float = TOP_FRACTION, resize: bool = True) -> float:
    """IoU of the top-``fraction`` pixels of ``heatmap`` and of ``human``, in [0, 1].

    Definition: ``k = max(1, round(fraction * N))``; each map becomes the mask of its ``k``
    largest pixels (ties at the ``k``-th value weighted evenly, see :func:`top_mask`) and
    ``IoU = sum(min(a, b)) / sum(max(a, b))`` (the plain IoU when there are no ties).
    Reference: the top-k binarisation of saliency maps of Das et al. (VQA-HAT, 2016) for
    comparing attention; the paper's Table 8 reports soft IoU, see
    :func:`~vlm_focus.metrics.compare.soft_iou`. NaN when either map is flat.
    """
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    x, y = _pair(heatmap, human, resize)
    if x.max() == x.min() or y.max() == y.min():
        return float("nan")
    k = max(1, round(fraction * x.size))
    a, b = top_mask(x, k), top_mask(y, k)
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def human_map_scores(heatmap: Any, human: Any, fraction: float = TOP_FRACTION) -> dict[str, float]:
    """``human_soft_iou``, ``human_rank_correlation`` and ``human_topk_iou`` of ``heatmap``
    against the human attention map ``human`` (resized to the heatmap's grid)."""
    return {
        "human_soft_iou": soft_iou(heatmap, human, resize=True),
        "human_rank_correlation": rank_correlation(heatmap, human, resize=True),
        "human_topk_iou": topk_iou(heatmap, human, fraction, resize=True),
    }
