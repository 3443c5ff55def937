"""Our multi-encoder model (ViT + ConvNeXt fused): save/load, both encoders reached, hooks."""

import pytest
import torch

from vlm_focus.architectures.multi_encoder import MultiEncoderForConditionalGeneration
from vlm_focus.images import to_tensor


@pytest.fixture(scope="module")
def me(tiny):
    return tiny("multi_encoder")


def test_save_and_from_pretrained_round_trip(me, tmp_path, scene):
    path, adapter = me
    model = adapter.model
    model.save_pretrained(tmp_path)
    again = MultiEncoderForConditionalGeneration.from_pretrained(tmp_path).eval()
    enc = adapter.processor(text=[adapter.prompt(scene.question)], images=[scene.image], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, again(**enc).logits, atol=1e-6)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))


def test_one_mask_reaches_both_encoders(me, scene):
    """The gradient of the answer score flows to the pixels through the ViT and through the
    ConvNeXt: each branch alone gives a nonzero pixel gradient."""
    adapter = me[1]
    inner = adapter.model.model
    x = adapter.preprocess(to_tensor(scene.image)[None])["pixel_values"].requires_grad_(True)
    for branch in (inner.vit_features, inner.conv_features):
        (g,) = torch.autograd.grad(branch(x).sum(), x)
        assert float(g.abs().sum()) > 0


def test_fused_tokens_are_the_projected_concatenation(me, scene):
    inner = me[1].model.model
    x = me[1].preprocess(to_tensor(scene.image)[None])["pixel_values"]
    with torch.no_grad():
        vit, conv = inner.vit_features(x), inner.conv_features(x)
        by_hand = inner.projector(torch.cat([vit, conv], -1))
        assert torch.allclose(inner.get_image_features(x), by_hand)
    g = inner.config.grid
    assert vit.shape[1] == conv.shape[1] == g * g


def test_wrong_number_of_placeholders_is_refused(me, scene):
    adapter = me[1]
    ids = adapter.tokenizer("USER: <image>\nWhat? ASSISTANT:", return_tensors="pt")[
        "input_ids"
    ]  # one placeholder
    pixels = adapter.preprocess(to_tensor(scene.image)[None])["pixel_values"]
    with pytest.raises(ValueError, match="image placeholders"):
        adapter.model(input_ids=ids, pixel_values=pixels)


def test_hooks_cover_both_encoders(me, scene):
    adapter = me[1]
    layers = adapter.vision_layers()
    stages = list(adapter.model.model.convnext.encoder.stages)
    assert layers[: len(stages)] == stages and len(layers) > len(stages)
    g = adapter.model.config.grid
    assert adapter.patch_tokens(torch.rand(2, 7, 5, 5)).shape == (2, g * g, 7)  # a ConvNeXt map
    assert adapter.patch_tokens(torch.rand(2, 1 + g * g, 4)).shape == (2, g * g, 4)  # ViT tokens


def test_gradcam_on_the_convnext_stage(me, scene):
    import numpy as np

    import vlm_focus

    lens = vlm_focus.load(
        str(me[0]), method="gradcam", layer=0, device="cpu", alpha=-1e9, max_new_tokens=2, metric_steps=3
    )
    ex = lens.explain(scene.image, scene.question)
    assert ex.heatmap.shape == scene.image.size[::-1]
    assert np.isfinite(ex.heatmap).all() and ex.heatmap.max() > 0
