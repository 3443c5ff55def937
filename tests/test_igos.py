"""iGOS++ loss terms by hand, its integrated gradient on a linear score, and a toy run."""

import math

import pytest
import torch

from vlm_focus.errors import MethodError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.igos import bilateral_tv, integrated_mask_gradient, l1_term, l2_term


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
    heat = get_method("igos++", size=8, iterations=5, ig_iter=4, noise=0.0).explain(target, image, base)
    assert heat.shape == (32, 32) and 0 <= float(heat.min()) and float(heat.max()) <= 1
    inside = heat[8:16, 20:28].mean()
    outside = torch.cat([heat[:8].flatten(), heat[16:].flatten()]).mean()
    assert inside > outside + 0.3


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
    from vlm_focus.errors import InputError

    with pytest.raises(InputError, match="unknown option"):
        get_method("igos++", iterationz=3)
