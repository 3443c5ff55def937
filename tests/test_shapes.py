import numpy as np
import pytest

from vlm_focus.data.shapes import (
    COLORS,
    QTYPES,
    SHAPES,
    answer_correct,
    make_sample,
    patch_labels,
    vocabulary_corpus,
)


def test_deterministic_and_order_free():
    a, b = make_sample(5, 7, "count"), make_sample(5, 7, "count")
    assert a.question == b.question and a.answer == b.answer
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert make_sample(5, 8, "count").id != a.id


@pytest.mark.parametrize("qtype", QTYPES)
def test_templates_and_evidence(qtype):
    for i in range(30):
        s = make_sample(11, i, qtype, min_objects=2 if qtype in ("color", "shape") else 1)
        assert s.image.size == (64, 64) and s.evidence.shape == (64, 64)
        assert s.question in vocabulary_corpus() and s.answer in vocabulary_corpus()
        assert 1 <= len(s.objects) <= 4
        assert answer_correct(s.answer, s)
        if qtype == "color":
            (obj,) = [o for o in s.objects if f"the {o.shape}?" in s.question]
            assert s.key == obj.color and np.array_equal(s.evidence, obj.mask)
        if qtype == "count":
            n = sum(o.shape in s.question for o in s.objects)
            assert s.evidence.any() == (n > 0)


def test_objects_do_not_overlap_and_sizes():
    for i in range(20):
        s = make_sample(3, i, "count", min_objects=4)
        total = sum(o.mask.astype(int) for o in s.objects)
        assert total.max() == 1
        for o in s.objects:
            ys, xs = np.nonzero(o.mask)
            side = max(np.ptp(ys), np.ptp(xs)) + 1
            assert 0.15 * 64 - 1 <= side <= 0.30 * 64 + 1


def test_colours_are_drawn_with_bounded_jitter():
    s = make_sample(9, 0, "color", min_objects=2)
    arr = np.asarray(s.image).astype(int)
    for o in s.objects:
        mean = arr[o.mask].mean(0)
        assert np.all(np.abs(mean - np.array(COLORS[o.color])) <= 31)


def test_patch_labels_hand_value():
    from vlm_focus.data.shapes import SceneObject

    mask = np.zeros((64, 64), bool)
    mask[:32, :32] = True  # top-left quarter
    labels = patch_labels([SceneObject("square", "blue", mask)], grid=2)
    cls = 1 + list(COLORS).index("blue") * len(SHAPES) + SHAPES.index("square")
    assert labels.tolist() == [[cls, 0], [0, 0]]


def test_answer_judging():
    s = make_sample(1, 0, "color", min_objects=2)
    other = next(c for c in COLORS if c != s.key)
    assert answer_correct(f"The thing is {s.key}.", s)
    assert not answer_correct(f"The thing is {s.key} or {other}.", s)
    assert not answer_correct("", s)
