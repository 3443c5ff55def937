"""LLaVA-OneVision / LLaVA-NeXT adapter on tiny random models built from real configs."""

import pytest
import torch

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
def test_grid_hooks_base_image(anyres, family, scene):
    adapter = anyres[family]
    pixels = to_tensor(scene.image)
    rows, cols = adapter.vision_grid(pixels)
    assert (rows, cols) == (4, 4) and len(adapter.vision_layers()) == 2
    up = adapter.grid_to_pixels(torch.ones(rows, cols), 50, 80)
    assert up.shape == (50, 80) and torch.allclose(up, torch.ones(50, 80))
    n_inputs = adapter.preprocess(pixels[None])["pixel_values"].shape[1]
    hidden = torch.arange(2 * n_inputs, dtype=torch.float).view(-1, 1, 1).expand(-1, rows * cols + 1, 3)
    base = adapter.patch_tokens(hidden)  # two images: their base inputs are rows 0 and n_inputs
    assert base.shape == (2, rows * cols, 3)
    assert base[:, 0, 0].tolist() == [0.0, float(n_inputs)]


def test_given_answer_tokenizes_as_after_the_prompt(anyres):
    for adapter in anyres.values():
        prompt = adapter.prompt("What color is the circle?")
        tok = adapter.tokenizer
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        joiner = "" if prompt[-1].isspace() else " "
        tail = tok(prompt + joiner + "red circle", add_special_tokens=False)["input_ids"][n:]
        assert adapter.encode_answer(" red circle ").tolist() == tail
