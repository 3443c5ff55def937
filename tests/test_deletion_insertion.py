import numpy as np
import pytest
import torch

from vlm_focus.metrics import cell_order, deletion_insertion, trapezoid_auc


def test_trapezoid_hand_value():
    assert trapezoid_auc([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(0.5)
    assert trapezoid_auc([0, 0.25, 1], [0, 1, 1]) == pytest.approx(0.125 + 0.75)


def test_cell_order_most_salient_first():
    h = torch.zeros(4, 4)
    h[2:, 2:] = 1.0
    h[:2, :2] = 0.5
    assert cell_order(h, 2).tolist() == [3, 0, 1, 2]


def _setup():
    """Score = mean of the image inside the right half; heatmap perfect or inverted."""
    image, base = torch.ones(3, 8, 8), torch.zeros(3, 8, 8)

    def fn(x):
        return x[:, :, :, 4:].mean(dim=(1, 2, 3))

    good = torch.zeros(8, 8)
    good[:, 4:] = 1.0
    return fn, image, base, good


def test_perfect_heatmap_beats_inverted():
    fn, image, base, good = _setup()
    a = deletion_insertion(fn, image, base, good, grid=2, steps=4, batch_size=3)
    b = deletion_insertion(fn, image, base, 1 - good, grid=2, steps=4, batch_size=3)
    assert a["deletion"][0] == pytest.approx(1.0) and a["deletion"][-1] == pytest.approx(0.0)
    assert a["insertion"][0] == pytest.approx(0.0) and a["insertion"][-1] == pytest.approx(1.0)
    assert a["deletion_auc"] < b["deletion_auc"] and a["insertion_auc"] > b["insertion_auc"]
    # 2x2 grid, 4 steps: the perfect order removes both right cells first.
    assert a["x"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert np.allclose(a["deletion"], [1.0, 0.5, 0.0, 0.0, 0.0])
    assert a["deletion_auc"] == pytest.approx(trapezoid_auc(a["x"], [1.0, 0.5, 0.0, 0.0, 0.0]))


def test_degenerate_scores_give_nan():
    _, image, base, good = _setup()
    out = deletion_insertion(lambda x: torch.zeros(len(x)), image, base, good, grid=2, steps=4)
    assert np.isnan(out["deletion_auc"]) and np.isnan(out["insertion_auc"])
