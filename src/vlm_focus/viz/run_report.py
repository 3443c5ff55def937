"""A browsable HTML report of a run folder: ``index.html`` and one page per sample.

``vlm-focus evaluate`` writes it when a run ends, and ``vlm-focus report RUN_DIR`` (re)builds
it for any run folder, also a killed or a still running one. Layout, all inside the run
folder (nothing is written anywhere else)::

    RUN_DIR/index.html             summary (accuracy, metric means with 95 % intervals, per
                                   category, skipped and failed samples), metric plots, and a
                                   sortable, filterable table of the samples with thumbnails
    RUN_DIR/report/<name>.html     one sample: question, answer with its selected tokens,
                                   image, overlay, colour bar, LLR chart, scores explained;
                                   for a wrong yes/no answer of a ``--hallucination`` run,
                                   its minimal correction region outlined on the image
    RUN_DIR/report/<name>.png      the sample's overlay thumbnail

The run stores results and heatmaps, not images: they are opened again from the dataset
recorded in ``run.json`` / ``summary.json`` (a generated dataset such as ``shapes`` always
can; a benchmark when its folder is still where it was). Without them the pages show the
heatmaps alone and say so. Pages load nothing from the network; every question, answer, id
and reason is escaped (jinja2 autoescaping). Files are replaced atomically and never written
through a symbolic link; a ``report`` folder that is itself a link is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..errors import InputError, VlmFocusError
from ..files import atomic_write_bytes, atomic_write_text
from .colors import (
    DEFAULT_CMAP,
    DEFAULT_OPACITY,
    DEFAULT_TOP_K,
    check_style,
    for_display,
    gradient_css,
    overlay_rgb,
)
from .report import figure_to_base64_png, render_report, tokens_html
from .scores import SCORE_HELP, direction, fmt
from .templates import render

INDEX = "index.html"
REPORT_DIR = "report"
THUMB_SIDE = 128
TABLE_METRICS = (
    "deletion",
    "insertion",
    "pointing_game",
    "relevance_mass",
    "relevance_rank",
    "human_soft_iou",
    "correction_area",
)
CORRECTION_COLOR = (0, 200, 255)  # the outline of the minimal correction region
HALLUCINATION_HELP = {
    "hallucination_rate": 'Share of the questions labelled "no" that the model answered "yes".',
    "miss_rate": 'Share of the questions labelled "yes" that the model answered "no".',
    "correction_success": "Share of the wrong yes/no answers that flip when at most the budget's "
    "share of the image area is replaced by the baseline.",
    "correction_area": "Share of the image area of the minimal correction region: the smallest set "
    "of regions found whose removal flips the wrong answer (over the answers that flipped).",
    "correction_passes": "Model passes per correction search.",
}


def write_run_report(
    run_dir: str | Path,
    *,
    cmap: str = DEFAULT_CMAP,
    opacity: float = DEFAULT_OPACITY,
    style: str = "heat",
    top_k: float = DEFAULT_TOP_K,
    pages: bool = True,
) -> Path:
    """Write ``index.html`` (and, with ``pages``, one page per sample) for the run in
    ``run_dir``; returns the path of ``index.html``. ``cmap``, ``opacity``, ``style``,
    ``top_k``: the overlay's look (:func:`vlm_focus.viz.colors.overlay_rgb`)."""
    from ..runs import store

    check_style(style, opacity, top_k)
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run} is not a run folder")
    if not store.has_results(run):
        raise InputError(f"{run} holds no results; run vlm-focus evaluate --out {run} first")
    folder = _report_folder(run)
    records = sorted(store.read_all(run, repair=False).values(), key=lambda r: int(r.get("index") or 0))
    cfg = _read_json(run / store.CONFIG)
    summary = _read_json(run / store.SUMMARY) or _summarize(records)
    dataset, data_note = _open_dataset(cfg, summary)
    look = {"cmap": cmap, "opacity": opacity, "style": style, "top_k": top_k}
    alpha = float((cfg.get("lens_options") or {}).get("alpha", 1.0))
    rows = []
    for rec in records:
        name = page_name(str(rec["id"]))
        image = _sample_image(dataset, str(rec["id"]))
        heat = _heatmap(run, rec)
        thumb = ""
        if image is not None or heat is not None:
            atomic_write_bytes(folder / f"{name}.png", _thumbnail(image, heat, look))
            thumb = f"{REPORT_DIR}/{name}.png"
        page = ""
        if pages:
            region = _heatmap(run, rec, "correction_mask")
            html = _sample_page(rec, image, heat, cfg, alpha, look, data_note, region)
            atomic_write_text(folder / f"{name}.html", html)
            page = f"{REPORT_DIR}/{name}.html"
        rows.append(_row(rec, alpha, thumb, page))
    metrics = [m for m in TABLE_METRICS if any(isinstance(r.get(m), (int, float)) for r in records)]
    html = render(
        "run_index.html.j2",
        title=f"vlm-focus run: {cfg.get('model', '?')} · {cfg.get('method', '?')} on {cfg.get('dataset', '?')}",
        run_name=run.resolve().name,
        summary=_summary_view(summary),
        plot_uri=_metrics_plot(records, metrics),
        data_note=data_note,
        rows=rows,
        metrics=[{"name": m, "help": SCORE_HELP.get(m, ""), "direction": direction(m)} for m in metrics],
        gradient=gradient_css(cmap),
        style=style,
    )
    index = run / INDEX
    atomic_write_text(index, html)
    return index


def page_name(sample_id: str) -> str:
    """A file name for a sample's page and thumbnail: readable, and unique per id (two ids
    that clean to the same characters differ in the hash)."""
    from ..runs.store import safe_name

    digest = hashlib.sha1(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe_name(sample_id)[:60].lstrip('.') or 'sample'}-{digest}"


def _report_folder(run: Path) -> Path:
    folder = run / REPORT_DIR
    if folder.is_symlink():
        raise InputError(f"{folder} is a symbolic link; remove it, the report is written inside {run} only")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is in the way of the report folder (not a folder)")
    folder.mkdir(exist_ok=True)
    return folder


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _summarize(records: list[dict]) -> dict:
    from ..runs.summary import summarize

    return summarize(records)


def _open_dataset(cfg: dict, summary: dict) -> tuple[Any, str]:
    """The run's dataset, reopened to show its images, or ``(None, why not)``."""
    name = cfg.get("dataset")
    if not isinstance(name, str):
        return None, "the run records no dataset: heatmaps are shown without their images"
    try:
        from ..data import dataset_options, get_dataset

        known = dataset_options(name)
        recorded = {**(cfg.get("dataset_options") or {}), **(summary.get("dataset") or {})}
        options = {k: v for k, v in recorded.items() if k in known and k != "data_dir"}
        data_dir = recorded.get("data_dir")
        return get_dataset(name, data_dir, **options), ""
    except (VlmFocusError, OSError, TypeError, ValueError) as e:
        return None, f"the images could not be opened again ({e}): heatmaps are shown without them"


def _sample_image(dataset: Any, sample_id: str) -> Image.Image | None:
    if dataset is None:
        return None
    try:
        return dataset.get(sample_id).load_image()
    except (VlmFocusError, OSError, ValueError):
        return None


def _heatmap(run: Path, rec: dict, field: str = "heatmap") -> np.ndarray | None:
    """The record's heatmap (or another map it names in ``field``, e.g. the
    ``correction_mask``), read only from a plain, regular file in ``heatmaps/``."""
    rel = rec.get(field)
    if not isinstance(rel, str):
        return None
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] != "heatmaps" or parts[1] in ("", ".", "..") or "\\" in rel or "\0" in rel:
        return None
    path = run / "heatmaps" / parts[1]
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        heat = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return heat if isinstance(heat, np.ndarray) and heat.ndim == 2 and heat.dtype.kind == "f" else None


def _stand_in(heat: np.ndarray) -> np.ndarray:
    return np.full((*heat.shape, 3), 128, np.uint8)


def _thumbnail(image: Image.Image | None, heat: np.ndarray | None, look: dict) -> bytes:
    import io

    base = image if image is not None else _stand_in(heat)  # type: ignore[arg-type]
    rgb, h = for_display(base, heat, min_side=THUMB_SIDE, max_side=THUMB_SIDE)
    buf = io.BytesIO()
    Image.fromarray(overlay_rgb(rgb, h, **look)).save(buf, format="PNG")
    return buf.getvalue()


def _sample_page(
    rec: dict,
    image: Image.Image | None,
    heat: np.ndarray | None,
    cfg: dict,
    alpha: float,
    look: dict,
    note: str,
    region: np.ndarray | None = None,
) -> str:
    from ..runs.summary import ALL_METRICS

    scores = {k: rec[k] for k in ("baseline_prob", *ALL_METRICS) if k in rec}
    warnings = [str(w) for w in rec.get("warnings") or []]
    if rec.get("status") != "ok":
        warnings.insert(0, f"{rec.get('status')}: {rec.get('reason', '')}")
    if note and heat is not None:
        warnings.append(note)
    ex = SimpleNamespace(
        image=image
        if image is not None
        else (Image.fromarray(_stand_in(heat)) if heat is not None else None),
        heatmap=heat,
        question=rec.get("question", ""),
        answer=rec.get("answer", ""),
        tokens=rec.get("tokens") or [],
        selected=rec.get("selected") or [],
        llr=[v if v is not None else float("nan") for v in rec.get("llr") or []],
        alpha=alpha,
        scores=scores,
        curves={},
        model=cfg.get("model", ""),
        method=cfg.get("method", ""),
        timings=rec.get("timings") or {},
        args={},
        depends_on_image=bool(rec.get("selected")),
        warnings=warnings,
    )
    facts = [("Sample", str(rec.get("id"))), ("Category", str(rec.get("category", "")))]
    if rec.get("reference") is not None:
        facts.append(("Reference answer", str(rec["reference"])))
    if "correct" in rec:
        facts.append(("Graded", f"{_grade(rec.get('correct'))} ({rec.get('grading', '')})"))
    sections = []
    if "correction_success" in rec:
        facts.append(("Minimal correction region", correction_text(rec)))
        base = ex.image if ex.image is not None else None
        if region is not None and base is not None and region.shape == (base.height, base.width):
            sections.append(
                {
                    "title": "Minimal correction region",
                    "image_uri": "data:image/png;base64," + _region_png(base, region > 0.5),
                    "alt": "the image with the minimal correction region outlined",
                    "help": "Outlined: the smallest set of regions found whose removal (the baseline "
                    "shown there) flips the wrong answer. " + correction_text(rec),
                }
            )
    return render_report(
        ex,
        back_link="../index.html",
        facts=facts,
        sections=sections,
        cmap=look["cmap"],
        alpha_max=look["opacity"],
        style=look["style"],
        top_k=look["top_k"],
    )


def correction_text(rec: dict) -> str:
    """One sentence on a record's correction search (``correction_*`` fields)."""
    words = rec.get("correction_words") or ["the answer", "the other"]
    budget = rec.get("correction_budget")
    within = f"{budget:.0%} budget" if isinstance(budget, (int, float)) else "budget"
    order = rec.get("correction_order", "")
    passes = rec.get("correction_passes")
    cost = f"; regions ordered by {order}, {passes} model passes" if order else ""
    area = rec.get("correction_area")
    if not rec.get("correction_flipped") or not isinstance(area, (int, float)):
        return f"no removal flips {words[0]!r} to {words[1]!r}, not even of the whole image{cost}."
    verdict = "within" if rec.get("correction_success") else "over"
    n = rec.get("correction_regions")
    return (
        f"removing {area:.1%} of the image ({n} region{'s' if n != 1 else ''}) flips {words[0]!r} to "
        f"{words[1]!r}: {verdict} the {within}{cost}."
    )


def _region_png(image: Image.Image, region: np.ndarray) -> str:
    """The image (enlarged, nearest) with ``region``'s outline drawn and the rest dimmed, as
    base64 PNG."""
    import base64
    import io

    rgb, _ = for_display(image, None, min_side=256, max_side=512)
    h, w = rgb.shape[:2]
    mask = (
        np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST))
        > 127
    )
    inner = mask.copy()
    for axis in (0, 1):
        for shift in (1, -1, 2, -2):
            inner &= np.roll(mask, shift, axis=axis)
    edge = mask & ~inner
    out = rgb.astype(np.float32)
    out[~mask] = 0.55 * out[~mask] + 0.45 * 255  # dim what stays
    out[edge] = CORRECTION_COLOR
    buf = io.BytesIO()
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _grade(correct: Any) -> str:
    return "correct" if correct is True else "wrong" if correct is False else "not graded"


def _row(rec: dict, alpha: float, thumb: str, page: str) -> dict:
    tokens = [str(t) for t in rec.get("tokens") or []]
    answer = tokens_html(tokens, rec.get("selected") or [], rec.get("llr"), alpha) if tokens else ""
    values = {}
    for m in TABLE_METRICS:
        v = rec.get(m)
        values[m] = {"text": fmt(v), "sort": f"{float(v):.6g}" if isinstance(v, (int, float)) else ""}
    return {
        "id": str(rec.get("id")),
        "index": int(rec.get("index") or 0),
        "category": str(rec.get("category") or ""),
        "question": str(rec.get("question") or ""),
        "answer_html": Markup(answer) if answer else str(rec.get("answer") or ""),
        "reference": "" if rec.get("reference") is None else str(rec.get("reference")),
        "correct": _grade(rec.get("correct")),
        "status": str(rec.get("status") or ""),
        "reason": str(rec.get("reason") or ""),
        "selected": ", ".join(t.strip() for t in rec.get("selected_text") or []),
        "metrics": values,
        "seconds": fmt(rec.get("seconds"), 1),
        "seconds_sort": f"{float(rec.get('seconds') or 0):.6g}",
        "thumb": thumb,
        "page": page,
    }


def _interval(ci: Any) -> str:
    if not isinstance(ci, dict) or ci.get("mean") is None:
        return "-"
    text = fmt(ci.get("mean"))
    if isinstance(ci.get("low"), (int, float)) and isinstance(ci.get("high"), (int, float)):
        text += f" [{fmt(ci['low'])}, {fmt(ci['high'])}]"
    return text


def _summary_view(summary: dict) -> dict:
    """The summary as strings for the template: overall and per-category rows."""
    cats = [c for c, k in (summary.get("n_per_category") or {}).items() if k]
    acc = summary.get("accuracy") or {}
    rows = [
        {
            "name": "accuracy",
            "help": SCORE_HELP["accuracy"],
            "direction": "higher is better",
            "overall": _interval(acc.get("overall")),
            "cats": [_interval((acc.get("per_category") or {}).get(c)) for c in cats],
        }
    ]
    for name, m in (summary.get("metrics") or {}).items():
        rows.append(
            {
                "name": name,
                "help": SCORE_HELP.get(name, ""),
                "direction": direction(name),
                "overall": _interval(m.get("overall")),
                "cats": [_interval((m.get("per_category") or {}).get(c)) for c in cats],
            }
        )
    halluc = summary.get("hallucination") or {}
    for name, m in halluc.items():
        if not isinstance(m, dict) or not (m.get("overall") or {}).get("n"):
            continue
        budget = halluc.get("budget")
        label = (
            f"{name} @ {budget:.0%} area"
            if name == "correction_success" and isinstance(budget, float)
            else name
        )
        rows.append(
            {
                "name": label,
                "help": HALLUCINATION_HELP.get(name, ""),
                "direction": "lower is better"
                if name in ("hallucination_rate", "miss_rate", "correction_area")
                else "higher is better"
                if name == "correction_success"
                else "",
                "overall": _interval(m.get("overall")),
                "cats": [_interval((m.get("per_category") or {}).get(c)) for c in cats],
            }
        )
    problems = []
    for kind in ("skipped", "errors"):
        for reason, c in ((summary.get(kind) or {}).get("by_reason") or {}).items():
            problems.append({"kind": kind, "count": c.get("count", 0), "reason": str(reason)})
    seconds = summary.get("seconds") or {}
    return {
        "n": summary.get("n_samples", 0),
        "n_ok": summary.get("n_ok", 0),
        "categories": cats,
        "n_per_category": [summary["n_per_category"][c] for c in cats],
        "rows": rows,
        "problems": problems,
        "seconds": fmt(seconds.get("total"), 1),
        "per_sample": fmt(seconds.get("mean_per_sample"), 2),
    }


def _metrics_plot(records: Sequence[dict], metrics: Sequence[str]) -> str:
    """Histograms of the per-sample metrics, as a ``data:`` URI ('' when there is none)."""
    values = {
        m: [float(r[m]) for r in records if isinstance(r.get(m), (int, float)) and r.get("status") == "ok"]
        for m in metrics
    }
    values = {m: v for m, v in values.items() if v}
    if not values:
        return ""
    fig = Figure(figsize=(2.6 * len(values), 2.3), dpi=100)
    FigureCanvasAgg(fig)
    for i, (m, v) in enumerate(values.items()):
        ax = fig.add_subplot(1, len(values), i + 1)
        ax.hist(v, bins=min(20, max(5, len(v) // 3)), color="#4c72b0", edgecolor="white")
        ax.set_title(f"{m} ({direction(m) or 'per sample'})", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return "data:image/png;base64," + figure_to_base64_png(fig)
