"""LLaVA-OneVision / LLaVA-NeXT adapter on tiny random models built from real configs."""

import pytest
import torch

from vlm_focus.errors import MethodError
from vlm_focus.images import to_tensor
from vlm_focus.models.llava_onevision import LlavaOnevisionAdapter, select_best_resolution

FAMILIES = ["llava_onevision", "llava_next"]


@pytest.fixture(scope="module")
def anyres(tiny) -> dict:
    return {name: tiny(name)[1] for name in FAMILIES}


def test_loads_the_right_classes(anyres):
    for name, adapter in anyres.items():
        assert isinstance(adapter, LlavaOnevisionAdapter)
        assert adapter.model.config.model_type == name


def test_select_best_resolution_matches_hf():
    from transformers.image_processing_utils import select_best_resolution as hf_select

    pinpoints = [[384, 384], [384, 768], [768, 384], [768, 768], [1152, 384], [384, 1152]]
    for hw in [(100, 100), (300, 900), (900, 300), (500, 700), (2000, 3000), (383, 385)]:
        assert select_best_resolution(*hw, pinpoints) == tuple(hf_select(hw, pinpoints))


def test_crops_are_slices_of_the_padded_image(anyres):
    adapter = anyres["llava_onevision"]
    x = torch.rand(1, 3, 40, 70)  # best resolution 64x96 (2x3 crops), resized to 55x96, 4 px on top
    (bh, bw), (fh, fw), (top, left) = adapter.layout(40, 70)
    assert (bh, bw) == (64, 96) and (fh, fw) == (55, 96) and (top, left) == (4, 0)
    ip = adapter.processor.image_processor
    values = adapter.preprocess(x)["pixel_values"][0]
    pad = (-torch.tensor(ip.image_mean) / torch.tensor(ip.image_std)).view(
        3, 1, 1
    )  # a zero pixel, normalised
    assert values.shape[0] == 1 + 6
    for crop in values[1:4]:  # the top row of crops starts with 4 rows of padding
        assert torch.allclose(crop[:, :4], pad.expand(3, 4, 32)) and not torch.allclose(crop[:, 4:], pad)
    for crop in values[4:]:  # the bottom row ends with 5 (64 - 55 - 4)
        assert torch.allclose(crop[:, -5:], pad.expand(3, 5, 32))


@pytest.mark.parametrize("family", FAMILIES)
def test_patch_tokens_keep_every_input(anyres, family, scene):
    adapter = anyres[family]
    pixels = to_tensor(scene.image)
    rows, cols = adapter.vision_grid(pixels)
    assert (rows, cols) == (4, 4) and len(adapter.vision_layers()) == 2
    n_inputs = adapter.preprocess(pixels[None])["pixel_values"].shape[1]
    hidden = torch.arange(2 * n_inputs, dtype=torch.float).view(-1, 1, 1).expand(-1, rows * cols + 1, 3)
    tokens = adapter.patch_tokens(hidden)  # two images, each its base image then its crops
    assert tokens.shape == (2, n_inputs * rows * cols, 3)
    assert tokens[:, :: rows * cols, 0].tolist() == [
        list(range(n_inputs)),
        list(range(n_inputs, 2 * n_inputs)),
    ]


def crop_token_rows(adapter, height: int, width: int) -> torch.Tensor:
    """Each patch token's centre row, as a fraction of the image height: the base image's
    tokens, then each crop's (crop ``k`` at ``divmod(k, crops per row)`` of the padded canvas)."""
    rows, cols = adapter.vision_grid(torch.zeros(3, height, width))
    (bh, bw), (fh, _), (top, _) = adapter.layout(height, width)
    s = adapter.crop
    base = ((torch.arange(rows) + 0.5) / rows).view(rows, 1).expand(rows, cols)
    crops = []
    for k in range(bh // s * (bw // s)):
        i = k // (bw // s)
        canvas_y = i * s + (torch.arange(rows) + 0.5) * s / rows
        crops.append(((canvas_y - top) / fh).view(rows, 1).expand(rows, cols))
    return torch.cat([base.reshape(-1)] + [c.reshape(-1) for c in crops])


@pytest.mark.parametrize("size", [(64, 64), (40, 70), (70, 40)])
def test_patches_to_pixels_puts_every_crop_where_it_was_cut(anyres, size):
    """Tokens valued by their own centre row map to a ramp over the image rows: each pixel
    is seen by the base image and by one crop, so the map is twice the row fraction
    (inside the image; padding rows are dropped)."""
    adapter = anyres["llava_onevision"]
    H, W = size
    heat = adapter.patches_to_pixels(crop_token_rows(adapter, H, W), torch.zeros(3, H, W))
    assert heat.shape == (H, W)
    ramp = 2 * (torch.arange(H) + 0.5) / H
    inner = slice(H // 6, H - H // 6)  # bilinear resizes clamp within half a cell of the edges
    assert torch.allclose(heat[inner], ramp[inner, None].expand(-1, W), atol=0.02)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(64, 64), (40, 70), (70, 40), (30, 100), (100, 30)])
def test_image_tokens_to_pixels_counts_the_models_tokens(anyres, family, size):
    """The language model's image tokens (base grid, unpadded crop grid, row ends) as the
    processor counts them for the prompt, for square, wide and tall images."""
    adapter = anyres[family]
    pixels = torch.rand(3, *size)
    n = int(adapter.image_token_mask(adapter.prompt_ids(pixels, "What is it?")).sum())
    heat = adapter.image_tokens_to_pixels(torch.ones(n), pixels)
    assert heat.shape == size and float(heat.min()) > 0
    with pytest.raises(MethodError, match="do not fill"):
        adapter.image_tokens_to_pixels(torch.ones(n + 1), pixels)


def test_image_tokens_to_pixels_maps_crop_tokens_to_their_place(anyres):
    """On a square image (no padding), the first crop token (the canvas' top-left patch)
    lands top-left and the last one before the last row end bottom-right."""
    adapter = anyres["llava_onevision"]
    pixels = torch.rand(3, 64, 64)
    n = int(adapter.image_token_mask(adapter.prompt_ids(pixels, "What is it?")).sum())
    rows, cols = adapter.vision_grid(pixels)
    for index, corner in [(rows * cols, (0, 0)), (n - 2, (-1, -1))]:
        values = torch.zeros(n)
        values[index] = 1.0
        heat = adapter.image_tokens_to_pixels(values, pixels)
        peak = divmod(int(heat.argmax()), 64)
        assert all(abs(p - (c % 64)) < 8 for p, c in zip(peak, corner))


def test_image_tokens_to_pixels_follows_the_anyres_max_shrink(anyres):
    """With ``anyres_max_1`` a 2 x 2-crop image's 8 x 8 crop grid is shrunk to 4 x 4 (model
    and processor alike); the map still counts and places the tokens."""
    adapter = anyres["llava_onevision"]
    config, processor = adapter.model.config, adapter.processor
    saved = config.vision_aspect_ratio, processor.vision_aspect_ratio
    config.vision_aspect_ratio = processor.vision_aspect_ratio = "anyres_max_1"
    try:
        pixels = torch.rand(3, 64, 64)
        n = int(adapter.image_token_mask(adapter.prompt_ids(pixels, "What is it?")).sum())
        assert n == 16 + 4 * (4 + 1)
        assert adapter.image_tokens_to_pixels(torch.ones(n), pixels).shape == (64, 64)
        scorer = adapter.scorer(pixels, "What is it?", adapter.encode_answer("red"))
        assert torch.isfinite(scorer(pixels)).all()  # the model packs as many tokens
    finally:
        config.vision_aspect_ratio, processor.vision_aspect_ratio = saved
