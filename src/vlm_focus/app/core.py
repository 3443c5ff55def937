"""What the web app does, without Gradio: the model pool, one explanation, its views.

The Gradio shell (:mod:`.ui`) only wires widgets to these functions, so they are unit-tested
directly. Concurrency: the pool keeps one adapter per model name; every explanation holds
that model's lock while it runs, and builds its own :class:`~vlm_focus.Lens` (the options of
one user never reach another's call). Results live in the caller's session state, never in
the pool. Gradio's queue runs one event at a time on top of this.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import catalog
from ..errors import ImageError, InputError
from ..viz.colors import DEFAULT_CMAP, DEFAULT_OPACITY, DEFAULT_TOP_K, for_display, overlay_rgb
from ..viz.report import score_rows, tokens_html

CMAPS = ("inferno", "magma", "viridis", "plasma", "cividis", "turbo")
MAX_QUESTION_CHARS = 1000
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    return None


class ModelPool:
    """Loaded adapters by model name, at most ``max_models`` (the least recently used one is
    dropped when a new one would exceed it), each with its own lock.

    ``loader(name) -> adapter`` defaults to :func:`vlm_focus.models.load_adapter` with the
    pool's ``device`` and ``dtype``."""

    def __init__(
        self,
        device: str | None = None,
        dtype: str | None = None,
        max_models: int = 3,
        loader: Callable[[str], Any] | None = None,
    ) -> None:
        self.device, self.dtype, self.max_models = device, dtype, max(1, int(max_models))
        self._loader = loader
        self._adapters: OrderedDict[str, tuple[Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()  # guards the dict and serialises loading

    def _load(self, name: str) -> Any:
        if self._loader is not None:
            return self._loader(name)
        from ..models import load_adapter

        return load_adapter(name, device=self.device, dtype=self.dtype)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._adapters)

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Hold model ``name`` (loading it first if needed) for one explanation."""
        name = str(name or "").strip() or catalog.DEFAULT_MODEL
        catalog.check_model_name(name)
        with self._lock:
            if name not in self._adapters:
                adapter = self._load(name)
                while len(self._adapters) >= self.max_models:
                    self._adapters.popitem(last=False)
                self._adapters[name] = (adapter, threading.Lock())
            self._adapters.move_to_end(name)
            adapter, busy = self._adapters[name]
        with busy:
            yield adapter


@dataclass
class Request:
    """One user's request, as the widgets give it."""

    image: Any
    question: str
    model: str = catalog.DEFAULT_MODEL
    method: str = catalog.DEFAULT_METHOD
    alpha: float = 1.0
    baseline: str = "blur"
    strategy: str = "llr"
    method_options: str = ""
    metrics: bool = True
    per_token: bool = False
    seed: int = 0
    max_pixels: int = 16_000_000
    extra: dict = field(default_factory=dict)


def parse_method_options(method: str, text: str) -> dict[str, Any]:
    """``"iterations=3, size=8"`` (commas or new lines) -> a checked options dict."""
    from ..cli.common import check_method_options, parse_options

    pairs = [p.strip() for p in str(text or "").replace("\n", ",").split(",") if p.strip()]
    options = parse_options(pairs)
    check_method_options(method, options)
    return options


def check_request(req: Request) -> Image.Image:
    """The request's image, validated, or a clear :class:`~vlm_focus.errors.VlmFocusError`."""
    from ..images import load_image

    if req.image is None or (isinstance(req.image, str) and not req.image):
        raise ImageError("upload an image first (or pick an example)")
    question = str(req.question or "").strip()
    if not question:
        raise InputError("type a question about the image")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(question):,} characters long; at most {MAX_QUESTION_CHARS:,}")
    if req.method not in catalog.METHODS:
        raise InputError(f"unknown method {req.method!r}; choose from {', '.join(catalog.METHODS)}")
    image = req.image if isinstance(req.image, Image.Image) else Path(str(req.image))
    return load_image(image, max_pixels=req.max_pixels)


def explain(pool: ModelPool, req: Request, progress: Progress = _no_progress) -> Any:
    """Run one explanation for ``req`` on the pool's model; returns the Explanation."""
    import torch

    from ..explain import Lens

    image = check_request(req)
    options = parse_method_options(req.method, req.method_options)
    progress(0.05, f"loading {req.model}")
    with pool.use(req.model) as adapter:
        lens = Lens(
            adapter,
            method=req.method,
            alpha=float(req.alpha),
            baseline=req.baseline,
            strategy=req.strategy,
            metrics=bool(req.metrics),
            **{**req.extra, **options},
        )
        progress(
            0.2,
            f"explaining with {req.method} (answer, token LLRs, heatmap{', scores' if req.metrics else ''})",
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(req.seed))
            t0 = time.perf_counter()
            ex = lens.explain(image, str(req.question).strip(), per_token=bool(req.per_token))
            ex.timings.setdefault("total", round(time.perf_counter() - t0, 4))
    progress(0.9, "drawing")
    return ex


# ----- views of one explanation ------------------------------------------------------------------
def answer_html(ex: Any) -> str:
    """The answer with the image-dependent tokens marked and every token tinted by its LLR."""
    if not ex.tokens:
        return '<p class="vf-note">(empty answer)</p>'
    body = tokens_html(ex.tokens, ex.selected, ex.llr, ex.alpha)
    if ex.selected:
        note = (
            f"{len(ex.selected)} of {len(ex.tokens)} tokens depend on the image (LLR &gt; "
            f"{escape(f'{ex.alpha:g}')}): <b>red</b>; the orange ground deepens with the LLR; hover for it."
        )
    else:
        note = f"No token has LLR &gt; {escape(f'{ex.alpha:g}')}: the answer does not depend on the image."
    head = f"<div class='vf-head'>{escape(ex.model)} · {escape(ex.method)}</div>"
    return f"{head}<div class='vf-answer' style='font-size:1.25em;line-height:1.8'>{body}</div><p class='vf-note'>{note}</p>"


def overlay_image(
    ex: Any,
    cmap: str = DEFAULT_CMAP,
    opacity: float = DEFAULT_OPACITY,
    style: str = "heat",
    top_k: float = DEFAULT_TOP_K,
) -> Image.Image:
    """The plain image, the overlay and the colour bar, as one PIL image (no text: the
    answer is shown as HTML beside it)."""
    import base64

    from ..viz.overlay import overlay_figure
    from ..viz.report import figure_to_base64_png

    fig = overlay_figure(
        ex.image, ex.heatmap, ex.question, ex.tokens, ex.selected, text=False,
        cmap=cmap, alpha_max=float(opacity), style=style, top_k=float(top_k), dpi=100,
    )  # fmt: skip
    return Image.open(io.BytesIO(base64.b64decode(figure_to_base64_png(fig)))).convert("RGB")


def token_map_images(
    ex: Any,
    cmap: str = DEFAULT_CMAP,
    opacity: float = DEFAULT_OPACITY,
    style: str = "heat",
    top_k: float = 0.2,
) -> list[tuple[Image.Image, str]]:
    """One ``(overlay, caption)`` per token map, in answer order (for a gallery)."""
    out = []
    for t in sorted(ex.token_maps):
        rgb, heat = for_display(ex.image, ex.token_maps[t], min_side=256, max_side=512)
        picture = overlay_rgb(rgb, heat, cmap=cmap, opacity=float(opacity), style=style, top_k=float(top_k))
        label = ex.tokens[t].strip() if 0 <= t < len(ex.tokens) else f"#{t}"
        out.append((Image.fromarray(picture), f"{label} (token {t}, LLR {ex.llr[t]:.2f})"))
    return out


def curves_image(ex: Any) -> Image.Image | None:
    """The deletion/insertion curves, or None without them."""
    if not ex.curves:
        return None
    import base64

    from ..viz.plots import curves_figure
    from ..viz.report import figure_to_base64_png

    data = base64.b64decode(figure_to_base64_png(curves_figure(ex.curves, ex.scores)))
    return Image.open(io.BytesIO(data)).convert("RGB")


def scores_html(ex: Any) -> str:
    """Scores with what each means, timings and warnings, as an escaped HTML table."""
    rows = "".join(
        f"<tr><td><b>{escape(r['name'])}</b><br><i>{escape(r['direction'])}</i></td>"
        f"<td style='text-align:right'>{escape(r['value'])}</td><td>{escape(r['help'])}</td></tr>"
        for r in score_rows(ex.scores)
    )
    times = ", ".join(f"{escape(str(k))} {float(v):.2f} s" for k, v in ex.timings.items())
    warn = "".join(f"<li>{escape(str(w))}</li>" for w in ex.warnings)
    table = (
        f"<table class='vf-scores'><tr><th>score</th><th>value</th><th>what it means</th></tr>{rows}</table>"
        if rows
        else "<p class='vf-note'>No scores (the answer does not depend on the image, or scores were off).</p>"
    )
    return (
        table
        + f"<p class='vf-note'>Timings: {times}</p>"
        + (f"<ul class='vf-warn'>{warn}</ul>" if warn else "")
    )


def save_zip(ex: Any, folder: str | Path, **overlay_options: Any) -> Path:
    """Save the explanation folder (JSON, heatmap, image, overlay, report) and zip it in
    ``folder``; returns the zip's path. Only files made here are ever offered for download."""
    base = Path(tempfile.mkdtemp(prefix="explanation-", dir=str(folder)))
    saved = ex.save(base / "explanation", **overlay_options)
    target = base / "vlm-focus-explanation.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(saved.iterdir()):
            if p.is_file() and not p.is_symlink():
                z.write(p, arcname=f"explanation/{p.name}")
    shutil.rmtree(saved, ignore_errors=True)
    return target


def example_scenes(folder: str | Path, n: int = 3) -> list[list[str]]:
    """A few generated scenes with their questions, written to ``folder`` as PNG files:
    ``[[path, question], ...]`` for Gradio's examples."""
    from ..data.shapes import make_sample

    out = []
    for i in range(n):
        s = make_sample(2026, i, qtype=("color", "shape", "count")[i % 3])
        path = Path(folder) / f"scene-{i}.png"
        s.image.save(path)  # at its own size: the zoo models were trained on 64-px scenes
        out.append([str(path), s.question])
    return out


def blank_overlay() -> np.ndarray:
    """A small white picture for empty image outputs."""
    return np.full((8, 8, 3), 255, np.uint8)
