"""What each score means, in one paragraph: shown beside the numbers in reports and the app.

The wording follows :mod:`vlm_focus.metrics`: deletion and insertion are normalised to the
baseline (``s' = (s - s_baseline) / (s_image - s_baseline)``), so 1 is the full image's
score and 0 the baseline's, and a value may leave [0, 1] when a partly changed image scores
beyond either end.
"""

from __future__ import annotations

import math
from typing import Any

SCORE_HELP: dict[str, str] = {
    "deletion": (
        "Deletion AUC, lower is better. The image cells are replaced by the baseline (blurred) "
        "image, hottest first, and the selected tokens are scored after each step; scores are "
        "normalised so that the full image is 1 and the baseline 0. A faithful map removes the "
        "evidence first, so the curve drops at once and the area is small. Below 0: part-deleted "
        "images scored under the baseline itself."
    ),
    "insertion": (
        "Insertion AUC, higher is better. The reverse of deletion: cells of the image are put "
        "back into the baseline, hottest first, with the same normalisation (baseline 0, full "
        "image 1). A faithful map restores the answer with few cells. Above 1: part-restored "
        "images scored higher than the full image."
    ),
    "baseline_prob": (
        "Mean probability of the selected tokens on the baseline image. The paper keeps samples "
        "below 5 %: above that the baseline still shows the evidence, and the map explains less."
    ),
    "pointing_game": (
        "1 when the hottest pixel lies on (or within a few pixels of) the evidence mask, else 0; "
        "the mean over samples is the hit rate."
    ),
    "relevance_mass": "Share of the map's positive heat that falls inside the evidence mask (0 to 1).",
    "relevance_rank": (
        "Share of the K hottest pixels that lie inside the evidence mask, K its size (0 to 1; "
        "a flat map scores the mask's share of the image)."
    ),
    "energy_pointing": "Share of the min-max normalised map's energy inside the evidence mask (0 to 1).",
    "human_soft_iou": "Soft IoU between the map and a human attention map (paper Table 8), higher is closer.",
    "human_rank_correlation": "Spearman rank correlation of the map with the human attention map.",
    "human_topk_iou": "IoU of the top 10 % pixels of the map and of the human map.",
    "sanity_spearman": (
        "Rank correlation between the map and the map of a model with randomised weights; lower "
        "is better (a map that survives randomisation does not depend on what the model learnt)."
    ),
    "sanity_ssim": "Structural similarity to the randomised model's map; lower is better.",
    "accuracy": "Share of answers graded correct against the reference (Wilson 95 % interval).",
}

LOWER_IS_BETTER = frozenset({"deletion", "sanity_spearman", "sanity_ssim", "baseline_prob"})


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, ``-`` for missing or non-finite values."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else "-"


def direction(name: str) -> str:
    """``"lower is better"``, ``"higher is better"`` or ``""`` for a score name."""
    if name in LOWER_IS_BETTER:
        return "lower is better"
    if name in SCORE_HELP and name != "baseline_prob":
        return "higher is better"
    return ""
