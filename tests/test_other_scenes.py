"""The second scene generator (benchmarks/other_scenes.py), used to check the heatmaps on
layouts no model was trained on: its scenes must be what it says, and their evidence right."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vlm_focus.data.shapes import COLORS, SHAPES

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "other_scenes.py"
spec = importlib.util.spec_from_file_location("other_scenes", PATH)
assert spec is not None and spec.loader is not None
other = importlib.util.module_from_spec(spec)
spec.loader.exec_module(other)


@pytest.mark.parametrize("index", range(12))
def test_scenes_hold_what_their_question_asks(index):
    s = other.other_scene(6161, index)
    w, h = s.image.size
    assert 128 <= w <= 300 and 128 <= h <= 300 and 0.75 <= w / h <= 1.34
    assert s.qtype == ("color", "shape")[index % 2] and 2 <= len(s.objects) <= 4
    masks = np.array([o.mask for o in s.objects])
    assert masks.shape[1:] == (h, w) and masks.sum(0).max() == 1  # the objects do not overlap
    (asked,) = [o for o in s.objects if np.array_equal(o.mask, s.evidence)]
    other_values = [
        getattr(o, "shape" if s.qtype == "color" else "color") for o in s.objects if o is not asked
    ]
    if s.qtype == "color":
        assert s.question == f"What color is the {asked.shape}?" and s.key == asked.color in COLORS
        assert asked.shape not in other_values
    else:
        assert s.question == f"What shape is the {asked.color} object?" and s.key == asked.shape in SHAPES
        assert asked.color not in other_values
    # the evidence pixels show the object's colour family: its palette colour is the nearest
    pixels = np.asarray(s.image, np.float32)[s.evidence]
    palette = np.array(list(COLORS.values()), np.float32)
    nearest = np.argmin(((pixels[:, None] - palette[None]) ** 2).sum(-1), 1)
    assert np.mean(nearest == list(COLORS).index(asked.color)) > 0.9
    side = min(w, h)
    assert 0.12 * side * 0.12 * side * 0.4 < s.evidence.sum() <= (0.26 * side + 1) ** 2


def test_scenes_are_deterministic_and_order_free():
    a, b = other.other_scene(5, 3), other.other_scene(5, 3)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.question == b.question
    assert other.other_scene(5, 4).id == "other-5-4"
    assert not np.array_equal(np.asarray(a.image), np.asarray(other.other_scene(6, 3).image))
