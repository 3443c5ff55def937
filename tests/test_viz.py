"""Tests for vlm_focus.viz: overlays, LLR/curve plots and the HTML report."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from PIL import Image

from vlm_focus.errors import InputError
from vlm_focus.viz import (
    curves_figure,
    figure_to_base64_png,
    heat_rgba,
    llr_figure,
    overlay_figure,
    render_report,
    save_overlay,
    tokens_html,
)
from vlm_focus.viz.overlay import COLORBAR_LABEL, SELECTED_COLOR

W, H = 40, 30
TOKENS = [" The", " circle", " is", " red", "."]
SELECTED = [1, 3]
LLR = [0.1, 2.5, -0.2, 3.1, 0.05]


def _image() -> Image.Image:
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 6, yy * 8, np.full_like(xx, 120)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def _heatmap() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.exp(-((xx - 28) ** 2 + (yy - 10) ** 2) / 40.0).astype(np.float32)


def _explanation(**over: object) -> SimpleNamespace:
    base = dict(
        image=_image(),
        heatmap=_heatmap(),
        question="What colour is the <script>alert(1)</script> circle?",
        answer="The circle is red.",
        tokens=list(TOKENS),
        selected=list(SELECTED),
        llr=list(LLR),
        alpha=1.0,
        scores={"deletion": 0.21, "insertion": 0.83},
        curves={"x": [0.0, 0.5, 1.0], "deletion": [1.0, 0.3, 0.1], "insertion": [0.1, 0.7, 1.0]},
        model="tiny-vlm",
        method="focus",
        timings={"generate": 0.5, "heatmap": 1.25},
        args={"steps": 10, "prompt": "<b>x</b>"},
        depends_on_image=True,
        warnings=["low & noisy <signal>"],
    )
    base.update(over)
    return SimpleNamespace(**base)


def test_heat_rgba_alpha_follows_heat() -> None:
    hm = _heatmap()
    rgba = heat_rgba(hm, alpha_max=0.6)
    assert rgba.shape == (H, W, 4)
    assert rgba[np.unravel_index(np.argmin(hm), hm.shape)][3] == pytest.approx(0.0)
    assert rgba[np.unravel_index(np.argmax(hm), hm.shape)][3] == pytest.approx(0.6)
    assert rgba[..., 3].max() == pytest.approx(0.6)


def test_heat_rgba_constant_map_is_transparent() -> None:
    rgba = heat_rgba(np.full((H, W), 0.7, dtype=np.float32))
    assert np.all(rgba[..., 3] == 0.0)


def test_save_overlay_writes_png(tmp_path: Path) -> None:
    out = save_overlay(tmp_path / "o.png", _image(), _heatmap(), "Q?", TOKENS, SELECTED, title="t", dpi=60)
    assert out.stat().st_size > 0
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size[0] > 0 and im.size[1] > 0


def test_overlay_without_heatmap_and_long_answer(tmp_path: Path) -> None:
    long_tokens = [f" word{i}" for i in range(60)] + ["$x$", " \n", "next"]
    fig = overlay_figure(_image(), None, "Why?", long_tokens, [2, 5], title="")
    texts = [t.get_text() for t in fig.texts]
    assert "answer does not depend on the image: no heatmap" in " ".join(t.strip() for t in texts)
    assert len(fig.axes[0].images) == 1  # the image alone
    # wrapped over several lines: more than one distinct baseline among the answer tokens
    ys = {round(t.get_position()[1], 3) for t in fig.texts if t.get_text().startswith("word")}
    assert len(ys) > 2
    reds = [t for t in fig.texts if to_rgba(t.get_color()) == to_rgba(SELECTED_COLOR)]
    assert sorted(t.get_text() for t in reds) == ["word2", "word5"]
    save_overlay(tmp_path / "n.png", _image(), None, "Why?", long_tokens, [2], dpi=50)


def test_overlay_keeps_aspect_ratio() -> None:
    fig = overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED)
    plain, over, bar = fig.axes  # the plain image, the overlay, the colour bar
    for ax in (plain, over):
        w_in = ax.get_position().width * fig.get_figwidth()
        h_in = ax.get_position().height * fig.get_figheight()
        assert w_in / h_in == pytest.approx(W / H, rel=1e-6)
        assert len(ax.images) == 1
    assert bar.get_ylabel() == COLORBAR_LABEL
    assert [t.get_text() for t in bar.get_yticklabels()][0] == "0.00"


def test_overlay_plain_image_is_untouched_and_heat_is_greyed() -> None:
    fig = overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED)
    plain = np.asarray(fig.axes[0].images[0].get_array())
    over = np.asarray(fig.axes[1].images[0].get_array())
    factor = plain.shape[0] // H  # a 40 x 30 image is enlarged by a whole factor for display
    assert factor > 1 and plain.shape[:2] == (H * factor, W * factor)
    assert np.array_equal(plain[::factor, ::factor], np.asarray(_image()))
    # where there is no heat, the overlay is grey (r == g == b)
    cold = np.unravel_index(np.argmin(_heatmap()), _heatmap().shape)
    r, g, b = over[cold[0] * factor, cold[1] * factor][:3]
    assert r == g == b


def test_overlay_options_contour_single_and_no_text() -> None:
    fig = overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED, style="contour", side_by_side=False)
    assert len(fig.axes) == 1  # one panel, no colour bar in contour mode
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "top 20% of the heat" in texts
    bare = overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED, text=False)
    assert not any(t.get_text().startswith("Question") for t in bare.texts)
    with pytest.raises(InputError, match="overlay style"):
        overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED, style="jet")
    with pytest.raises(InputError, match="colormap"):
        overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED, cmap="no-such-map")


def test_selected_tokens_are_marked_with_a_background() -> None:
    fig = overlay_figure(_image(), _heatmap(), "Q?", TOKENS, SELECTED)
    marked = sorted(t.get_text() for t in fig.texts if t.get_bbox_patch() is not None)
    assert marked == ["circle", "red"]


@pytest.mark.parametrize("side", [16, 3000])
def test_overlay_legible_at_small_and_large_sizes(tmp_path: Path, side: int) -> None:
    image = Image.new("RGB", (side, side // 2), (200, 30, 30))
    heat = np.zeros((side // 2, side), np.float32)
    heat[: side // 4, : side // 2] = 1.0
    out = save_overlay(tmp_path / "o.png", image, heat, "Q?", TOKENS, SELECTED, dpi=100)
    with Image.open(out) as im:
        assert 700 <= im.size[0] <= 900  # the figure's width does not follow the image's
    fig = overlay_figure(image, heat, "Q?", TOKENS, SELECTED)
    drawn = np.asarray(fig.axes[1].images[0].get_array())
    assert 448 <= max(drawn.shape[:2]) <= 1024


def test_llr_figure_bars() -> None:
    fig = llr_figure(TOKENS, LLR, 1.0, SELECTED)
    ax = fig.axes[0]
    bars = ax.containers[0]
    assert len(bars) == len(TOKENS)
    red = to_rgba(SELECTED_COLOR)
    for i, bar in enumerate(bars):
        assert (bar.get_facecolor() == red) == (i in SELECTED)
        assert bar.get_height() == pytest.approx(LLR[i])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["The", "circle", "is", "red", "."]


def test_curves_figure_empty_and_full() -> None:
    empty = curves_figure({}, {})
    assert any(t.get_text() == "no curves" for t in empty.axes[0].texts)
    ex = _explanation()
    fig = curves_figure(ex.curves, ex.scores)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("0.210" in s for s in labels) and any("0.830" in s for s in labels)


def test_tokens_html_escapes_and_marks() -> None:
    html = tokens_html([" a", " <b>", "&"], [1], [0.0, 2.0, 0.5])
    assert "<b>" not in html and "&lt;b&gt;" in html and "&amp;" in html
    assert html.count('class="tok sel"') == 1
    assert 'title="LLR = 2.000"' in html
    assert "background:rgba(255,140,0,0.45)" in html  # LLR 2 at alpha 1: the full tint
    assert html.count("background:") == 2  # the token with LLR 0 has none


def test_render_report() -> None:
    html = render_report(_explanation())
    assert html.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html
    assert re.search(r'class="tok sel"[^>]*>\s*circle<', html)
    assert re.search(r'class="tok sel"[^>]*>\s*red<', html)
    assert html.count('class="tok sel"') == len(SELECTED)
    assert "tiny-vlm" in html and "focus" in html
    assert "low &amp; noisy &lt;signal&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "heatmap" in html and "1.250 s" in html
    assert html.count("<b>Question:</b>") == 1  # one question/answer block, not two
    assert "normalised so that the full image is 1 and the baseline 0" in html
    assert "lower is better" in html and "higher is better" in html


def test_render_report_without_heatmap_or_curves() -> None:
    ex = _explanation(heatmap=None, depends_on_image=False, selected=[], curves={}, scores={}, warnings=[])
    html = render_report(ex)
    assert "does not depend on the image" in html
    assert "data:image/png;base64," in html
    assert 'class="tok sel"' not in html


def test_figure_to_base64_png_roundtrip() -> None:
    import base64
    import io

    b64 = figure_to_base64_png(llr_figure(TOKENS, LLR, 1.0, SELECTED))
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        assert im.format == "PNG"
