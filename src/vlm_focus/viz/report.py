"""A single self-contained HTML report for one explanation (template ``report.html.j2``).

The page has inline CSS, images embedded as base64 ``data:`` URIs, no scripts and no
external resources, so it can be opened offline or attached to an e-mail. It holds one
question/answer block (the overlay figure is drawn without text), the plain image beside
the overlay with its colour bar, per-token maps, the LLR chart, and each score with a
paragraph on what it means. Every piece of user-provided text is HTML-escaped by jinja2.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .overlay import SELECTED_COLOR, overlay_figure
from .plots import curves_figure, llr_figure, token_maps_figure
from .scores import SCORE_HELP, direction, fmt
from .templates import render

_MAX_CELL_CHARS = 300
_LLR_TINT = (255, 140, 0)  # token background, deeper with a larger LLR


def figure_to_base64_png(fig: Figure, dpi: float | None = None) -> str:
    """Render a figure to PNG and return the base64 text (without the ``data:`` prefix)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else fig.dpi, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _data_uri(fig: Figure, dpi: float | None = None) -> str:
    return "data:image/png;base64," + figure_to_base64_png(fig, dpi)


def tokens_html(
    tokens: Sequence[str], selected: Sequence[int], llr: Sequence[float] | None = None, alpha: float = 1.0
) -> str:
    """The answer as ``<span>`` elements, one per token, HTML-escaped.

    Selected (image-dependent) tokens get class ``tok sel`` (red, bold, also as an inline
    style so the markup works without the report's CSS); every token with a known positive
    LLR gets an orange background that deepens with it (full at ``2 * alpha``), and its LLR
    in a ``title`` tooltip.
    """
    sel = {int(i) for i in selected}
    llr = list(llr) if llr is not None else []
    full = 2.0 * max(float(alpha), 0.5)
    parts: list[str] = []
    for i, tok in enumerate(tokens):
        attrs = ['class="tok sel"' if i in sel else 'class="tok"']
        style = f"color:{SELECTED_COLOR};font-weight:bold;" if i in sel else ""
        if i < len(llr):
            v = _float(llr[i])
            if v is not None and v > 0:
                r, g, b = _LLR_TINT
                style += f"background:rgba({r},{g},{b},{0.45 * min(v / full, 1.0):.2f});"
            attrs.append(f'title="LLR = {escape(_fmt_num(llr[i]))}"')
        if style:
            attrs.append(f'style="{style}"')
        text = str(tok)
        core = text.lstrip(" ")  # the leading space stays outside, so the mark covers the word only
        parts.append(f"{text[: len(text) - len(core)]}<span {' '.join(attrs)}>{escape(core)}</span>")
    return "".join(parts)


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt_num(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.3f}" if math.isfinite(v) else str(v)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[: _MAX_CELL_CHARS - 1] + "…" if len(text) > _MAX_CELL_CHARS else text


def _model_name(model: Any) -> str:
    if model is None:
        return "unknown model"
    if isinstance(model, str):
        return model
    for attr in ("name", "name_or_path", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    value = getattr(getattr(model, "config", None), "_name_or_path", None)
    return value if isinstance(value, str) and value else type(model).__name__


def score_rows(scores: Mapping[str, Any]) -> list[dict[str, str]]:
    """Rows ``{name, value, direction, help}`` for a table of scores, known ones explained."""
    return [
        {"name": str(k), "value": fmt(v), "direction": direction(str(k)), "help": SCORE_HELP.get(str(k), "")}
        for k, v in scores.items()
    ]


def render_report(
    ex: Any,
    *,
    back_link: str | None = None,
    facts: Sequence[tuple[str, str]] = (),
    sections: Sequence[Mapping[str, str]] = (),
    **overlay_options: Any,
) -> str:
    """Return one self-contained HTML page describing the explanation ``ex``.

    ``ex`` is any object with the attributes ``image``, ``heatmap``, ``question``, ``answer``,
    ``tokens``, ``selected``, ``llr``, ``alpha``, ``scores``, ``curves``, ``model``,
    ``method``, ``timings``, ``args``, ``depends_on_image`` and ``warnings`` (missing ones are
    treated as empty). ``back_link``: a relative link shown at the top (run reports link back
    to their index). ``facts``: extra ``(label, text)`` lines for the question block (the
    reference answer, the grade). ``sections``: extra figures after the overlay, each
    ``{"title", "image_uri", "alt", "help"}`` (run reports: the minimal correction region of
    a wrong yes/no answer). ``overlay_options``: passed to
    :func:`~vlm_focus.viz.overlay.overlay_figure` (``cmap``, ``alpha_max``, ``style``, ...).
    """
    question = str(getattr(ex, "question", "") or "")
    answer = str(getattr(ex, "answer", "") or "")
    tokens = [str(t) for t in (getattr(ex, "tokens", None) or [])]
    selected = [int(i) for i in (getattr(ex, "selected", None) or [])]
    llr = [float(v) for v in (getattr(ex, "llr", None) or [])]
    alpha = float(getattr(ex, "alpha", 0.0) or 0.0)
    scores: Mapping[str, Any] = getattr(ex, "scores", None) or {}
    curves: Mapping[str, Any] = getattr(ex, "curves", None) or {}
    timings: Mapping[str, Any] = getattr(ex, "timings", None) or {}
    args: Mapping[str, Any] = getattr(ex, "args", None) or {}
    heatmap = getattr(ex, "heatmap", None)
    image = getattr(ex, "image", None)
    token_maps = getattr(ex, "token_maps", None) or {}
    model = _model_name(getattr(ex, "model", None))
    method = str(getattr(ex, "method", "") or "unknown method")

    overlay_uri = token_maps_uri = llr_uri = curves_uri = ""
    if image is not None:
        fig = overlay_figure(
            image, heatmap, question, tokens, selected, text=False, dpi=110, **overlay_options
        )
        overlay_uri = _data_uri(fig)
        if token_maps:
            token_maps_uri = _data_uri(token_maps_figure(image, token_maps, tokens))
    if tokens and llr:
        llr_uri = _data_uri(llr_figure(tokens, llr, alpha, selected))
    if curves:
        curves_uri = _data_uri(curves_figure(curves, scores))
    timing_rows = [(str(k), f"{float(v):.3f} s") for k, v in timings.items() if _float(v) is not None]
    if timing_rows and "total" not in timings:
        timing_rows.append(
            ("total", f"{sum(float(v) for v in timings.values() if _float(v) is not None):.3f} s")
        )
    return render(
        "report.html.j2",
        title=f"vlm-focus: {model} · {method}",
        subtitle=f"{len(selected)} of {len(tokens)} answer tokens depend on the image",
        back_link=back_link,
        warnings=[str(w) for w in (getattr(ex, "warnings", None) or [])],
        question=question,
        answer_html=Markup(tokens_html(tokens, selected, llr, alpha) if tokens else escape(answer)),
        facts=list(facts),
        sections=[dict(x) for x in sections],
        alpha=f"{alpha:g}",
        depends=bool(getattr(ex, "depends_on_image", heatmap is not None)),
        overlay_uri=overlay_uri,
        token_maps_uri=token_maps_uri,
        llr_uri=llr_uri,
        curves_uri=curves_uri,
        scores=score_rows(scores),
        timings=timing_rows,
        args=[(str(k), _cell(v)) for k, v in args.items()],
    )


def save_report(path: str | Path, ex: Any) -> Path:
    """Write :func:`render_report` of ``ex`` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.write_text(render_report(ex), encoding="utf-8")
    return out
