"""Heatmap-over-image figures with the question and the token-highlighted answer.

Everything here builds :class:`matplotlib.figure.Figure` objects directly and renders them
with the Agg canvas: no pyplot state is touched, so the functions are thread-safe and work
headless. Text is laid out in inches from the top of the figure: every piece is measured
with the Agg renderer first, wrapped into lines, and only then is the figure height fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image

SELECTED_COLOR = "#d62728"
OTHER_COLOR = "black"
NO_HEATMAP_NOTE = "answer does not depend on the image: no heatmap"

_FIG_WIDTH_IN = 6.4
_MARGIN_IN = 0.3
_MAX_IMAGE_HEIGHT_IN = 5.5
_GAP_IN = 0.15
_LINE_SPACING = 1.45

# A run is (text, style); a placed piece is (x_inches, text, style).
_Run = tuple[str, str]
_Placed = tuple[float, str, str]


def printable(text: str) -> str:
    """Token text safe to draw: newlines/tabs kept, other control characters as U+FFFD."""
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in str(text))


def heat_rgba(heatmap: np.ndarray, cmap: str | Colormap = "jet", alpha_max: float = 0.6) -> np.ndarray:
    """Colour a heatmap into an RGBA float array ``[H, W, 4]`` for drawing over an image.

    The map is min-max normalised first; the colour comes from ``cmap`` and the alpha grows
    linearly from 0 at the minimum to ``alpha_max`` at the maximum, so cold regions leave the
    image visible. A constant (or all non-finite) map is fully transparent.
    """
    h = np.asarray(heatmap, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [H, W], got shape {h.shape}")
    finite = np.isfinite(h)
    norm = np.zeros_like(h)
    if finite.any():
        lo, hi = float(h[finite].min()), float(h[finite].max())
        if hi > lo:
            norm = np.where(finite, (h - lo) / (hi - lo), 0.0)
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    rgba = np.asarray(colormap(norm), dtype=np.float64)
    rgba[..., 3] = norm * float(alpha_max)
    return rgba


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return arr


def _split_runs(runs: Sequence[_Run]) -> list[list[tuple[int, str, str]] | None]:
    """Group runs into words of ``(leading_spaces, core, style)`` pieces; ``None`` = line break.

    A new word starts at a run with leading whitespace, so sub-word tokens (" circ", "le")
    stay together when wrapping.
    """
    words: list[list[tuple[int, str, str]] | None] = []
    current: list[tuple[int, str, str]] = []
    pending_spaces = 0
    for text, style in runs:
        parts = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
        for i, part in enumerate(parts):
            if i > 0:
                if current:
                    words.append(current)
                    current = []
                words.append(None)
                pending_spaces = 0
            core = part.strip(" ")
            lead = len(part) - len(part.lstrip(" "))
            if not core:
                pending_spaces += len(part)
                continue
            lead += pending_spaces
            if lead and current:
                words.append(current)
                current = []
            current.append((lead, core, style))
            pending_spaces = len(part) - len(part.rstrip(" "))
    if current:
        words.append(current)
    return words


def _wrap(
    runs: Sequence[_Run], max_width: float, measure: Callable[[str, str], float]
) -> list[list[_Placed]]:
    """Place runs on lines no wider than ``max_width`` inches (words are not split if avoidable)."""
    space = measure(" ", "normal") or measure("a a", "normal") - measure("aa", "normal")
    lines: list[list[_Placed]] = [[]]
    x = 0.0

    def newline() -> None:
        nonlocal x
        lines.append([])
        x = 0.0

    for word in _split_runs(runs):
        if word is None:
            newline()
            continue
        lead = word[0][0] * space if x > 0 else 0.0
        width = sum(measure(core, st) for _, core, st in word) + sum(n * space for n, _, _ in word[1:])
        if x > 0 and x + lead + width > max_width:
            newline()
            lead = 0.0
        if width <= max_width - x - lead:
            x += lead
            for i, (n, core, st) in enumerate(word):
                if i > 0:
                    x += n * space
                lines[-1].append((x, core, st))
                x += measure(core, st)
            continue
        # A word wider than a whole line: break it piece by piece, then character by character.
        for i, (n, core, st) in enumerate(word):
            x += lead if i == 0 else n * space
            chunk = ""
            for ch in core:
                if chunk and x + measure(chunk + ch, st) > max_width:
                    lines[-1].append((x, chunk, st))
                    newline()
                    chunk = ""
                chunk += ch
            if chunk:
                if x > 0 and x + measure(chunk, st) > max_width:
                    newline()
                lines[-1].append((x, chunk, st))
                x += measure(chunk, st)
    return lines


_STYLES: dict[str, dict[str, Any]] = {
    "normal": {"color": OTHER_COLOR, "weight": "normal", "style": "normal"},
    "selected": {"color": SELECTED_COLOR, "weight": "bold", "style": "normal"},
    "label": {"color": OTHER_COLOR, "weight": "bold", "style": "normal"},
    "note": {"color": "#555555", "weight": "normal", "style": "italic"},
    "title": {"color": OTHER_COLOR, "weight": "bold", "style": "normal"},
}


def overlay_figure(
    image: Image.Image | np.ndarray,
    heatmap: np.ndarray | None,
    question: str,
    tokens: Sequence[str],
    selected: Sequence[int],
    title: str = "",
    *,
    cmap: str | Colormap = "jet",
    alpha_max: float = 0.6,
    fontsize: float = 12.0,
    dpi: float = 100.0,
) -> Figure:
    """Draw the image with the heatmap over it and, beneath, the question and the answer.

    The answer is written token by token: tokens whose index is in ``selected`` are red and
    bold, the others black; long answers wrap over several lines. With ``heatmap=None`` the
    image is shown alone with a note that the answer does not depend on it. The image keeps
    its aspect ratio. ``dpi`` should match the resolution the figure will be saved at.
    """
    rgb = _as_rgb_array(image)
    img_h, img_w = int(rgb.shape[0]), int(rgb.shape[1])
    sel = {int(i) for i in selected}

    fig = Figure(figsize=(_FIG_WIDTH_IN, 4.0), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    sizes = {"title": fontsize * 1.1}
    cache: dict[tuple[str, str], float] = {}

    def fontprops(style: str) -> FontProperties:
        spec = _STYLES[style]
        return FontProperties(size=sizes.get(style, fontsize), weight=spec["weight"], style=spec["style"])

    def measure(text: str, style: str) -> float:
        key = (text, style)
        if key not in cache:
            w, _, _ = renderer.get_text_width_height_descent(text, fontprops(style), ismath=False)
            cache[key] = float(w) / renderer.dpi
        return cache[key]

    def line_height(style: str) -> float:
        return sizes.get(style, fontsize) / 72.0 * _LINE_SPACING

    text_width = _FIG_WIDTH_IN - 2 * _MARGIN_IN
    scale = min(text_width / max(img_w, 1), _MAX_IMAGE_HEIGHT_IN / max(img_h, 1))
    disp_w, disp_h = img_w * scale, img_h * scale

    # Top-down layout, y in inches from the top edge: (y_baseline, x, text, style).
    placed: list[tuple[float, float, str, str]] = []
    y = _MARGIN_IN

    def add_block(runs: Sequence[_Run], style_for_height: str = "normal") -> None:
        nonlocal y
        lh = line_height(style_for_height)
        for line in _wrap(runs, text_width, measure):
            base = y + lh * 0.75
            placed.extend((base, _MARGIN_IN + x, s, st) for x, s, st in line)
            y += lh

    if title:
        add_block([(w, "title") for w in _words(title)], "title")
        y += _GAP_IN
    img_top = y
    y += disp_h + _GAP_IN
    if heatmap is None:
        add_block([(w, "note") for w in _words(NO_HEATMAP_NOTE)])
        y += _GAP_IN * 0.5
    add_block([("Question:", "label")] + [(w, "normal") for w in _words(" " + str(question))])
    y += _GAP_IN * 0.5
    answer_runs: list[_Run] = [("Answer:", "label")]
    for i, t in enumerate(tokens):
        text = " " + printable(t).lstrip(" ") if i == 0 else printable(t)
        answer_runs.append((text, "selected" if i in sel else "normal"))
    if not tokens:
        answer_runs.append((" (empty answer)", "note"))
    add_block(answer_runs)
    height = y + _MARGIN_IN

    fig.set_size_inches(_FIG_WIDTH_IN, height)
    left = (_FIG_WIDTH_IN - disp_w) / 2
    ax = fig.add_axes(
        (left / _FIG_WIDTH_IN, (height - img_top - disp_h) / height, disp_w / _FIG_WIDTH_IN, disp_h / height)
    )
    extent = (-0.5, img_w - 0.5, img_h - 0.5, -0.5)
    ax.imshow(rgb, extent=extent, interpolation="antialiased")
    if heatmap is not None:
        ax.imshow(heat_rgba(heatmap, cmap, alpha_max), extent=extent, interpolation="bilinear")
    ax.set_xlim(-0.5, img_w - 0.5)
    ax.set_ylim(img_h - 0.5, -0.5)
    ax.set_axis_off()

    for base, x, s, st in placed:
        spec = _STYLES[st]
        fig.text(
            x,
            height - base,
            s,
            transform=fig.dpi_scale_trans,
            fontproperties=fontprops(st),
            color=spec["color"],
            ha="left",
            va="baseline",
            parse_math=False,
            usetex=False,
        )
    return fig


def _words(text: str) -> list[str]:
    """Split plain text into runs that keep their leading space (for word wrapping)."""
    out: list[str] = []
    for i, line in enumerate(text.split("\n")):
        if i > 0:
            out.append("\n")
        pieces = line.split(" ")
        out.extend((" " + p if j > 0 else p) for j, p in enumerate(pieces) if p or j == 0)
    return [w for w in out if w]


def save_overlay(
    path: str | Path,
    image: Image.Image | np.ndarray,
    heatmap: np.ndarray | None,
    question: str,
    tokens: Sequence[str],
    selected: Sequence[int],
    title: str = "",
    dpi: int = 150,
) -> Path:
    """Render :func:`overlay_figure` and write it as a PNG at ``path``; returns the path."""
    out = Path(path)
    fig = overlay_figure(image, heatmap, question, tokens, selected, title=title, dpi=dpi)
    fig.savefig(out, format="png", dpi=dpi, facecolor="white")
    return out
