"""Faithfulness and localisation metrics, as pure functions."""

from .compare import rank_correlation, resize_map, soft_iou
from .deletion_insertion import cell_order, deletion_insertion, score_fn, trapezoid_auc
from .human import human_map_scores, topk_iou
from .localization import energy_pointing, localization_scores, pointing_game, relevance_mass, relevance_rank
from .sanity import similarity, ssim
from .stats import mean_ci, wilson_ci

__all__ = [
    "cell_order",
    "deletion_insertion",
    "energy_pointing",
    "human_map_scores",
    "localization_scores",
    "mean_ci",
    "pointing_game",
    "rank_correlation",
    "relevance_mass",
    "relevance_rank",
    "resize_map",
    "score_fn",
    "similarity",
    "soft_iou",
    "ssim",
    "topk_iou",
    "trapezoid_auc",
    "wilson_ci",
]
