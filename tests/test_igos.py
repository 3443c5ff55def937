"""iGOS++ loss terms by hand, its integrated gradient on a linear score, and a toy run."""

import math

import pytest
import torch

from vlm_focus.errors import InputError, MethodError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.igos import (
    bilateral_tv,
    carried,
    contrast_weight,
    integrated_mask_gradient,
    l1_term,
    l2_term,
    movable,
    normalize_gradient,
    region_drops,
    segment_start,
    step_size,
)


class FakeScorer:
    """log P of one 'token' = sum of pixels in a square times a weight (linear in pixels)."""

    batch_size = 4

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    def __call__(self, pixels):
        return (pixels * self.weight).sum(dim=(1, 2, 3))[:, None]


def square_weight(h=16, w=16, box=(4, 8, 4, 8)):
    wgt = torch.zeros(3, h, w)
    wgt[:, box[0] : box[1], box[2] : box[3]] = 1.0
    return wgt


def test_l1_l2_hand_values():
    m = torch.tensor([[[[1.0, 0.5], [0.0, 1.0]]]])
    assert float(l1_term(m)) == pytest.approx((0 + 0.5 + 1 + 0) / 4)
    assert float(l2_term(m, step=0, gamma=1.0)) == pytest.approx(0.25 + 1.0)
    assert float(l2_term(m, step=2, gamma=1.0)) == pytest.approx(1.25 * math.exp(-2))


def test_bilateral_tv_hand_value():
    # Constant image: edge weights are 1. Mask [[1, 0], [1, 0]] upsampled to 2x2 is itself.
    m = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    img = torch.full((3, 2, 2), 0.5)
    # TV: vertical diffs 0 (mean 0), horizontal diffs 1,1 -> mean 1; same on the 2x2 upsample.
    assert float(bilateral_tv(m, img)) == pytest.approx(0.5 * (1 + 1))
    # A strong image edge where the mask changes makes that mask edge cheap.
    edge = img.clone()
    edge[:, :, 1] = 1.0
    assert float(bilateral_tv(m, edge)) < float(bilateral_tv(m, img))


def test_integrated_gradient_of_linear_score():
    # f(phi(I, B, a*M_up)) is linear in M, so the IG is exact: mean_k a_k * w * (I - B).
    wgt = square_weight()
    target = Target(FakeScorer(wgt), [0])
    image, base = torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
    mask = torch.ones(1, 1, 16, 16)  # same grid: upsampling is the identity
    grad, value = integrated_mask_gradient(
        target, image, base, mask, steps=4, noise=0.0, generator=torch.Generator(), batch_size=3
    )
    mean_alpha = (0.25 + 0.5 + 0.75 + 1.0) / 4
    assert torch.allclose(grad[0, 0], mean_alpha * wgt.sum(0))
    assert value == pytest.approx(mean_alpha * float(wgt.sum()))


def test_igos_finds_the_square():
    torch.manual_seed(0)
    wgt = square_weight(32, 32, (8, 16, 20, 28)) * 0.05
    target = Target(FakeScorer(wgt), [0])
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    base = torch.zeros(3, 32, 32)
    igos = get_method("igos++", size=8, iterations=5, ig_iter=4, noise=0.0, blend_with="baseline")
    heat = igos.explain(target, image, base)
    assert heat.shape == (32, 32) and 0 <= float(heat.min()) and float(heat.max()) <= 1
    inside = heat[8:16, 20:28].mean()
    outside = torch.cat([heat[:8].flatten(), heat[16:].flatten()]).mean()
    assert inside > outside + 0.3


def test_the_default_blends_with_the_mean_colour_not_the_given_baseline():
    wgt = square_weight(32, 32, (8, 16, 20, 28)) * 0.05
    target = Target(FakeScorer(wgt), [0])
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean = image.mean(dim=(1, 2), keepdim=True).expand_as(image)

    def heat(base: torch.Tensor, **options) -> torch.Tensor:
        method = get_method("igos++", init="ones", size=8, iterations=3, ig_iter=4, noise=0.0, **options)
        return method.explain(target, image, base)

    default = heat(torch.zeros(3, 32, 32))
    assert torch.equal(default, heat(torch.ones(3, 32, 32)))
    assert torch.equal(default, heat(mean, blend_with="baseline"))
    assert not torch.equal(default, heat(torch.zeros(3, 32, 32), blend_with="baseline"))
    assert get_method("igos++", preset="paper").options["blend_with"] == "baseline"
    with pytest.raises(InputError, match="blend_with"):
        get_method("igos++", blend_with="blur")


def test_nan_is_a_clear_error():
    class NaNScorer(FakeScorer):
        def __call__(self, pixels):
            return super().__call__(pixels) * float("nan")

    target = Target(NaNScorer(square_weight()), [0])
    with pytest.raises(MethodError, match="non-finite"):
        get_method("igos++", size=4, iterations=1, ig_iter=2).explain(
            target, torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
        )


def test_unknown_option():
    with pytest.raises(InputError, match="unknown option"):
        get_method("igos++", iterationz=3)


# ----- the converging default and the paper preset ---------------------------------------------

# igos++'s options before the converging default (the paper's / reference code's settings).
OLD_DEFAULTS = {
    "size": 32,
    "iterations": 5,
    "ig_iter": 10,
    "l1": 1.0,
    "l2": 0.1,
    "l3": 10.0,
    "gamma": 1.0,
    "lr": 10.0,
    "momentum": 5.0,
    "noise": 0.05,
    "tv_beta": 2.0,
    "sigma": 0.01,
    "batch_size": None,
    "seed": 0,
}


def old_igos(target, pixels, baseline, **options):
    """igos++ as it was before the converging default (raw gradient, inline NAG step)."""
    from vlm_focus.methods.compose import upsample

    o = {**OLD_DEFAULTS, **options}
    gen = torch.Generator().manual_seed(o["seed"])
    batch = o["batch_size"] or target.batch_size
    mask = torch.ones(1, 1, o["size"], o["size"])
    theta = torch.zeros_like(mask)
    for i in range(o["iterations"]):
        g_del, _ = integrated_mask_gradient(
            target, pixels, baseline, mask, o["ig_iter"], o["noise"], gen, batch
        )
        g_ins, _ = integrated_mask_gradient(
            target, baseline, pixels, mask, o["ig_iter"], o["noise"], gen, batch
        )
        m = mask.clone().requires_grad_(True)
        reg = (
            o["l1"] * l1_term(m)
            + o["l2"] * l2_term(m, i, o["gamma"])
            + o["l3"] * bilateral_tv(m, pixels, o["tv_beta"], o["sigma"])
        ).sum()
        (g_reg,) = torch.autograd.grad(reg, m)
        grad = g_del - g_ins + g_reg
        e = i / (i + o["momentum"])
        theta_prev = theta
        theta = mask - o["lr"] * grad
        mask = (theta + e * (theta - theta_prev)).clamp(0, 1)
    return (1 - upsample(mask, pixels.shape[-2:])[0, 0]).clamp(0, 1)


class SigmoidScorer(FakeScorer):
    """log P = log sigmoid(12 (mean of the pixels in the square - 0.5)): saturates like a model."""

    def __call__(self, pixels):
        z = (pixels * self.weight).sum(dim=(1, 2, 3)) / self.weight.sum()
        return torch.nn.functional.logsigmoid(12 * (z - 0.5))[:, None]


def toy():
    target = Target(SigmoidScorer(square_weight(32, 32, (8, 16, 20, 28))), [0])
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    return target, image, torch.zeros(3, 32, 32)


def test_paper_preset_is_the_old_igos_exactly():
    method = get_method("igos++", preset="paper")
    assert {k: method.options[k] for k in OLD_DEFAULTS} == OLD_DEFAULTS
    assert method.options["normalize"] == "none" and method.options["schedule"] == "constant"
    target, image, base = toy()
    small = dict(size=8, iterations=4, ig_iter=3)  # with noise: the same random draws too
    heat = get_method("igos++", preset="paper", **small).explain(target, image, base)
    assert torch.equal(heat, old_igos(target, image, base, **small))
    assert not torch.equal(heat, get_method("igos++", **small).explain(target, image, base))


def test_explicit_options_override_the_preset():
    o = get_method("igos++", preset="paper", lr=1.0, size=8).options
    assert (o["lr"], o["size"], o["momentum"], o["normalize"]) == (1.0, 8, 5.0, "none")
    o = get_method("igos++", normalize="none").options
    assert (o["normalize"], o["lr"], o["size"]) == ("none", 0.3, 16)
    with pytest.raises(InputError, match="unknown preset"):
        get_method("igos++", preset="quick")
    with pytest.raises(InputError, match="normalize"):
        get_method("igos++", normalize="sign")
    with pytest.raises(InputError, match="momentum"):
        get_method("igos++", momentum=-1.0)


def test_converging_step_settles_on_a_toy_and_the_paper_preset_does_not():
    target, image, base = toy()
    options = dict(size=8, iterations=6, ig_iter=4, noise=0.0, score="logprob", init="ones")  # the step alone
    method = get_method("igos++", blend_with="baseline", **options)
    heat = method.explain(target, image, base)
    change = [t["change"] for t in method.trace]
    assert all(b < a for a, b in zip(change, change[1:])), change  # the mask settles ...
    assert change[-1] < 0.35 * change[0], change
    inside = heat[8:16, 20:28].mean()
    outside = torch.cat([heat[:8].flatten(), heat[16:].flatten()]).mean()
    assert inside > outside + 0.3  # ... on the square
    paper = get_method("igos++", preset="paper", **options)
    paper.explain(target, image, base)
    paper_change = [t["change"] for t in paper.trace]
    assert paper_change[-1] > paper_change[0], paper_change  # raw steps of lr 10 keep flipping cells


def test_probability_score_is_the_gradient_of_exp_f():
    # On the linear score f = w . phi, s = exp(f): the IG is mean_k exp(f_k) a_k w (I - B).
    wgt = square_weight() * 0.01
    target = Target(FakeScorer(wgt), [0])
    image, base = torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
    mask = torch.ones(1, 1, 16, 16)
    grad, value = integrated_mask_gradient(
        target, image, base, mask, 4, 0.0, torch.Generator(), 3, score="prob"
    )
    alphas = torch.tensor([0.25, 0.5, 0.75, 1.0])
    f = alphas * float(wgt.sum())
    assert value == pytest.approx(float(f.exp().mean()))
    assert torch.allclose(grad[0, 0], float((f.exp() * alphas).mean()) * wgt.sum(0))
    with pytest.raises(InputError, match="unknown score"):
        integrated_mask_gradient(target, image, base, mask, 4, 0.0, torch.Generator(), 3, score="odds")


def test_probability_score_is_the_default_and_localises_on_the_toy():
    assert get_method("igos++").options["score"] == "prob"
    assert get_method("igos++", preset="paper").options["score"] == "logprob"
    assert get_method("igos2").options["score"] == "logprob"
    target, image, base = toy()
    method = get_method("igos++", blend_with="baseline", size=8, iterations=6, ig_iter=4, noise=0.0)
    heat = method.explain(target, image, base)
    assert method.trace[0]["regions"] == 1  # SLIC cannot cut the noise image: the start keeps M = 1
    assert method.trace[0]["passes"] == 0
    assert torch.equal(method.masks[1], torch.ones(1, 1, 8, 8))
    change = [t["change"] for t in method.trace[1:]]  # the gradient steps
    assert change[-1] < 0.7 * change[0], change
    inside = heat[8:16, 20:28].mean()
    outside = torch.cat([heat[:8].flatten(), heat[16:].flatten()]).mean()
    assert inside > outside + 0.5
    with pytest.raises(InputError, match="score must be one of"):
        get_method("igos++", score="odds")


def test_probability_score_underflow_is_a_clear_error():
    # log P = -100 everywhere: exp underflows in float32, so every gradient would be 0.
    class Improbable(FakeScorer):
        def __call__(self, pixels):
            return super().__call__(pixels) * 0 - 100.0

    target = Target(Improbable(square_weight()), [0])
    image, base = torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
    with pytest.raises(MethodError, match="underflows"):
        get_method("igos++", size=4, iterations=1, ig_iter=2).explain(target, image, base)
    heat = get_method("igos++", size=4, iterations=1, ig_iter=2, score="logprob").explain(target, image, base)
    assert torch.isfinite(heat).all()


def test_step_size_schedules():
    assert [step_size(1.0, i, 5, "linear") for i in range(5)] == pytest.approx([1, 0.8, 0.6, 0.4, 0.2])
    assert step_size(0.3, 3, 5, "constant") == 0.3


def test_normalize_ignores_cells_held_at_a_bound():
    mask = torch.tensor([[[[1.0, 1.0, 0.5, 0.0]]]])
    grad = torch.tensor([[[[-4.0, 1.0, -0.5, 2.0]]]])  # cells 0 and 3 cannot move
    assert torch.equal(movable(grad, mask), torch.tensor([[[[0.0, 1.0, -0.5, 0.0]]]]))
    step = normalize_gradient(grad, "max", mask=mask)
    assert torch.allclose(step, torch.tensor([[[[-1.0, 1.0, -0.5, 1.0]]]]))  # scale 1, clipped
    assert torch.allclose(normalize_gradient(grad, "max"), grad / 4)
    assert torch.equal(normalize_gradient(grad, "none"), grad)


class CountingScorer(SigmoidScorer):
    """:class:`SigmoidScorer` that counts the images it scores."""

    def __init__(self, weight):
        super().__init__(weight)
        self.images = 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        return super().__call__(pixels)


def test_fast_preset_is_the_start_and_one_step():
    fast = get_method("igos++", preset="fast", blend_with="baseline")
    assert (fast.options["init"], fast.options["iterations"]) == ("segments", 2)
    image, base = torch.full((3, 32, 32), 0.5), torch.zeros(3, 32, 32)
    image[:, 8:16, 20:28] = 0.9
    scorer = CountingScorer(square_weight(32, 32, (8, 16, 20, 28)))
    heat = fast.explain(Target(scorer, [0]), image, base)
    assert len(fast.trace) == 2 and scorer.images == fast.trace[0]["passes"] + 2 * 10 <= 60
    assert heat[8:16, 20:28].mean() > heat[:8].mean() + 0.3
    # the fast preset before the start, by its options: 2 steps from M = 1, 40 passes
    _, image, base = toy()
    before = get_method("igos++", blend_with="baseline", init="ones", iterations=2, lr=0.6)
    scorer = CountingScorer(square_weight(32, 32, (8, 16, 20, 28)))
    heat = before.explain(Target(scorer, [0]), image, base)
    assert scorer.images == 40 and heat[8:16, 20:28].mean() > heat[:8].mean() + 0.3


# ----- the superpixel start (init="segments", the default) -------------------------------------


class CountingLinear(FakeScorer):
    """:class:`FakeScorer` that counts the images it scores."""

    images = 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        return super().__call__(pixels)


def test_region_drops_by_hand():
    # log P = sum of the pixels in the square (4:8, 4:8), which lies in region 0 (the left half).
    scorer = CountingLinear(square_weight())
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[:, 8:] = 1
    drops, value = region_drops(
        Target(scorer, [0]), torch.ones(3, 16, 16), torch.zeros(3, 16, 16), labels, "logprob", batch_size=2
    )
    assert value == pytest.approx(48.0)  # 3 channels x 4 x 4 pixels
    assert torch.allclose(drops, torch.tensor([48.0, 0.0]))
    assert scorer.images == 3  # the image, then each region deleted


def test_region_drops_of_chosen_regions_only():
    scorer = CountingLinear(square_weight())
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[:, 8:] = 1
    labels[12:, :] = 2
    drops, _ = region_drops(
        Target(scorer, [0]),
        torch.ones(3, 16, 16),
        torch.zeros(3, 16, 16),
        labels,
        "logprob",
        4,
        torch.tensor([0, 1]),
    )
    # region 0 holds 3 x 4 x 4 of the square's pixels, region 1 none; region 2 is not scored
    assert torch.allclose(drops, torch.tensor([48.0, 0.0, 0.0]))
    assert scorer.images == 3


class Presence:
    """Scores which halves of a 4 x 8 image are present: ``p_r`` = half r's mean pixel (1 in
    the image, 0 in the baseline), ``f = p0 - 0.6 p0 (1 - p1) + 0.001 p2`` (region 2: one
    column). Deleting half 1 lowers ``f`` by 0.6, but half 1 inserted alone into the baseline
    gives nothing (a deletion artefact); half 0 lowers ``f`` by 1 when deleted and raises it
    by 0.4 when inserted alone; region 2's drop is under the floor."""

    batch_size = 8
    images = 0

    def __init__(self, labels):
        self.labels = labels

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        p = [pixels[:, 0][:, self.labels == r].mean(1) for r in range(3)]
        return (p[0] - 0.6 * p[0] * (1 - p[1]) + 0.001 * p[2])[:, None]


def test_a_region_carries_no_more_than_it_gives_inserted_alone():
    labels = torch.zeros(4, 8, dtype=torch.long)
    labels[:, 4:] = 1
    labels[:, 7] = 2
    image, base = torch.ones(3, 4, 8), torch.zeros(3, 4, 8)
    scorer = Presence(labels)
    found = carried(Target(scorer, [0]), image, base, labels, "logprob", 8, 0.01, True)
    assert found.value == pytest.approx(1.001) and found.base == pytest.approx(0.0)
    assert torch.allclose(found.drops, torch.tensor([0.4, 0.0, 0.001]), atol=1e-6)
    # deletions: 3 regions + 1; insertions: 2 + 1
    assert found.inserted == 2 and scorer.images == found.passes == 4 + 3 and found.complete
    found = carried(Target(Presence(labels), [0]), image, base, labels, "logprob", 8, 0.01, False)
    assert torch.allclose(found.drops, torch.tensor([1.0, 0.6, 0.001]), atol=1e-6)
    assert found.inserted == 0 and math.isnan(found.base)
    # scores already known are not scored again
    scorer = Presence(labels)
    again = carried(Target(scorer, [0]), image, base, labels, "logprob", 8, 0.01, True, 1.001, 0.0)
    assert torch.allclose(again.drops, torch.tensor([0.4, 0.0, 0.001]), atol=1e-6)
    assert scorer.images == again.passes == 3 + 2
    # never more than the budget: the deletions fit (3) but not the insertions (2 more)
    scorer = Presence(labels)
    over = carried(Target(scorer, [0]), image, base, labels, "logprob", 8, 0.01, True, 1.001, 0.0, 4)
    assert not over.complete and scorer.images == over.passes == 3
    scorer = Presence(labels)
    over = carried(Target(scorer, [0]), image, base, labels, "logprob", 8, 0.01, True, budget=3)
    assert not over.complete and scorer.images == over.passes == 0


def test_segment_start_by_hand():
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
    drops = torch.tensor([0.5, 0.25, -1.0])  # a region whose deletion raises the score stays at 1
    mask = segment_start(drops, labels, size=2, scale=0.3)
    assert torch.allclose(mask, torch.tensor([[[[0.85, 0.925], [1.0, 1.0]]]]))
    # a mask cell over several regions gets their area-weighted mean
    assert float(segment_start(drops, labels, size=1, scale=0.3)) == pytest.approx(
        1 - 0.3 * (4 * 0.5 + 4 * 0.25) / 16
    )
    # drops are clipped to 1 (a log-probability score can drop by many nats), not rescaled
    assert torch.allclose(
        segment_start(torch.tensor([5.0, 0.0, 0.0]), labels, 2, 0.3)[0, 0, 0, 0], torch.tensor(0.7)
    )
    # drops below the floor are none: a model that does not give the answer starts at exactly 1
    tiny = segment_start(torch.tensor([1e-7, 2e-7, 0.0]), labels, 2, 0.3, floor=0.01)
    assert torch.equal(tiny, torch.ones(1, 1, 2, 2))
    mask = segment_start(torch.tensor([0.5, 0.005, 0.0]), labels, 2, 0.3, floor=0.01)
    assert torch.allclose(mask, torch.tensor([[[[0.85, 1.0], [1.0, 1.0]]]]))


def test_contrast_weight_by_hand():
    # region 0: an object pixel (changed by 0.8) and background (0.2, 0.0); region 1 unchanged
    labels = torch.tensor([[0, 0, 0, 1]])
    pixels = torch.tensor([[[0.9, 0.3, 0.1, 0.5]], [[0.1, 0.1, 0.1, 0.5]], [[0.1, 0.1, 0.1, 0.5]]])
    baseline = torch.full((3, 1, 4), 0.1)
    baseline[:, 0, 3] = 0.5
    weight = contrast_weight(pixels, baseline, labels)
    assert torch.allclose(weight, torch.tensor([[1.0, 0.25, 0.0, 0.0]]))
    # the start paints a region's drop where deleting changes the image, not on its background
    mask = segment_start(torch.tensor([0.8, 0.5]), labels, size=4, scale=1.0, weight=weight)
    assert mask.shape == (1, 1, 4, 4) and torch.allclose(mask[0, 0], torch.tensor([0.2, 0.8, 1.0, 1.0]))


def test_default_starts_from_superpixels_within_the_pass_budget():
    method = get_method("igos++", blend_with="baseline")
    assert (method.options["init"], method.options["iterations"]) == ("segments", 4)
    assert get_method("igos++", preset="paper").options["init"] == "ones"
    image, base = torch.full((3, 32, 32), 0.5), torch.zeros(3, 32, 32)
    image[:, 8:16, 20:28] = 0.9  # an object on a plain background: SLIC gives it one region
    scorer = CountingScorer(square_weight(32, 32, (8, 16, 20, 28)))
    heat = method.explain(Target(scorer, [0]), image, base)
    start = method.trace[0]
    assert start["init"] == "segments" and start["drop_max"] == pytest.approx(0.989, abs=1e-3)
    assert start["regions"] > 10 and start["inserted"] == 1  # only the square's region drops P
    assert start["passes"] == start["regions"] + 1 + 2  # every region deleted, then the square's inserted
    assert scorer.images == start["passes"] + 3 * 2 * 10 <= 100
    assert len(method.masks) == 5 and len(method.trace) == 4
    assert heat[8:16, 20:28].mean() > heat[:8].mean() + 0.3


class EitherHalf:
    """The answer survives while either half of the object (columns 2-3 and 4-5 of rows 2-5
    of an 8 x 8 image) is present: ``P = 0.01 + 0.99 max(p_left, p_right)``, ``p`` a half's
    mean pixel (1 in the image, 0 in the baseline); returns ``log P``."""

    batch_size = 16
    images = 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        left, right = pixels[:, 0, 2:6, 2:4].mean((1, 2)), pixels[:, 0, 2:6, 4:6].mean((1, 2))
        return (0.01 + 0.99 * torch.maximum(left, right)).log()[:, None]


def test_a_coarser_cut_finds_an_object_the_fine_cut_splits(monkeypatch):
    import vlm_focus.methods.igos as igos

    fine = torch.zeros(8, 8, dtype=torch.long)  # 4 quadrants: the object's halves in regions 0 and 1
    fine[:, 4:] = 1
    fine[4:] += 2
    whole = torch.ones(8, 8, dtype=torch.long)  # 2 regions: the object's box (0), the rest (1)
    whole[2:6, 2:6] = 0
    monkeypatch.setattr(igos, "make_regions", lambda pixels, n, how: fine if n == 24 else whole)
    image, base = torch.ones(3, 8, 8), torch.zeros(3, 8, 8)
    scorer = EitherHalf()
    method = get_method("igos++", blend_with="baseline", size=8, iterations=1)  # the default: init_coarse=12
    method.explain(Target(scorer, [0]), image, base)
    start = method.trace[0]
    # no quadrant carries anything (the other half keeps the answer); the object's box carries 0.99
    assert start["regions"] == 2 and start["drop_max"] == pytest.approx(0.99)
    assert start["evidence"] == pytest.approx(0.99)
    assert [r for r, _ in start["cuts"]] == [4, 2] and start["cuts"][0][1] == pytest.approx(0.0, abs=1e-6)
    # fine: 4 + 1 deletions; P of the baseline; coarse: 2 deletions, 1 insertion (P of the
    # image and of the baseline are known)
    assert start["passes"] == scorer.images == 5 + 1 + 2 + 1
    assert torch.allclose(method.masks[1][0, 0, 2:6, 2:6], torch.tensor(0.01))
    assert torch.equal(method.masks[1][0, 0, :2], torch.ones(2, 8))
    # the same on log-probabilities, which are negative (s(I) = log 1 = 0 here): the baseline is
    # scored, the evidence is 0 - log 0.01 nats and the coarse cut runs
    method = get_method("igos++", blend_with="baseline", size=8, iterations=1, score="logprob")
    scorer = EitherHalf()
    method.explain(Target(scorer, [0]), image, base)
    start = method.trace[0]
    assert [r for r, _ in start["cuts"]] == [4, 2] and start["evidence"] == pytest.approx(-math.log(0.01))
    assert start["drop_max"] == pytest.approx(-math.log(0.01)) and scorer.images == 5 + 1 + 2 + 1
    assert torch.allclose(method.masks[1][0, 0, 2:6, 2:6], torch.tensor(0.0))  # the drop, clipped to 1
    # without the coarse cut the start finds nothing and stays at M = 1
    method = get_method("igos++", blend_with="baseline", init_coarse=0, size=8, iterations=1)
    method.explain(Target(EitherHalf(), [0]), image, base)
    assert method.trace[0]["passes"] == 5 and torch.equal(method.masks[1], torch.ones(1, 1, 8, 8))
    # the start's budget, 2 gradient iterations (2 * ig_iter each): with ig_iter=2 (8 images) the
    # coarse deletions fit (6 + 2) but not its insertion test, so the cut is not used
    for ig_iter, passes in ((2, 8), (1, 6)):  # with ig_iter=1 (4) not even its deletions fit
        method = get_method("igos++", blend_with="baseline", size=8, iterations=1, ig_iter=ig_iter)
        scorer = EitherHalf()
        method.explain(Target(scorer, [0]), image, base)
        assert method.trace[0]["passes"] == scorer.images == passes
        assert len(method.trace[0]["cuts"]) == 1 and torch.equal(method.masks[1], torch.ones(1, 1, 8, 8))


def test_start_options_are_checked(monkeypatch):
    import vlm_focus.methods.igos as igos

    with pytest.raises(InputError, match="init must be one of"):
        get_method("igos++", init="zeros")
    with pytest.raises(InputError, match="init_regions"):
        get_method("igos++", init_regions=0)
    with pytest.raises(InputError, match="init_floor"):
        get_method("igos++", init_floor=2.0)
    with pytest.raises(InputError, match="init_scale"):
        get_method("igos++", init_scale=1.5)
    with pytest.raises(InputError, match="init_coarse"):
        get_method("igos++", init_coarse=-1)
    with pytest.raises(InputError, match="init_insertion must be true or false"):
        get_method("igos++", init_insertion="yes")
    with pytest.raises(InputError, match="init_contrast must be true or false"):
        get_method("igos++", init_contrast=1)
    with pytest.raises(InputError, match="iterations must be an int >= 1"):
        get_method("igos++", iterations=0)
    monkeypatch.setattr(igos, "have_skimage", lambda: False)
    with pytest.raises(InputError, match="init=ones"):
        get_method("igos++")
    get_method("igos++", init="ones")  # the start is the only part that needs scikit-image
