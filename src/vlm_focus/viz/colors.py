"""Heatmap colouring and compositing, in numpy: the pictures every view shares.

Why not the old look (jet at up to 60 % opacity over the colour image): a red object under
red heat disappears and heat over blue turns purple. The default here is a perceptual
colormap (``inferno``) over a *greyed, dimmed* copy of the image, so the only colour in the
picture is the heat, and its brightness reads as its value. ``style="contour"`` keeps the
image's own colours instead: the top ``top_k`` share of the heat stays bright inside a
white-and-black line, the rest is dimmed.

Functions return float arrays in [0, 1] or ``uint8`` RGB arrays; the figures
(:mod:`.overlay`), the thumbnails of run reports (:mod:`.run_report`) and the web app draw
these same arrays, so they all look alike.

Example::

    rgb = overlay_rgb(image, heatmap)                 # uint8 [H, W, 3], inferno over grey
    rgb = overlay_rgb(image, heatmap, style="contour", top_k=0.1)
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.colors import Colormap, to_hex
from PIL import Image
from scipy import ndimage

from ..errors import InputError

DEFAULT_CMAP = "inferno"
DEFAULT_OPACITY = 0.85
DEFAULT_TOP_K = 0.2
STYLES = ("heat", "contour")
GREY_LEVEL = 0.55  # the greyed image is dimmed to this brightness, so bright heat stands out
CONTOUR_DIM = 0.35  # brightness of the image outside the top-k region in contour mode


def colormap(cmap: str | Colormap) -> Colormap:
    """A matplotlib colormap from its name (a clear error for an unknown one)."""
    if isinstance(cmap, Colormap):
        return cmap
    try:
        return matplotlib.colormaps[str(cmap)]
    except KeyError:
        raise InputError(
            f"unknown colormap {cmap!r}; try inferno, magma, viridis, plasma, cividis or turbo"
        ) from None


def check_style(style: str, opacity: float, top_k: float) -> None:
    """Refuse an unknown style, an opacity outside [0, 1] or a top-k share outside (0, 1]."""
    if style not in STYLES:
        raise InputError(f"unknown overlay style {style!r}; choose from {', '.join(STYLES)}")
    if not 0.0 <= float(opacity) <= 1.0:
        raise InputError(f"opacity must be in [0, 1], got {opacity!r}")
    if not 0.0 < float(top_k) <= 1.0:
        raise InputError(f"top_k must be a share in (0, 1], got {top_k!r}")


def normalise(heatmap: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (float64); non-finite pixels and a constant map give 0."""
    h = np.asarray(heatmap, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [H, W], got shape {h.shape}")
    finite = np.isfinite(h)
    norm = np.zeros_like(h)
    if finite.any():
        lo, hi = float(h[finite].min()), float(h[finite].max())
        if hi > lo:
            norm = np.where(finite, (h - lo) / (hi - lo), 0.0)
    return norm


def heat_rgba(heatmap: np.ndarray, cmap: str | Colormap = DEFAULT_CMAP, alpha_max: float = 0.6) -> np.ndarray:
    """Colour a heatmap into an RGBA float array ``[H, W, 4]`` for drawing over an image.

    The map is min-max normalised first; the colour comes from ``cmap`` and the alpha grows
    linearly from 0 at the minimum to ``alpha_max`` at the maximum, so cold regions leave the
    image visible. A constant (or all non-finite) map is fully transparent.
    """
    norm = normalise(heatmap)
    rgba = np.asarray(colormap(cmap)(norm), dtype=np.float64)
    rgba[..., 3] = norm * float(alpha_max)
    return rgba


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """RGB ``uint8`` ``[H, W, 3]`` from a PIL image or an array (grey arrays are repeated)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return arr[..., :3]


def greyed(rgb: np.ndarray, level: float = GREY_LEVEL) -> np.ndarray:
    """The image as dimmed grey, float ``[H, W, 3]`` in [0, level] (Rec. 601 luma)."""
    x = np.asarray(rgb, dtype=np.float64) / 255.0
    luma = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    return np.repeat((luma * level)[..., None], 3, axis=-1)


def top_region(heatmap: np.ndarray, top_k: float = DEFAULT_TOP_K) -> np.ndarray:
    """Boolean mask of the ``top_k`` share of pixels with the most heat (ties included).

    A constant map has no top region (all False)."""
    norm = normalise(heatmap)
    if norm.max() <= 0:
        return np.zeros(norm.shape, dtype=bool)
    threshold = np.quantile(norm, 1.0 - float(top_k))
    return (norm >= threshold) & (norm > 0)


def overlay_rgb(
    image: Image.Image | np.ndarray,
    heatmap: np.ndarray | None,
    *,
    cmap: str | Colormap = DEFAULT_CMAP,
    opacity: float = DEFAULT_OPACITY,
    style: str = "heat",
    top_k: float = DEFAULT_TOP_K,
    grey: bool = True,
) -> np.ndarray:
    """The heatmap drawn over the image, ``uint8`` RGB ``[H, W, 3]`` on the heatmap's grid.

    ``style="heat"``: ``cmap`` colours over the image (greyed and dimmed when ``grey``), with
    opacity growing from 0 at the coolest pixel to ``opacity`` at the hottest, so no colour
    of the image is mistaken for heat. ``style="contour"``: the image in colour, dimmed
    outside the ``top_k`` share of the heat, with a white line (black-edged, so it shows on
    any background) around that region. With ``heatmap=None`` the image is returned as it
    is. The image is resized to the heatmap's grid when the two differ.
    """
    check_style(style, opacity, top_k)
    rgb = as_rgb_array(image)
    if heatmap is None:
        return rgb.copy()
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [H, W], got shape {heat.shape}")
    if rgb.shape[:2] != heat.shape:
        rgb = np.asarray(
            Image.fromarray(rgb).resize((heat.shape[1], heat.shape[0]), Image.Resampling.BILINEAR)
        )
    if style == "contour":
        return _contour(rgb, heat, top_k)
    base = greyed(rgb) if grey else rgb.astype(np.float64) / 255.0
    rgba = heat_rgba(heat, cmap, opacity)
    a = rgba[..., 3:4]
    out = base * (1.0 - a) + rgba[..., :3] * a
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _contour(rgb: np.ndarray, heat: np.ndarray, top_k: float) -> np.ndarray:
    region = top_region(heat, top_k)
    x = rgb.astype(np.float64) / 255.0
    out = np.where(region[..., None], x, x * CONTOUR_DIM)
    width = max(1, round(max(heat.shape) / 200))
    inner = ndimage.binary_erosion(region, iterations=width, border_value=0)
    edge = region & ~inner
    halo = ndimage.binary_dilation(edge, iterations=width) & ~edge
    out[halo] = 0.0
    out[edge] = 1.0
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def display_size(height: int, width: int, min_side: int = 448, max_side: int = 1024) -> tuple[int, int]:
    """``(height, width)`` to draw an image at: tiny images enlarged by a whole factor (so
    pixel art stays crisp), huge ones shrunk, the aspect ratio kept."""
    longest = max(height, width, 1)
    if longest < min_side:
        factor = -(-min_side // longest)
        return height * factor, width * factor
    if longest > max_side:
        scale = max_side / longest
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


def for_display(
    image: Image.Image | np.ndarray, heatmap: np.ndarray | None, min_side: int = 448, max_side: int = 1024
) -> tuple[np.ndarray, np.ndarray | None]:
    """Image and heatmap resized together to :func:`display_size` (image: nearest when
    enlarged, Lanczos when shrunk; heatmap: bilinear), ready for :func:`overlay_rgb`."""
    rgb = as_rgb_array(image)
    h, w = rgb.shape[:2]
    dh, dw = display_size(h, w, min_side, max_side)
    if (dh, dw) != (h, w):
        resample = Image.Resampling.NEAREST if dh > h else Image.Resampling.LANCZOS
        rgb = np.asarray(Image.fromarray(rgb).resize((dw, dh), resample))
    heat = None
    if heatmap is not None:
        heat = np.asarray(heatmap, dtype=np.float32)
        if heat.shape != (dh, dw):
            heat = np.asarray(
                Image.fromarray(np.nan_to_num(heat).astype(np.float32)).resize(
                    (dw, dh), Image.Resampling.BILINEAR
                )
            )
    return rgb, heat


def gradient_css(cmap: str | Colormap = DEFAULT_CMAP, stops: int = 11) -> str:
    """A CSS ``linear-gradient`` (left = 0, right = 1) of ``cmap``, for HTML colour bars."""
    cm = colormap(cmap)
    parts = [f"{to_hex(cm(i / (stops - 1)))} {100 * i / (stops - 1):.0f}%" for i in range(stops)]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"
