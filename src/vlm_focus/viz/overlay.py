"""Heatmap-over-image figures: the plain image, the overlay, a colour bar, and the
token-highlighted answer.

Everything here builds :class:`matplotlib.figure.Figure` objects directly and renders them
with the Agg canvas: no pyplot state is touched, so the functions are thread-safe and work
headless. Text is laid out in inches from the top of the figure: every piece is measured
with the Agg renderer first, wrapped into lines, and only then is the figure height fixed.
The pictures come from :mod:`.colors` (inferno over a greyed image by default, or a
contour around the top-k region); images are drawn at a display size that enlarges tiny
scenes by a whole factor and shrinks huge photographs, so both stay legible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image

from .colors import (
    DEFAULT_CMAP,
    DEFAULT_OPACITY,
    DEFAULT_TOP_K,
    as_rgb_array,
    check_style,
    colormap,
    for_display,
    heat_rgba,
    overlay_rgb,
)
from .layout import printable, words, wrap

SELECTED_COLOR = "#d62728"
SELECTED_BACKGROUND = "#fde2e1"
OTHER_COLOR = "black"
NO_HEATMAP_NOTE = "answer does not depend on the image: no heatmap"
TOKENS_NOTE = "red, bold: the image-dependent answer tokens that the heatmap explains"
COLORBAR_LABEL = "relative heat (0 = least, 1 = most)"

_MARGIN_IN = 0.3
_GAP_IN = 0.15
_PANEL_GAP_IN = 0.25
_COLORBAR_IN = 1.05  # bar, tick labels and the rotated label
_MAX_IMAGE_HEIGHT_IN = 4.6
_LINE_SPACING = 1.45

__all__ = [
    "COLORBAR_LABEL",
    "NO_HEATMAP_NOTE",
    "SELECTED_COLOR",
    "heat_rgba",
    "overlay_figure",
    "printable",
    "save_overlay",
]

_STYLES: dict[str, dict[str, Any]] = {
    "normal": {"color": OTHER_COLOR, "weight": "normal", "style": "normal"},
    "selected": {"color": SELECTED_COLOR, "weight": "bold", "style": "normal"},
    "label": {"color": OTHER_COLOR, "weight": "bold", "style": "normal"},
    "note": {"color": "#555555", "weight": "normal", "style": "italic"},
    "title": {"color": OTHER_COLOR, "weight": "bold", "style": "normal"},
    "panel": {"color": "#333333", "weight": "normal", "style": "normal"},
}


def overlay_figure(
    image: Image.Image | np.ndarray,
    heatmap: np.ndarray | None,
    question: str,
    tokens: Sequence[str],
    selected: Sequence[int],
    title: str = "",
    *,
    cmap: str | Colormap = DEFAULT_CMAP,
    alpha_max: float = DEFAULT_OPACITY,
    style: str = "heat",
    top_k: float = DEFAULT_TOP_K,
    grey: bool = True,
    side_by_side: bool = True,
    text: bool = True,
    fontsize: float = 12.0,
    dpi: float = 100.0,
) -> Figure:
    """Draw the plain image, the heatmap over it and a colour bar; beneath, the question and
    the answer.

    ``style``: ``"heat"`` (``cmap`` over the greyed image, opacity up to ``alpha_max``) or
    ``"contour"`` (a line around the ``top_k`` share of the heat, the rest dimmed).
    ``side_by_side``: the plain image beside the overlay. ``text``: the question and answer
    beneath (reports that print them as HTML pass False). The answer is written token by
    token: tokens whose index is in ``selected`` are red and bold on a pale red ground, the
    others black; long answers wrap. With ``heatmap=None`` the image is shown alone with a
    note that the answer does not depend on it. Images keep their aspect ratio. ``dpi``
    should match the resolution the figure will be saved at.
    """
    check_style(style, alpha_max, top_k)
    cm = colormap(cmap)
    rgb, heat = for_display(image, heatmap)
    img_h, img_w = int(rgb.shape[0]), int(rgb.shape[1])
    sel = {int(i) for i in selected}
    panels = 1 if heatmap is None else (2 if side_by_side else 1)
    bar = heatmap is not None and style == "heat"
    fig_width = 8.0 if panels == 2 else 6.4

    fig = Figure(figsize=(fig_width, 4.0), dpi=dpi)
    renderer = FigureCanvasAgg(fig).get_renderer()
    sizes = {"title": fontsize * 1.1, "panel": fontsize * 0.9, "note": fontsize * 0.9}
    cache: dict[tuple[str, str], float] = {}

    def fontprops(kind: str) -> FontProperties:
        spec = _STYLES[kind]
        return FontProperties(size=sizes.get(kind, fontsize), weight=spec["weight"], style=spec["style"])

    def measure(piece: str, kind: str) -> float:
        if (piece, kind) not in cache:
            w, _, _ = renderer.get_text_width_height_descent(piece, fontprops(kind), ismath=False)
            cache[(piece, kind)] = float(w) / renderer.dpi
        return cache[(piece, kind)]

    def line_height(kind: str) -> float:
        return sizes.get(kind, fontsize) / 72.0 * _LINE_SPACING

    text_width = fig_width - 2 * _MARGIN_IN
    room = text_width - (_COLORBAR_IN if bar else 0.0) - _PANEL_GAP_IN * (panels - 1)
    scale = min(room / panels / max(img_w, 1), _MAX_IMAGE_HEIGHT_IN / max(img_h, 1))
    disp_w, disp_h = img_w * scale, img_h * scale

    placed: list[tuple[float, float, str, str]] = []  # (y_baseline, x, text, style), inches from top
    y = _MARGIN_IN

    def add_block(runs: Sequence[tuple[str, str]], kind: str = "normal") -> None:
        nonlocal y
        lh = line_height(kind)
        for line in wrap(runs, text_width, measure):
            placed.extend((y + lh * 0.75, _MARGIN_IN + x, s, st) for x, s, st in line)
            y += lh

    if title:
        add_block([(w, "title") for w in words(title)], "title")
        y += _GAP_IN * 0.5
    block_w = panels * disp_w + _PANEL_GAP_IN * (panels - 1) + (_COLORBAR_IN if bar else 0.0)
    left0 = (fig_width - block_w) / 2
    lefts = [left0 + i * (disp_w + _PANEL_GAP_IN) for i in range(panels)]
    captions: list[str] = []
    if heatmap is not None:
        what = "heat" if style == "heat" else f"top {top_k:.0%} of the heat (inside the line)"
        captions = (["image"] if panels == 2 else []) + [what]
        lh = line_height("panel")
        for left, caption in zip(lefts, captions):
            cx = left + (disp_w - measure(caption, "panel")) / 2
            placed.append((y + lh * 0.75, max(cx, _MARGIN_IN), caption, "panel"))
        y += lh
    img_top = y
    y += disp_h + _GAP_IN
    if heatmap is None:
        add_block([(w, "note") for w in words(NO_HEATMAP_NOTE)], "note")
        y += _GAP_IN * 0.5
    if text:
        add_block([("Question:", "label")] + [(w, "normal") for w in words(" " + str(question))])
        y += _GAP_IN * 0.5
        answer_runs: list[tuple[str, str]] = [("Answer:", "label")]
        for i, t in enumerate(tokens):
            piece = " " + printable(t).lstrip(" ") if i == 0 else printable(t)
            answer_runs.append((piece, "selected" if i in sel else "normal"))
        if not tokens:
            answer_runs.append((" (empty answer)", "note"))
        add_block(answer_runs)
        if sel and heatmap is not None:
            add_block([(w, "note") for w in words(TOKENS_NOTE)], "note")
    height = y + _MARGIN_IN
    fig.set_size_inches(fig_width, height)

    def axes_at(left: float, width: float) -> Any:
        box = (left / fig_width, (height - img_top - disp_h) / height, width / fig_width, disp_h / height)
        return fig.add_axes(box)

    extent = (-0.5, img_w - 0.5, img_h - 0.5, -0.5)
    pictures = [rgb] if heatmap is None else []
    if heatmap is not None:
        drawn = overlay_rgb(rgb, heat, cmap=cm, opacity=alpha_max, style=style, top_k=top_k, grey=grey)
        pictures = ([rgb] if panels == 2 else []) + [drawn]
    for left, picture in zip(lefts, pictures):
        ax = axes_at(left, disp_w)
        ax.imshow(picture, extent=extent, interpolation="antialiased")
        ax.set_xlim(-0.5, img_w - 0.5)
        ax.set_ylim(img_h - 0.5, -0.5)
        ax.set_axis_off()
    if bar:
        cax = axes_at(lefts[-1] + disp_w + 0.12, 0.16)
        cb = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cm), cax=cax)
        cb.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
        cb.ax.tick_params(labelsize=fontsize * 0.75)
        cb.set_label(COLORBAR_LABEL, fontsize=fontsize * 0.75)

    for base, x, s, kind in placed:
        spec = _STYLES[kind]
        extra: dict[str, Any] = {}
        if kind == "selected":
            extra["bbox"] = {
                "boxstyle": "square,pad=0.1",
                "facecolor": SELECTED_BACKGROUND,
                "edgecolor": "none",
            }
        fig.text(
            x,
            height - base,
            s,
            transform=fig.dpi_scale_trans,
            fontproperties=fontprops(kind),
            color=spec["color"],
            ha="left",
            va="baseline",
            parse_math=False,
            usetex=False,
            **extra,
        )
    return fig


def save_overlay(
    path: str | Path,
    image: Image.Image | np.ndarray,
    heatmap: np.ndarray | None,
    question: str,
    tokens: Sequence[str],
    selected: Sequence[int],
    title: str = "",
    dpi: int = 150,
    **options: Any,
) -> Path:
    """Render :func:`overlay_figure` (``options``: its keyword options, e.g. ``cmap``,
    ``alpha_max``, ``style``, ``top_k``) and write it as a PNG at ``path``; returns the path."""
    out = Path(path)
    fig = overlay_figure(image, heatmap, question, tokens, selected, title=title, dpi=dpi, **options)
    fig.savefig(out, format="png", dpi=dpi, facecolor="white")
    return out


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Kept for callers of the old private name (:func:`vlm_focus.viz.colors.as_rgb_array`)."""
    return as_rgb_array(image)
