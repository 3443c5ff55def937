"""Statistics fit for the data: Wilson intervals for shares, t-intervals for means, none below
n = 3; the human-map metrics; the table. Hand-computed values."""

import math

import numpy as np
import pytest

from vlm_focus.errors import InputError
from vlm_focus.metrics import human_map_scores, topk_iou, wilson_ci
from vlm_focus.runs.summary import format_table, mean_interval, share_interval, summarize

T_975_DF2 = 4.302652729911275


def test_wilson_interval_hand_computed():
    # 8 of 10, z = 1.959964: centre 0.716740, half-width 0.226578 (Wilson 1927; tables)
    share, low, high = wilson_ci(8, 10)
    assert (
        share == 0.8
        and low == pytest.approx(0.490162, abs=1e-6)
        and high == pytest.approx(0.943318, abs=1e-6)
    )
    share, low, high = wilson_ci(0, 10)  # no collapse to a point at 0
    assert (share, low) == (0.0, 0.0) and high == pytest.approx(0.277533, abs=1e-6)
    assert wilson_ci(10, 10)[1] == pytest.approx(1 - 0.277533, abs=1e-6)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    with pytest.raises(InputError):
        wilson_ci(3, 2)
    with pytest.raises(InputError):
        wilson_ci(1, 2, level=1.0)


def test_no_interval_below_three_values():
    two = mean_interval([0.2, 0.4, None, math.nan])
    assert two["mean"] == pytest.approx(0.3) and two["n"] == 2
    assert math.isnan(two["low"]) and math.isnan(two["high"])
    three = mean_interval([1.0, 2.0, 3.0])
    assert (three["low"], three["high"]) == pytest.approx(
        (2 - T_975_DF2 / math.sqrt(3), 2 + T_975_DF2 / math.sqrt(3))
    )
    assert math.isnan(share_interval(1, 2)["low"]) and share_interval(2, 3)["low"] > 0


def test_topk_iou_hand_computed():
    a = np.array([[4.0, 3.0], [2.0, 1.0]])
    assert topk_iou(a, a[::-1], fraction=0.5) == 0.0
    assert topk_iou(a, np.array([[4.0, 1.0], [3.0, 2.0]]), fraction=0.5) == pytest.approx(1 / 3)
    # ties share the top-k evenly: 3 tied pixels of weight 2/3 against 1 + three of 1/3
    tied = np.array([[1.0, 1.0], [1.0, 0.0]])
    peak = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert topk_iou(tied, peak, fraction=0.5) == pytest.approx((4 / 3) / (8 / 3))
    assert math.isnan(topk_iou(np.ones((2, 2)), a))
    with pytest.raises(InputError):
        topk_iou(a, a, fraction=0.0)


def test_human_map_scores_resize_the_human_map():
    heat = np.array([[0.0, 1.0], [0.5, 0.0]])
    human = np.kron(heat, np.ones((4, 4)))  # the same map at 8x8
    scores = human_map_scores(heat, human)
    assert set(scores) == {"human_soft_iou", "human_rank_correlation", "human_topk_iou"}
    assert scores["human_soft_iou"] == pytest.approx(1.0) and scores[
        "human_rank_correlation"
    ] == pytest.approx(1.0)
    assert scores["human_topk_iou"] == pytest.approx(1.0)
    assert human_map_scores(heat, 1 - human)["human_rank_correlation"] < 0


def records():
    recs = []
    for i, (cat, correct, ok) in enumerate(
        [("a", True, True), ("a", True, True), ("a", False, True), ("b", True, False), ("b", None, True)]
    ):
        r = {"id": str(i), "category": cat, "correct": correct, "seconds": 1.0}
        if ok:
            r.update(status="ok", deletion=0.1 * i, insertion=0.9, human_topk_iou=None if i == 4 else 0.5)
        else:
            r.update(status="skipped", reason="answer does not depend on the image")
        recs.append(r)
    return recs


def test_summary_of_records():
    s = summarize(records())
    assert s["n_samples"] == 5 and s["n_ok"] == 4 and s["n_per_category"] == {"a": 3, "b": 2}
    acc = s["accuracy"]["overall"]
    assert (acc["k"], acc["n"]) == (3, 4) and acc["mean"] == 0.75
    assert (acc["low"], acc["high"]) == pytest.approx(wilson_ci(3, 4)[1:])
    assert s["accuracy"]["per_category"]["b"]["n"] == 1 and math.isnan(
        s["accuracy"]["per_category"]["b"]["low"]
    )
    assert list(s["metrics"]) == ["deletion", "insertion", "human_topk_iou"]  # only what the records carry
    assert s["metrics"]["deletion"]["overall"]["mean"] == pytest.approx((0 + 0.1 + 0.2 + 0.4) / 4)
    assert s["metrics"]["human_topk_iou"]["overall"]["n"] == 3  # a null is left out
    assert s["metrics"]["deletion"]["per_category"]["b"]["n"] == 1
    assert s["lower_is_better"] == ["deletion"]
    skipped = s["skipped"]
    assert skipped["count"] == 1 and skipped["share"] == 0.2
    assert (skipped["low"], skipped["high"]) == pytest.approx(wilson_ci(1, 5)[1:])
    assert skipped["by_reason"] == {"answer does not depend on the image": {"count": 1, "share": 0.2}}
    assert s["seconds"] == {"total": 5.0, "mean_per_sample": 1.0}
    table = format_table(s)
    assert table.splitlines()[0].split() == ["all", "a", "b"]
    assert "accuracy" in table and "0.750 [" in table and "human_topk_iou" in table
    assert "skipped: 1 (20%) answer does not depend on the image" in table


def test_empty_summary():
    s = summarize([])
    assert s["n_samples"] == 0 and s["metrics"] == {} and math.isnan(s["accuracy"]["overall"]["mean"])
    assert "accuracy" in format_table(s)
