"""A single self-contained HTML report for one explanation.

The page has inline CSS, images embedded as base64 ``data:`` URIs, no scripts and no
external resources, so it can be opened offline or attached to an e-mail. Every piece of
user-provided text is HTML-escaped.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .overlay import SELECTED_COLOR, overlay_figure
from .plots import curves_figure, llr_figure, token_maps_figure

_MAX_CELL_CHARS = 300

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       background: #f4f5f7; color: #222; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.5em; margin: 0 0 4px 0; }
h2 { font-size: 1.15em; margin: 0 0 10px 0; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-bottom: 18px; }
section { background: #fff; border-radius: 6px; padding: 16px 20px; margin-bottom: 18px;
          box-shadow: 0 1px 3px rgba(0,0,0,0.08); }
img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.qa p { margin: 6px 0; }
.answer { white-space: pre-wrap; font-size: 1.1em; line-height: 1.6; }
.tok.sel { color: SELCOLOR; font-weight: bold; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td code { white-space: pre-wrap; word-break: break-word; }
.warnings { background: #fff4e5; border: 1px solid #f0a020; border-left: 6px solid #f0a020; }
.warnings h2 { border-bottom-color: #f0c080; }
.note { color: #555; font-style: italic; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
""".replace("SELCOLOR", SELECTED_COLOR)


def figure_to_base64_png(fig: Figure, dpi: float | None = None) -> str:
    """Render a figure to PNG and return the base64 text (without the ``data:`` prefix)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else fig.dpi, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _data_uri(fig: Figure, dpi: float | None = None) -> str:
    return "data:image/png;base64," + figure_to_base64_png(fig, dpi)


def tokens_html(tokens: Sequence[str], selected: Sequence[int], llr: Sequence[float] | None = None) -> str:
    """The answer as ``<span>`` elements, one per token, HTML-escaped.

    Selected (image-dependent) tokens get class ``tok sel`` (red, bold, also as an inline
    style so the markup works without the report's CSS); a token with a known LLR carries it
    in a ``title`` tooltip.
    """
    sel = {int(i) for i in selected}
    llr = list(llr) if llr is not None else []
    parts: list[str] = []
    for i, tok in enumerate(tokens):
        attrs = ['class="tok sel"' if i in sel else 'class="tok"']
        if i in sel:
            attrs.append(f'style="color:{SELECTED_COLOR};font-weight:bold"')
        if i < len(llr):
            attrs.append(f'title="LLR = {escape(_fmt_num(llr[i]))}"')
        parts.append(f"<span {' '.join(attrs)}>{escape(str(tok))}</span>")
    return "".join(parts)


def _fmt_num(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.3f}" if math.isfinite(v) else str(v)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_CELL_CHARS:
        text = text[: _MAX_CELL_CHARS - 1] + "…"
    return f"<code>{escape(text)}</code>"


def _model_name(model: Any) -> str:
    if model is None:
        return "unknown model"
    if isinstance(model, str):
        return model
    for attr in ("name", "name_or_path", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    config = getattr(model, "config", None)
    value = getattr(config, "_name_or_path", None)
    if isinstance(value, str) and value:
        return value
    return type(model).__name__


def _table(rows: Sequence[tuple[str, str]], header: tuple[str, str], numeric: bool = False) -> str:
    """Rows are already-escaped HTML; ``header`` is plain text."""
    td = '<td class="num">' if numeric else "<td>"
    body = "".join(f"<tr><td>{k}</td>{td}{v}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th></tr>{body}</table>"


def _img(fig: Figure, alt: str, dpi: float | None = None) -> str:
    return f'<img src="{_data_uri(fig, dpi)}" alt="{escape(alt)}">'


def render_report(ex: Any) -> str:
    """Return one self-contained HTML page describing the explanation ``ex``.

    ``ex`` is any object with the attributes ``image``, ``heatmap``, ``question``, ``answer``,
    ``tokens``, ``selected``, ``llr``, ``alpha``, ``scores``, ``curves``, ``model``,
    ``method``, ``timings``, ``args``, ``depends_on_image`` and ``warnings`` (missing ones are
    treated as empty).
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
    warnings = [str(w) for w in (getattr(ex, "warnings", None) or [])]
    heatmap = getattr(ex, "heatmap", None)
    image = getattr(ex, "image", None)
    depends = bool(getattr(ex, "depends_on_image", heatmap is not None))
    model = _model_name(getattr(ex, "model", None))
    method = str(getattr(ex, "method", "") or "unknown method")

    title = f"vlm-focus: {model} · {method}"
    sections: list[str] = []

    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        sections.append(f'<section class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>')

    if image is not None:
        fig = overlay_figure(image, heatmap, question, tokens, selected, dpi=110)
        sections.append(f"<section><h2>Where the model looks</h2>{_img(fig, 'heatmap overlay')}</section>")

    token_maps = getattr(ex, "token_maps", None) or {}
    if image is not None and token_maps:
        fig = token_maps_figure(image, token_maps, tokens)
        sections.append(
            "<section><h2>Per-token maps</h2>"
            '<p class="note">Each image-dependent token explained on its own (its log-probability).</p>'
            f"{_img(fig, 'one heatmap per token')}</section>"
        )

    answer_html = tokens_html(tokens, selected, llr) if tokens else escape(answer)
    first = tokens[0] if tokens else answer
    sep = "" if first[:1].isspace() else " "
    dep_note = "" if depends else '<p class="note">The answer does not depend on the image: no heatmap.</p>'
    sections.append(
        '<section class="qa"><h2>Question and answer</h2>'
        f"<p><b>Question:</b> {escape(question)}</p>"
        f'<p><b>Answer:</b>{sep}<span class="answer">{answer_html}</span></p>'
        f'<p class="note">Image-dependent tokens (threshold α = {escape(f"{alpha:g}")}) are in red; '
        "hover a token for its LLR.</p>"
        f"{dep_note}</section>"
    )

    if tokens and llr:
        fig = llr_figure(tokens, llr, alpha, selected)
        sections.append(
            f"<section><h2>Per-token log-likelihood ratio</h2>{_img(fig, 'LLR per token')}</section>"
        )

    score_rows = [(escape(str(k)), escape(_fmt_num(v))) for k, v in scores.items()]
    score_table = (
        _table(score_rows, ("metric", "score"), numeric=True)
        if score_rows
        else '<p class="note">No scores.</p>'
    )
    curves_img = _img(curves_figure(curves, scores), "deletion and insertion curves") if curves else ""
    sections.append(
        f'<section><h2>Faithfulness</h2><div class="row"><div>{curves_img}</div>'
        f"<div>{score_table}</div></div></section>"
    )

    timing_rows = [(escape(str(k)), escape(f"{float(v):.3f} s")) for k, v in timings.items() if _is_number(v)]
    if timing_rows:
        total = sum(float(v) for v in timings.values() if _is_number(v))
        if "total" not in timings:
            timing_rows.append(("<b>total</b>", f"<b>{escape(f'{total:.3f} s')}</b>"))
        sections.append(
            f"<section><h2>Timings</h2>{_table(timing_rows, ('step', 'time'), numeric=True)}</section>"
        )

    if args:
        arg_rows = [(escape(str(k)), _cell(v)) for k, v in args.items()]
        sections.append(f"<section><h2>Arguments</h2>{_table(arg_rows, ('argument', 'value'))}</section>")

    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<div class="sub">{escape(f"{len(selected)} of {len(tokens)} answer tokens depend on the image")}</div>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def save_report(path: str | Path, ex: Any) -> Path:
    """Write :func:`render_report` of ``ex`` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.write_text(render_report(ex), encoding="utf-8")
    return out
