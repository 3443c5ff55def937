"""The subset-search method on hand-checkable scores: greedy order, early stop, pass count,
option errors, and a black-box run through a CustomAdapter."""

import pytest
import torch
from fakes import FnScorer

from vlm_focus.errors import InputError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.regions import grid_regions, have_skimage
from vlm_focus.methods.subset import subset_passes
from vlm_focus.models.custom import CustomAdapter

# 32 x 32 image, grid of 16 regions: 4 x 4 cells of 8 x 8, label = 4 * row + col.
CELL_A, CELL_B = 6, 9  # rows 8:16, cols 16:24 and rows 16:24, cols 8:16


def cell(label: int) -> tuple[slice, slice]:
    r, c = divmod(label, 4)
    return slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8)


def cell_target(weights: dict[int, float]) -> Target:
    """``f = sum_k w_k * mean(cell k)``: only those cells matter."""

    def fn(p):
        return sum(w * p[:, :, cell(k)[0], cell(k)[1]].mean(dim=(1, 2, 3)) for k, w in weights.items())

    return Target(FnScorer(fn), [0])


IMAGE, BASE = torch.ones(3, 32, 32), torch.zeros(3, 32, 32)
GRID = {"n_regions": 16, "segments": "grid"}


def test_grid_regions_cover_the_image():
    labels = grid_regions(32, 32, 16)
    assert labels.shape == (32, 32) and int(labels.max()) == 15
    assert int(labels[cell(CELL_A)].unique()) == CELL_A
    wide = grid_regions(30, 90, 12)  # aspect 3: 2 rows x 6 columns
    assert sorted(wide.unique().tolist()) == list(range(12))


def test_the_one_region_that_matters_is_chosen_first_then_the_search_stops():
    method = get_method("subset", budget=8, **GRID)
    heat = method.explain(cell_target({CELL_A: 1.0}), IMAGE, BASE)
    assert method.last_chosen == [CELL_A]
    expected = torch.zeros(32, 32)
    expected[cell(CELL_A)] = 1
    assert torch.equal(heat, expected)
    # Step 1 chooses A (J = 1 + 1); step 2 gains nothing and stops (patience 1).
    assert method.last_passes == subset_passes(16, 2) == 2 + 2 * 16 + 2 * 15


def test_order_of_choice_is_the_heatmap():
    method = get_method("subset", budget=8, **GRID)
    heat = method.explain(cell_target({CELL_A: 2.0, CELL_B: 1.0}), IMAGE, BASE)
    assert method.last_chosen == [CELL_A, CELL_B]
    assert float(heat[cell(CELL_A)].min()) == 1.0 and float(heat[cell(CELL_B)].max()) == 0.5
    assert float(heat.sum()) == 64 * 1.5  # every other cell is 0
    assert method.last_passes == subset_passes(16, 3)


def test_budget_and_patience_bound_the_passes():
    target = cell_target({CELL_A: 2.0, CELL_B: 1.0})
    one = get_method("subset", budget=1, **GRID)
    one.explain(target, IMAGE, BASE)
    assert one.last_chosen == [CELL_A] and one.last_passes == 2 + 2 * 16
    # A fraction of the regions, rounded up: 0.2 * 16 -> 4 steps; patience keeps searching,
    # but regions of steps that never improved are not kept.
    frac = get_method("subset", budget=0.2, patience=10, **GRID)
    frac.explain(target, IMAGE, BASE)
    assert frac.last_chosen == [CELL_A, CELL_B] and frac.last_passes == subset_passes(16, 4)
    # batch sizes change nothing but the number of calls
    for batch_size in (1, 3):
        m = get_method("subset", budget=0.2, patience=10, batch_size=batch_size, **GRID)
        assert torch.equal(m.explain(target, IMAGE, BASE), frac.explain(target, IMAGE, BASE))
        assert m.last_passes == frac.last_passes


def test_weights_choose_the_term():
    """``f = min(mean A, mean B)`` (both are needed): showing A alone gains nothing, removing
    A alone removes everything."""

    def fn(p):
        a, b = (p[:, :, cell(k)[0], cell(k)[1]].mean(dim=(1, 2, 3)) for k in (CELL_A, CELL_B))
        return torch.minimum(a, b)

    target = Target(FnScorer(fn), [0])
    chosen = {}
    for name, weights in {
        "insertion": {"w_deletion": 0.0},
        "deletion": {"w_insertion": 0.0},
        "both": {},
    }.items():
        m = get_method("subset", budget=8, **weights, **GRID)
        heat = m.explain(target, IMAGE, BASE)
        chosen[name] = m.last_chosen
        assert 0 <= float(heat.min()) and float(heat.max()) <= 1
    # insertion only: no single region helps, the search stops at once (an all-zero map);
    # deletion only: A (the lowest label of the tie A/B) is enough; both: A, then B completes it.
    assert chosen == {"insertion": [], "deletion": [CELL_A], "both": [CELL_A, CELL_B]}


def test_pass_formula():
    assert subset_passes(36, 9) == 2 + 2 * sum(range(28, 37)) == 578
    assert subset_passes(4, 10) == 2 + 2 * (4 + 3 + 2 + 1)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"budget": 0}, "budget"),
        ({"budget": 1.5}, "budget"),
        ({"budget": -0.1}, "budget"),
        ({"budget": True}, "budget"),
        ({"w_insertion": 0.0, "w_deletion": 0.0}, "w_insertion"),
        ({"w_deletion": -1.0}, "w_insertion"),
        ({"segments": "quadtree"}, "segments"),
        ({"n_regions": 0}, "n_regions"),
        ({"patience": 0}, "patience"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"regions": 4}, "unknown"),
    ],
)
def test_option_errors(options, match):
    with pytest.raises(InputError, match=match):
        get_method("subset", **options).explain(cell_target({CELL_A: 1.0}), IMAGE, BASE)


def test_slic_without_scikit_image_is_refused_and_auto_falls_back_to_the_grid(monkeypatch):
    import vlm_focus.methods.regions as regions
    import vlm_focus.methods.subset as subset

    assert have_skimage()  # a core dependency; a broken install is simulated
    for module in (regions, subset):
        monkeypatch.setattr(module, "have_skimage", lambda: False)
    with pytest.raises(InputError, match="scikit-image"):
        get_method("subset", segments="slic").explain(cell_target({CELL_A: 1.0}), IMAGE, BASE)
    auto = get_method("subset", budget=8, n_regions=16, segments="auto")
    auto.explain(cell_target({CELL_A: 1.0}), IMAGE, BASE)
    assert auto.last_chosen == [CELL_A]


def test_black_box_through_a_custom_adapter():
    """A CustomAdapter whose answer-token logit is the brightness of the top-left quadrant:
    the quadrant of the four grid regions is chosen, and nothing else."""
    from common import build_tokenizer

    tok = build_tokenizer()

    def logits_fn(input_ids, inputs, positions):
        x = inputs["x"]
        logits = torch.zeros(x.shape[0], len(positions), len(tok))
        logits[:, :, 5] = 8 * x[:, :, :16, :16].mean(dim=(1, 2, 3)).view(-1, 1)
        return logits

    adapter = CustomAdapter(
        lambda px: {"x": px},
        logits_fn,
        tokenizer=tok,
        prompt_fn=lambda q, px: tok(f"USER: {q} ASSISTANT:", add_special_tokens=False)["input_ids"],
    )
    image = torch.full((3, 32, 32), 0.9)
    scorer = adapter.scorer(image, "What is it?", torch.tensor([5]), batch_size=4)
    method = get_method("subset", n_regions=4, budget=4, segments="grid")
    heat = method.explain(Target(scorer, [0], adapter), image, torch.zeros_like(image))
    assert method.last_chosen == [0]
    assert float(heat[:16, :16].min()) == 1.0 and float(heat[16:].max()) == 0.0
