"""Visualisation of explanations: heatmap overlays, per-token LLR charts, HTML reports.

All figures are :class:`matplotlib.figure.Figure` objects rendered with the Agg canvas;
pyplot is never used, so everything is headless and thread-safe.
"""

from .overlay import heat_rgba, overlay_figure, save_overlay
from .plots import curves_figure, llr_figure, token_maps_figure
from .report import figure_to_base64_png, render_report, save_report, tokens_html

__all__ = [
    "curves_figure",
    "figure_to_base64_png",
    "heat_rgba",
    "llr_figure",
    "overlay_figure",
    "render_report",
    "save_overlay",
    "save_report",
    "token_maps_figure",
    "tokens_html",
]
