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


# ----- protocol="paper": the reference code's procedure, checked by hand -------------------
def _weighted():
    """2x2 image, 2x2 grid (upsampling is the identity): score = sum of w * pixel."""
    w = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    image, base = torch.ones(3, 2, 2), torch.zeros(3, 2, 2)
    return (lambda x: (x[:, 0] * w).sum(dim=(1, 2))), image, base, w


def test_paper_protocol_sums_steps_without_start_and_misadds_last():
    fn, image, base, w = _weighted()
    ours = deletion_insertion(fn, image, base, w, grid=2, steps=4)
    paper = deletion_insertion(fn, image, base, w, grid=2, steps=4, protocol="paper")
    for out in (ours, paper):  # same order (no ties), same curves
        assert np.allclose(out["deletion"], [1.0, 0.6, 0.3, 0.1, 0.0])
        assert np.allclose(out["insertion"], [0.0, 0.4, 0.7, 0.9, 1.0])
    # ours: trapezoid, width 1/4: (0.8 + 0.45 + 0.2 + 0.05) / 4 and (0.2 + 0.55 + 0.8 + 0.95) / 4
    assert ours["deletion_auc"] == pytest.approx(0.375)
    assert ours["insertion_auc"] == pytest.approx(0.625)
    # paper: (0.6 + 0.3 + 0.1 + 1) / 4 (the last step adds its width 1, not 1 * 0.0)
    assert paper["deletion_auc"] == pytest.approx(0.5)
    assert paper["insertion_auc"] == pytest.approx((0.4 + 0.7 + 0.9 + 1) / 4)


def test_paper_protocol_short_last_step():
    """3x3 grid, 4 steps: step 2, cells changed 0, 2, 4, 6, 8, 9; score = mean pixel."""
    image, base = torch.ones(3, 3, 3), torch.zeros(3, 3, 3)
    heat = torch.rand(3, 3, generator=torch.Generator().manual_seed(0))

    def fn(x):
        return x.mean(dim=(1, 2, 3))

    ours = deletion_insertion(fn, image, base, heat, grid=3, steps=4)
    paper = deletion_insertion(fn, image, base, heat, grid=3, steps=4, protocol="paper")
    assert paper["x"] == pytest.approx([0, 2 / 9, 4 / 9, 6 / 9, 8 / 9, 1])
    assert ours["deletion_auc"] == pytest.approx(0.5) and ours["insertion_auc"] == pytest.approx(0.5)
    # (2 * (7 + 5 + 3 + 1) / 9 + 1) / 9 and (2 * (2 + 4 + 6 + 8) / 9 + 1) / 9
    assert paper["deletion_auc"] == pytest.approx(41 / 81)
    assert paper["insertion_auc"] == pytest.approx(49 / 81)


def test_paper_protocol_blends_removed_cells_bilinearly():
    """2x2 grid on a 3x3 image, score = the centre pixel. With aligned corners the centre is
    the mean of the four cells: removing one cell leaves 0.75 of it (paper); nearest
    upsampling puts the centre in the top-left cell, removed whole (ours)."""
    image, base = torch.ones(3, 3, 3), torch.zeros(3, 3, 3)
    heat = torch.tensor([[4.0, 4.0, 3.0], [4.0, 4.0, 3.0], [2.0, 2.0, 1.0]])  # top-left cell first

    def fn(x):
        return x[:, 0, 1, 1]

    ours = deletion_insertion(fn, image, base, heat, grid=2, steps=4)
    paper = deletion_insertion(fn, image, base, heat, grid=2, steps=4, protocol="paper")
    assert np.allclose(ours["deletion"], [1.0, 0.0, 0.0, 0.0, 0.0])
    assert np.allclose(paper["deletion"], [1.0, 0.75, 0.5, 0.25, 0.0])
    assert np.allclose(paper["insertion"], [0.0, 0.25, 0.5, 0.75, 1.0])


def test_paper_order_is_the_reference_sort_and_agrees_without_ties():
    heat = torch.rand(8, 8, generator=torch.Generator().manual_seed(1))
    cells = torch.nn.functional.adaptive_avg_pool2d(heat[None, None], 4).flatten()
    assert cell_order(heat, 4, "paper").tolist() == torch.argsort(1 - cells).tolist()
    assert cell_order(heat, 4, "paper").tolist() == cell_order(heat, 4).tolist()


def test_unknown_protocol_is_refused():
    from vlm_focus import catalog
    from vlm_focus.errors import InputError
    from vlm_focus.metrics.deletion_insertion import PROTOCOLS

    fn, image, base, w = _weighted()
    with pytest.raises(InputError, match="protocol"):
        deletion_insertion(fn, image, base, w, grid=2, steps=4, protocol="reference")
    assert catalog.METRIC_PROTOCOLS == PROTOCOLS


def test_lens_records_and_uses_the_protocol(tiny_adapter, scene):
    from vlm_focus.errors import InputError
    from vlm_focus.explain import Lens

    fast = {"iterations": 1, "ig_iter": 2, "size": 8, "metric_steps": 5, "metric_grid": 8, "alpha": -1e9}
    with pytest.raises(InputError, match="metric_protocol"):
        Lens(tiny_adapter, metric_protocol="nope", **fast)
    image = scene.image
    out = {}
    for protocol in ("ours", "paper"):
        lens = Lens(tiny_adapter, metric_protocol=protocol, working_size=32, **fast)
        out[protocol] = lens.explain(image, scene.question, answer="red", selected=[0])
        assert out[protocol].args["metric_protocol"] == protocol
    assert np.allclose(out["ours"].heatmap, out["paper"].heatmap)
    assert out["ours"].scores["insertion"] != out["paper"].scores["insertion"]
