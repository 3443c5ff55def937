"""The Gradio page: widgets wired to :mod:`.core` (nothing else lives here).

Offline by design: no analytics, no share link, system fonts instead of the default theme's
web fonts, no server-side rendering (no Node process), so the page needs nothing but this
server. The last explanation of each browser session sits in that session's ``gr.State``:
moving the opacity slider or changing the colormap redraws it without running the model.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import gradio as gr

from .. import catalog
from ..errors import VlmFocusError
from . import core

CSS = """
.vf-note { color: #555; font-size: 0.9em; }
.vf-head { color: #666; font-size: 0.85em; margin-bottom: 2px; }
.vf-scores td, .vf-scores th { padding: 3px 8px; border: 1px solid #ddd; vertical-align: top; font-size: 0.9em; }
.vf-warn { color: #8a5300; }
.tok.sel { text-decoration: underline; text-underline-offset: 3px; }
"""
NONE = "(none)"


def _models(extra: list[str]) -> list[str]:
    return list(dict.fromkeys([catalog.DEFAULT_MODEL, *catalog.list_zoo(), *extra]))


def build_app(
    pool: core.ModelPool, workdir: str | Path, models: list[str] | None = None, max_pixels: int = 16_000_000
):
    """The ``gr.Blocks`` of the app, explaining with ``pool``; downloads are written under
    ``workdir`` (a temporary folder the caller removes)."""
    names = _models(models or [])
    methods = catalog.list_methods()
    with gr.Blocks(title="vlm-focus", analytics_enabled=False) as demo:
        gr.Markdown(
            "## vlm-focus: where does the model look when it answers?\n"
            "Upload an image, ask a question, press **Explain**. The answer's image-dependent tokens "
            "are marked in red; the heatmap shows the image regions that drive them."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    type="filepath",
                    label="image",
                    sources=["upload", "clipboard"],
                    elem_id="image",
                    height=300,
                )
                question = gr.Textbox(
                    label="question", placeholder="What color is the circle?", elem_id="question"
                )
                with gr.Row():
                    model = gr.Dropdown(
                        names, value=names[0], allow_custom_value=True, label="model (zoo name, hub id or path)",
                        elem_id="model",
                    )  # fmt: skip
                    method = gr.Dropdown(
                        methods, value=catalog.DEFAULT_METHOD, label="method", elem_id="method"
                    )
                with gr.Accordion("options", open=False):
                    alpha = gr.Slider(
                        -2, 10, value=1.0, step=0.1, label="alpha: LLR threshold for image-dependent tokens"
                    )
                    baseline = gr.Dropdown(
                        list(catalog.BASELINES), value="blur",
                        label="baseline (LLR, deletion / insertion; igos++ blends with it given blend_with=baseline)",
                    )  # fmt: skip
                    strategy = gr.Dropdown(list(catalog.STRATEGIES), value="llr", label="token selection")
                    options = gr.Textbox(
                        label="method options, KEY=VALUE, comma-separated", placeholder="iterations=3"
                    )
                    metrics = gr.Checkbox(value=True, label="deletion / insertion scores")
                    per_token = gr.Checkbox(value=False, label="one map per image-dependent token")
                with gr.Accordion("side by side: compare with", open=False):
                    method2 = gr.Dropdown([NONE, *methods], value=NONE, label="second method")
                    model2 = gr.Dropdown(
                        [NONE, *names], value=NONE, allow_custom_value=True, label="second model"
                    )
                run = gr.Button("Explain", variant="primary", elem_id="explain")
                gr.Examples(core.example_scenes(workdir), inputs=[image, question], label="generated scenes")
            with gr.Column(scale=2):
                answer = gr.HTML(label="answer", elem_id="answer")
                overlay = gr.Image(label="image · heatmap · colour bar", type="pil", format="png", elem_id="overlay",
                                   interactive=False)  # fmt: skip
                with gr.Row():
                    cmap = gr.Dropdown(list(core.CMAPS), value="inferno", label="colormap")
                    style = gr.Radio(["heat", "contour"], value="heat", label="style")
                    opacity = gr.Slider(0, 1, value=0.85, step=0.05, label="opacity")
                    top_k = gr.Slider(0.05, 0.5, value=0.2, step=0.05, label="contour: top share")
                with gr.Row():
                    answer2 = gr.HTML(elem_id="answer2")
                    overlay2 = gr.Image(label="second explanation", type="pil", format="png", interactive=False,
                                        elem_id="overlay2", visible=False)  # fmt: skip
                maps = gr.Gallery(
                    label="per-token maps", columns=4, height="auto", elem_id="token-maps", visible=False
                )
                scores = gr.HTML(elem_id="scores")
                curves = gr.Image(
                    label="deletion / insertion curves", type="pil", interactive=False, visible=False
                )
                download = gr.File(label="download the explanation (zip)", elem_id="download")

        look: list[Any] = [cmap, style, opacity, top_k]

        def explain(
            img,
            q,
            mdl,
            mth,
            a,
            base,
            strat,
            opts,
            met,
            per,
            m2,
            mdl2,
            c,
            st,
            op,
            tk,
            progress=gr.Progress(),  # noqa: B008  (how Gradio injects progress)
        ):
            def report(fraction: float, desc: str) -> None:
                progress(fraction, desc=desc)

            try:
                req = core.Request(img, q, mdl, mth, a, base, strat, opts, met, per, max_pixels=max_pixels)
                ex = core.explain(pool, req, report)
                second = None
                if m2 != NONE or (mdl2 and mdl2 != NONE):
                    req2 = core.Request(
                        img, q, mdl if mdl2 in (None, "", NONE) else mdl2, mth if m2 == NONE else m2,
                        a, base, strat, "", met, False, max_pixels=max_pixels,
                    )  # fmt: skip
                    second = core.explain(pool, req2, report)
                zipped = core.save_zip(ex, workdir, cmap=c, style=st, alpha_max=op, top_k=tk)
            except VlmFocusError as e:
                raise gr.Error(str(e)) from None
            except Exception as e:  # the page shows a line; the console keeps the traceback
                traceback.print_exc(file=sys.stderr)
                raise gr.Error(f"unexpected error: {type(e).__name__}: {e}") from None
            answer_view, overlay_view, maps_view, scores_view, curves_view = _views(ex, c, st, op, tk)
            extra = (
                (core.answer_html(second), core.overlay_image(second, c, op, st, tk))
                if second
                else ("", None)
            )
            return (
                ex, answer_view, overlay_view, gr.update(value=maps_view, visible=bool(maps_view)), scores_view,
                gr.update(value=curves_view, visible=curves_view is not None), extra[0], gr.update(value=extra[1], visible=second is not None), str(zipped),
            )  # fmt: skip

        run.click(
            explain,
            inputs=[image, question, model, method, alpha, baseline, strategy, options, metrics, per_token,
                    method2, model2, *look],
            outputs=[state, answer, overlay, maps, scores, curves, answer2, overlay2, download],
            concurrency_limit=1,
        )  # fmt: skip

        def redraw(ex: Any, c: str, st: str, op: float, tk: float):
            if ex is None:
                return None, gr.update()
            try:
                maps_view = core.token_map_images(ex, c, op, st, tk)
                return core.overlay_image(ex, c, op, st, tk), gr.update(
                    value=maps_view, visible=bool(maps_view)
                )
            except VlmFocusError as e:
                raise gr.Error(str(e)) from None

        for widget in look:
            widget.change(redraw, inputs=[state, *look], outputs=[overlay, maps], show_progress="hidden")
    return demo


def _views(ex: Any, c: str, st: str, op: float, tk: float) -> tuple:
    return (
        core.answer_html(ex),
        core.overlay_image(ex, c, op, st, tk),
        core.token_map_images(ex, c, op, st, tk),
        core.scores_html(ex),
        core.curves_image(ex),
    )


def theme() -> Any:
    """The default theme with system fonts (the default loads web fonts from the internet)."""
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])
