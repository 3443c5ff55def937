"""Per-token log-likelihood-ratio bar charts, deletion/insertion curves, per-token maps.

Both functions return :class:`matplotlib.figure.Figure` objects on an Agg canvas (no
pyplot state), ready for ``fig.savefig`` or :func:`vlm_focus.viz.report.figure_to_base64_png`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from .colors import DEFAULT_CMAP, DEFAULT_OPACITY
from .overlay import SELECTED_COLOR, printable

OTHER_BAR_COLOR = "#9e9e9e"
_MAX_LABELLED_TOKENS = 80


def _token_label(token: str) -> str:
    """Display form of a token: outer whitespace dropped, whitespace-only tokens shown as '␣'."""
    text = printable(token).replace("\n", "\\n").replace("\t", "\\t").strip()
    return text if text else "␣"


def llr_figure(
    tokens: Sequence[str],
    llr: Sequence[float],
    alpha: float,
    selected: Sequence[int],
) -> Figure:
    """Bar chart of the per-token log-likelihood ratio (one bar per token).

    Bars of the ``selected`` (image-dependent) tokens are red, the others grey; the token
    strings are the x tick labels and a dashed horizontal line marks the threshold ``alpha``.
    """
    n = min(len(tokens), len(llr))
    values = np.array([float(v) for v in list(llr)[:n]], dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    sel = {int(i) for i in selected}
    width = float(np.clip(0.38 * n + 1.8, 5.0, 18.0))
    fig = Figure(figsize=(width, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if n == 0:
        ax.text(0.5, 0.5, "no tokens", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_axis_off()
        return fig

    colors = [SELECTED_COLOR if i in sel else OTHER_BAR_COLOR for i in range(n)]
    positions = np.arange(n)
    ax.bar(positions, values, color=colors, width=0.8, edgecolor="none")
    ax.axhline(float(alpha), color="black", linestyle="--", linewidth=1.0)
    ax.axhline(0.0, color="black", linewidth=0.6)
    step = max(1, int(np.ceil(n / _MAX_LABELLED_TOKENS)))
    ax.set_xticks(positions[::step])
    labels = ax.set_xticklabels([_token_label(t) for t in list(tokens)[:n:step]], rotation=60, ha="right")
    for label in labels:
        label.set_parse_math(False)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("log-likelihood ratio")
    ax.set_title("Per-token image dependence")
    ax.legend(
        handles=[
            Patch(color=SELECTED_COLOR, label="image-dependent"),
            Patch(color=OTHER_BAR_COLOR, label="other"),
            ax.get_lines()[0],
        ],
        labels=["image-dependent", "other", f"α = {float(alpha):g}"],
        loc="best",
        fontsize=9,
        frameon=False,
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)``."""
    if len(x) < 2:
        return float("nan")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def curves_figure(curves: Mapping[str, Sequence[float]] | None, scores: Mapping[str, float] | None) -> Figure:
    """Deletion and insertion curves against the fraction of mask cells removed/inserted.

    The legend gives each curve's AUC (taken from ``scores`` when present, else computed by the
    trapezoidal rule). Empty or missing curves give a figure saying "no curves".
    """
    curves = curves or {}
    scores = scores or {}
    fig = Figure(figsize=(5.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(curves.get("x", []), dtype=np.float64)
    drawn = False
    styles = {"deletion": ("#1f77b4", "lower is better"), "insertion": ("#ff7f0e", "higher is better")}
    for name, (color, hint) in styles.items():
        y = np.asarray(curves.get(name, []), dtype=np.float64)
        if len(x) == 0 or len(y) != len(x):
            continue
        auc = scores.get(name)
        auc = _auc(x, y) if auc is None else float(auc)
        ax.plot(x, y, color=color, linewidth=1.8, label=f"{name} (AUC = {auc:.3f}, {hint})")
        ax.fill_between(x, y, color=color, alpha=0.12)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_axis_off()
        return fig
    ax.set_xlabel("fraction of mask cells removed / inserted")
    ax.set_ylabel("score (1 = full image, 0 = baseline)")
    ax.set_title("Deletion and insertion")
    ax.set_xlim(float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1.0)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def token_maps_figure(
    image: Image.Image | np.ndarray,
    token_maps: Mapping[int, np.ndarray],
    tokens: Sequence[str],
    cmap: str = DEFAULT_CMAP,
    alpha_max: float = DEFAULT_OPACITY,
    columns: int = 4,
) -> Figure:
    """Small multiples: the greyed image with each selected token's own map over it (as
    :func:`vlm_focus.viz.colors.overlay_rgb`), the token as the panel's title, in answer
    order, with one colour bar (each map scaled to [0, 1] on its own)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from .colors import colormap, for_display, overlay_rgb

    order = sorted(token_maps)
    cols = max(1, min(columns, len(order)))
    rows = max(1, -(-len(order) // cols))
    rgb0 = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    aspect = rgb0.shape[0] / max(1, rgb0.shape[1])
    fig = Figure(figsize=(2.2 * cols + 0.9, 2.2 * aspect * rows + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    for k, t in enumerate(order):
        rgb, heat = for_display(image, token_maps[t], min_side=256, max_side=512)
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(overlay_rgb(rgb, heat, cmap=cmap, opacity=alpha_max))
        label = _token_label(tokens[t]) if 0 <= t < len(tokens) else f"#{t}"
        ax.set_title(f"{label} (token {t})", fontsize=10, color=SELECTED_COLOR)
        ax.set_axis_off()
    if order:
        bar = fig.colorbar(
            ScalarMappable(Normalize(0, 1), colormap(cmap)), ax=fig.axes, fraction=0.03, pad=0.02
        )
        bar.set_label("relative heat (each map on its own)")
    return fig
