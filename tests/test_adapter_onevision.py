"""LLaVA-OneVision / LLaVA-NeXT adapter on tiny random models built from real configs."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import build_tiny_llava_next, build_tiny_onevision, load_tiny

import vlm_focus
from vlm_focus.images import to_tensor
from vlm_focus.models.llava_onevision import LlavaOnevisionAdapter, select_best_resolution

FAMILIES = {"llava_onevision": build_tiny_onevision, "llava_next": build_tiny_llava_next}
# (width, height): one crop, 2x2, 1x3 / 3x1, 3x3 (OneVision's feature downsampling), odd sizes.
SIZES = [(32, 32), (64, 48), (37, 90), (300, 200), (33, 31), (500, 120), (20, 70), (96, 96)]


@pytest.fixture(scope="module")
def anyres_dirs(tmp_path_factory) -> dict:
    return {name: build(tmp_path_factory.mktemp(name)) for name, build in FAMILIES.items()}


@pytest.fixture(scope="module")
def anyres(anyres_dirs) -> dict:
    return {name: load_tiny(path) for name, path in anyres_dirs.items()}


def smooth_image(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(sum(size))
    small = rng.integers(0, 256, (max(2, size[1] // 4), max(2, size[0] // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def test_loads_the_right_classes(anyres):
    for name, adapter in anyres.items():
        assert isinstance(adapter, LlavaOnevisionAdapter)
        assert adapter.model.config.model_type == name


def test_select_best_resolution_matches_hf():
    from transformers.image_processing_utils import select_best_resolution as hf_select

    pinpoints = [[384, 384], [384, 768], [768, 384], [768, 768], [1152, 384], [384, 1152]]
    for hw in [(100, 100), (300, 900), (900, 300), (500, 700), (2000, 3000), (383, 385)]:
        assert select_best_resolution(*hw, pinpoints) == tuple(hf_select(hw, pinpoints))


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("size", SIZES)
def test_preprocess_matches_hf_processor(anyres, family, size):
    adapter = anyres[family]
    img = smooth_image(size)
    ref = adapter.processor.image_processor(images=[img], return_tensors="pt")
    ours = adapter.preprocess(to_tensor(img)[None])
    assert torch.equal(ours["image_sizes"], ref["image_sizes"])
    assert ours["pixel_values"].shape == ref["pixel_values"].shape
    diff = (ours["pixel_values"] - ref["pixel_values"]).abs()
    one_step = 1 / 255 / min(adapter.processor.image_processor.image_std)
    assert float(diff.mean()) < 1e-4
    assert float((diff < 1e-3).float().mean()) > 0.99
    assert float(diff.max()) <= one_step + 1e-4
    # The model accepts them: its image-token count (from image_sizes) equals the
    # processor's expansion of the placeholder, or it raises.
    ids = adapter.prompt_ids(to_tensor(img), "What is it?")
    with torch.no_grad():
        adapter.model.model(input_ids=ids, attention_mask=torch.ones_like(ids), **ours)


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


@pytest.mark.parametrize("family", list(FAMILIES))
def test_scorer_equals_teacher_forced_forward(anyres, family, scene):
    adapter = anyres[family]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=4)
    scorer = adapter.scorer(pixels, scene.question, answer)
    with torch.no_grad():
        ours = scorer(pixels[None])[0]
        ids = scorer.input_ids
        logits = adapter.model(
            input_ids=ids, attention_mask=torch.ones_like(ids), **adapter.preprocess(pixels[None])
        ).logits[0]
        full = logits.float().log_softmax(-1)[scorer.positions].gather(-1, answer.view(-1, 1))[:, 0]
    assert ours.shape == (len(answer),)
    assert torch.allclose(ours, full, atol=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_scorer_gradient_and_batches(anyres, family, scene):
    adapter = anyres[family]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=3)
    scorer = adapter.scorer(pixels, scene.question, answer, batch_size=2)
    batch = torch.stack([pixels, pixels * 0.5, pixels.flip(-1)])
    with torch.no_grad():
        together = scorer(batch)
        single = torch.cat([scorer(b[None]) for b in batch])
    assert torch.allclose(together, single, atol=1e-5)
    x = pixels[None].clone().requires_grad_(True)
    scorer(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0
    # One mask reaches every crop: the crops alone carry a gradient back to the pixels.
    y = pixels[None].clone().requires_grad_(True)
    crops = adapter.preprocess(y)["pixel_values"][:, 1:]
    assert crops.shape[1] >= 1
    crops.sum().backward()
    assert float(y.grad.abs().sum()) > 0


@pytest.mark.parametrize("family", list(FAMILIES))
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


@pytest.mark.parametrize("family", list(FAMILIES))
def test_explain_end_to_end(anyres_dirs, family, scene):
    lens = vlm_focus.load(
        str(anyres_dirs[family]),
        method="igos++",
        device="cpu",
        iterations=1,
        ig_iter=2,
        size=8,
        alpha=-1e9,
        metric_steps=5,
        metric_grid=8,
        max_new_tokens=4,
    )
    ex = lens.explain(scene.image, scene.question)
    assert ex.heatmap.shape == (scene.image.height, scene.image.width)
    assert np.isfinite(ex.heatmap).all() and ex.selected


def test_given_answer_tokenizes_as_after_the_prompt(anyres):
    for adapter in anyres.values():
        prompt = adapter.prompt("What color is the circle?")
        tok = adapter.tokenizer
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        joiner = "" if prompt[-1].isspace() else " "
        tail = tok(prompt + joiner + "red circle", add_special_tokens=False)["input_ids"][n:]
        assert adapter.encode_answer(" red circle ").tolist() == tail
