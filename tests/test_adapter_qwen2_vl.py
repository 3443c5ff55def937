"""Qwen2-VL / Qwen2.5-VL / Qwen3-VL adapter on tiny random models built from real configs."""

import numpy as np
import pytest
import torch
from PIL import Image

import vlm_focus
from vlm_focus.images import to_tensor
from vlm_focus.models.preprocess import resize as pil_resize
from vlm_focus.models.qwen2_vl import Qwen2VLAdapter

VARIANTS = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def qwen(tiny) -> dict:
    return {v: tiny(v)[1] for v in VARIANTS}


def test_loads_the_right_classes(qwen):
    for variant, adapter in qwen.items():
        assert isinstance(adapter, Qwen2VLAdapter)
        assert adapter.model.config.model_type == variant
        assert type(adapter.model).__name__.endswith("ForConditionalGeneration")


def test_batch_concatenates_along_dim0(qwen):
    adapter = qwen["qwen2_vl"]
    x = torch.rand(3, 3, 40, 56)
    one = adapter.preprocess(x[:1])
    three = adapter.preprocess(x)
    n = one["pixel_values"].shape[0]
    assert three["pixel_values"].shape[0] == 3 * n
    assert torch.equal(three["pixel_values"][:n], one["pixel_values"])
    assert three["image_grid_thw"].tolist() == one["image_grid_thw"].tolist() * 3


def test_pil_resize_pass_order_matches_pillow():
    rng = np.random.default_rng(0)
    for _ in range(40):
        W, H, w, h = (int(v) for v in rng.integers(8, 100, 4))
        img = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        ref = to_tensor(img.resize((w, h), Image.Resampling.BICUBIC))
        ours = pil_resize(to_tensor(img)[None], (h, w))[0]
        assert float(((ours - ref).abs() > 0.5 / 255).float().mean()) < 0.01, (W, H, w, h)


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
def test_patch_tokens_undo_merge_and_window_order(qwen, variant):
    """The first vision block's input, mapped by patch_tokens, equals the patch embeddings
    (processor order: merge units row-major) averaged per unit - also for Qwen2.5-VL, whose
    blocks see the units permuted into attention windows."""
    adapter = qwen[variant]
    visual = adapter.model.model.visual
    seen = {}
    h1 = visual.patch_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("embed", o))
    h2 = visual.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("block", a[0]))
    try:
        with torch.no_grad():
            visual(
                **{
                    "hidden_states": adapter.preprocess(torch.rand(1, 3, 64, 80))["pixel_values"],
                    "grid_thw": torch.tensor([[1, 16, 20]]),
                }
            )
    finally:
        h1.remove()
        h2.remove()
    embed = seen["embed"]
    expected = embed.reshape(-1, adapter.merge**2, embed.shape[-1]).mean(1)
    mapped = adapter.patch_tokens(seen["block"])
    assert mapped.shape == (1, 8 * 10, embed.shape[-1])
    assert torch.allclose(mapped[0], expected, atol=1e-6)
    if variant == "qwen2_5_vl":
        assert not torch.equal(seen["block"], embed)  # the window permutation was really undone


def test_raw_attention_maps_image_tokens_to_the_grid(qwen, scene):
    lens = vlm_focus.Lens(qwen["qwen2_5_vl"], method="attention", alpha=-1e9, metrics=False, max_new_tokens=3)
    ex = lens.explain(scene.image, scene.question)
    assert ex.heatmap.shape == (scene.image.height, scene.image.width) and ex.heatmap.max() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_recorded_attention_sees_every_window_and_changes_nothing(qwen, variant):
    """T-MM reads Qwen's vision attention through a recording eager attention: the scores are
    those of the model's own attention, and each block records one probability matrix per
    attention window (Qwen2.5-VL's window blocks) or per image (full-attention blocks)."""
    from vlm_focus.methods.hooks import attention_modules, eager_attention, recorded_attention

    adapter = qwen[variant]
    pixels = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    scorer = adapter.scorer(pixels[0], "What is it?", adapter.encode_answer("red"))
    modules = attention_modules(adapter.vision_layers())
    with torch.no_grad(), eager_attention(adapter.model):
        plain = scorer(pixels)
        with recorded_attention(modules) as records:
            recorded = scorer(pixels)
    assert torch.allclose(plain, recorded, atol=1e-5)
    gh, gw = adapter.patch_grid(64, 80)
    for i, windows in enumerate(records):
        assert sum(w.shape[-1] for w in windows) == 2 * gh * gw  # every token of both images, once
        assert all(torch.allclose(w.sum(-1), torch.ones(1)) for w in windows)
        full = variant != "qwen2_5_vl" or i in adapter.model.config.vision_config.fullatt_block_indexes
        assert len(windows) == 2 if full else len(windows) > 2
    assert not any(hasattr(m, "_vlm_focus_record") for m in modules)
