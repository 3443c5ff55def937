"""Occlusion, RISE and raw attention on hand-checkable scores, and the hook helpers."""

import pytest
import torch
from fakes import FnScorer
from torch import nn

from vlm_focus.errors import InputError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.attention import image_attention
from vlm_focus.methods.hooks import capture_outputs, eager_attention, hooks


def square_target(h=32, w=32, box=(8, 16, 20, 28), weight=0.02):
    wgt = torch.zeros(3, h, w)
    wgt[:, box[0] : box[1], box[2] : box[3]] = weight
    return Target(FnScorer(lambda p: (p * wgt).sum(dim=(1, 2, 3))), [0])


def no_hooks(model):
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


# ----- black-box methods ---------------------------------------------------------------------
def test_occlusion_peaks_in_the_square():
    target = square_target()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    heat = get_method("occlusion", window=0.125, stride=0.5).explain(target, image, torch.zeros_like(image))
    assert heat.shape == (32, 32)
    y, x = divmod(int(heat.argmax()), 32)
    assert 8 <= y < 16 and 20 <= x < 28
    # Windows that never touch the square change nothing.
    assert float(heat[:4].max()) == 0.0 and float(heat[:, :16].max()) == 0.0


def test_rise_correlates_with_the_square():
    target = square_target()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    box = torch.zeros(32, 32)
    box[8:16, 20:28] = 1
    for score in ("prob", "delta"):
        heat = get_method("rise", n_masks=300, grid=8, seed=0, score=score).explain(
            target, image, torch.zeros_like(image)
        )
        assert heat.shape == (32, 32) and 0 <= float(heat.min()) and float(heat.max()) <= 1
        corr = torch.corrcoef(torch.stack([heat.flatten(), box.flatten()]))[0, 1]
        assert corr > 0.6, (score, corr)
    same = get_method("rise", n_masks=30, seed=3).explain(target, image, torch.zeros_like(image))
    assert torch.equal(
        same, get_method("rise", n_masks=30, seed=3).explain(target, image, torch.zeros_like(image))
    )
    with pytest.raises(InputError, match="score"):
        get_method("rise", score="logit").explain(target, image, image)


# ----- raw attention ---------------------------------------------------------------------------
def test_image_attention_hand_value():
    # 2 layers, 2 heads, 4 positions; image tokens at 1, 2; the answer query at row 3.
    layer1 = torch.zeros(1, 2, 4, 4)
    layer1[0, 0, 3] = torch.tensor([0.1, 0.6, 0.2, 0.1])
    layer1[0, 1, 3] = torch.tensor([0.5, 0.2, 0.2, 0.1])
    layer2 = torch.zeros(1, 2, 4, 4)
    layer2[0, :, 3] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    image, query = torch.tensor([False, True, True, False]), torch.tensor([3])
    # mean heads: layer1 -> (.4, .2), layer2 -> (0, 1); mean layers -> (.2, .6)
    assert torch.allclose(image_attention([layer1, layer2], query, image), torch.tensor([0.2, 0.6]))
    # max heads: layer1 -> (.6, .2)
    assert torch.allclose(
        image_attention([layer1, layer2], query, image, [0], "max"), torch.tensor([0.6, 0.2])
    )


# ----- hook helpers ----------------------------------------------------------------------------
def test_hooks_are_removed_even_after_an_error():
    lin = nn.Linear(2, 2)
    with capture_outputs([lin, lin]) as outs:
        lin(torch.ones(1, 2))
    assert len(outs[0]) == len(outs[1]) == 1 and no_hooks(lin)
    with pytest.raises(RuntimeError, match="boom"), hooks([lin], lambda m, i, o: None):
        assert lin._forward_hooks
        raise RuntimeError("boom")
    assert no_hooks(lin)


def test_eager_attention_switches_and_restores(tiny_adapter):
    model = tiny_adapter.model
    before = (model.config._attn_implementation, model.config.vision_config._attn_implementation)
    assert "eager" not in before  # the tiny model runs sdpa; eager would be a leak from another test
    with pytest.raises(RuntimeError, match="boom"), eager_attention(model):
        assert model.config.vision_config._attn_implementation == "eager"
        assert model.config.text_config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert (model.config._attn_implementation, model.config.vision_config._attn_implementation) == before
    with eager_attention(nn.Linear(2, 2)):  # a module without config: nothing to switch
        pass
