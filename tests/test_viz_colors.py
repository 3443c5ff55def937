"""Tests for vlm_focus.viz.colors: greyed heat, contour, display sizes, CSS colour bars."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from vlm_focus.errors import InputError
from vlm_focus.viz.colors import (
    display_size,
    for_display,
    gradient_css,
    greyed,
    normalise,
    overlay_rgb,
    top_region,
)


def _heat() -> np.ndarray:
    h = np.zeros((4, 5))
    h[1, 2] = 1.0
    h[2, 2] = 0.5
    return h


def test_normalise_handles_constant_and_nan() -> None:
    assert np.all(normalise(np.full((2, 2), 3.0)) == 0)
    n = normalise(np.array([[0.0, np.nan], [2.0, 4.0]]))
    assert n.tolist() == [[0.0, 0.0], [0.5, 1.0]]


def test_greyed_is_dimmed_luma() -> None:
    rgb = np.array([[[255, 0, 0], [255, 255, 255]]], np.uint8)
    g = greyed(rgb, level=0.5)
    assert g[0, 0].tolist() == pytest.approx([0.299 * 0.5] * 3)
    assert g[0, 1].tolist() == pytest.approx([0.5] * 3)


def test_heat_style_values_by_hand() -> None:
    rgb = np.full((4, 5, 3), 255, np.uint8)  # white: greyed to 0.55
    out = overlay_rgb(rgb, _heat(), opacity=0.8)
    assert out[0, 0].tolist() == [round(0.55 * 255)] * 3  # no heat: the grey image only
    top = np.asarray(colormaps["inferno"](1.0)[:3])
    want = np.round((0.55 * 0.2 + top * 0.8) * 255)
    assert out[1, 2].tolist() == want.tolist()
    assert overlay_rgb(rgb, None).tolist() == rgb.tolist()


def test_red_object_under_heat_stays_distinct_from_heat() -> None:
    """The old jet overlay hid red heat on a red object; greyed, the object is no longer red."""
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 220  # a red image
    out = overlay_rgb(rgb, _heat()).astype(int)
    cold = out[0, 0]
    assert cold[0] == cold[1] == cold[2]  # no red left where there is no heat


def test_contour_marks_top_region() -> None:
    heat = np.zeros((40, 40))
    heat[10:20, 10:20] = 1.0
    region = top_region(heat, 0.0625)
    assert region.sum() == 100
    rgb = np.full((40, 40, 3), 200, np.uint8)
    out = overlay_rgb(rgb, heat, style="contour", top_k=0.0625)
    assert out[15, 15].tolist() == [200, 200, 200]  # inside: the image as it is
    assert out[10, 15].tolist() == [255, 255, 255]  # the line
    assert out[35, 35].tolist() == [round(200 * 0.35)] * 3  # outside: dimmed
    assert not top_region(np.ones((3, 3))).any()


def test_bad_options_raise_our_error() -> None:
    with pytest.raises(InputError, match="opacity"):
        overlay_rgb(np.zeros((4, 5, 3), np.uint8), _heat(), opacity=2.0)
    with pytest.raises(InputError, match="top_k"):
        overlay_rgb(np.zeros((4, 5, 3), np.uint8), _heat(), top_k=0.0)


def test_display_size_and_resizing() -> None:
    assert display_size(64, 32) == (448, 224)  # x7, a whole factor
    assert display_size(4000, 2000) == (1024, 512)
    assert display_size(500, 600) == (500, 600)
    rgb, heat = for_display(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), np.float32))
    assert rgb.shape == (448, 448, 3) and heat is not None and heat.shape == (448, 448)


def test_gradient_css() -> None:
    css = gradient_css("inferno", stops=3)
    assert css.startswith("linear-gradient(to right, #000004 0%") and css.endswith("100%)")
