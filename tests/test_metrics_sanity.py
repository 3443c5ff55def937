"""Model-parameter randomisation check: SSIM/similarity by hand, scoped randomisation,
and the check itself on the tiny random LLaVA."""

import math

import numpy as np
import pytest
import torch

import vlm_focus
from vlm_focus.errors import InputError
from vlm_focus.methods import Method
from vlm_focus.metrics import similarity, ssim
from vlm_focus.randomization import randomize_top_down, sanity_check


def test_ssim_constant_maps_hand_computed():
    # flat maps: no variance, SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = 0.01^2
    a, b = np.full((16, 16), 0.5), np.full((16, 16), 0.25)
    assert ssim(a, b) == pytest.approx((2 * 0.125 + 1e-4) / (0.25 + 0.0625 + 1e-4))
    assert ssim(a, b) == pytest.approx(ssim(b, a))


def test_ssim_identity_and_inversion():
    rng = np.random.default_rng(0)
    x = rng.random((20, 20))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 1 - x) < -0.5
    assert ssim(x[:4, :4], x[:4, :4]) == pytest.approx(1.0)  # smaller than a window: no border crop
    with pytest.raises(InputError):
        ssim(x, x[:10])


def test_similarity_ignores_scale_and_offset():
    x = np.random.default_rng(1).random((12, 12))
    assert similarity(x, 3 * x + 2) == pytest.approx({"spearman": 1.0, "ssim": 1.0})
    flat = similarity(x, np.zeros((12, 12)))
    assert math.isnan(flat["spearman"]) and math.isnan(flat["ssim"])


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_randomize_top_down_cascades_from_the_output_and_restores():
    net = _net()
    before = _state(net)
    with randomize_top_down(net, [net[0], net[2]], seed=3, depth=1) as changed:
        assert changed == [net[2]]
        assert torch.equal(net[0].weight, before["0.weight"])
        assert not torch.equal(net[2].weight, before["2.weight"])
        top_at_depth1 = net[2].weight.clone()
    with randomize_top_down(net, ["0", "2"], seed=3) as changed:  # names work; full depth
        assert changed == [net[2], net[0]]
        assert not torch.equal(net[0].weight, before["0.weight"])
        # a layer's noise depends only on the seed and its place from the top
        assert torch.equal(net[2].weight, top_at_depth1)
        w, orig = net[0].weight.detach(), before["0.weight"]
        assert float(w.mean()) == pytest.approx(float(orig.mean()), abs=0.01)
        assert float(w.std()) == pytest.approx(float(orig.std()), rel=0.05)
    after = _state(net)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_randomize_restores_after_an_error_and_validates():
    net = _net()
    before = _state(net)
    with pytest.raises(RuntimeError, match="boom"), randomize_top_down(net, seed=0):
        raise RuntimeError("boom")
    after = _state(net)
    assert all(torch.equal(after[k], before[k]) for k in before)
    with pytest.raises(InputError, match="no submodule"), randomize_top_down(net, ["nope"]):
        pass
    with pytest.raises(InputError, match="depth"), randomize_top_down(net, [net[0]], depth=2):
        pass


class _ImageOnly(Method):
    """A 'method' that ignores the model: the image's brightness (an edge-detector stand-in)."""

    name = "image-only"

    def explain(self, target, pixels, baseline):
        return pixels.mean(0)


@pytest.fixture(scope="module")
def lens(tiny_llava_dir):
    return vlm_focus.load(
        str(tiny_llava_dir),
        method="igos++",
        device="cpu",
        init="ones",  # one gradient step: the tiny random model's drops are below the start's floor
        iterations=1,
        ig_iter=2,
        size=8,
        alpha=-100.0,
        metric_steps=5,
        metric_grid=8,
        max_new_tokens=4,
        metrics=False,
    )


def test_sanity_check_model_map_changes_image_map_does_not(lens, scene):
    model = lens.adapter.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = sanity_check(lens, scene.image, scene.question, seed=0)
    assert result.selected and result.heatmap.shape == result.heatmap_random.shape == (64, 64)
    assert result.spearman < 0.9 and result.passed(threshold=0.9)
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)

    trained_method, lens.method = lens.method, _ImageOnly()
    try:
        blind = sanity_check(lens, scene.image, scene.question)
    finally:
        lens.method = trained_method
    assert blind.spearman == pytest.approx(1.0) and blind.ssim == pytest.approx(1.0)
    assert not blind.passed()
