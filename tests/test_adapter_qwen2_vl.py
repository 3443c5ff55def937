"""Qwen2-VL / Qwen2.5-VL / Qwen3-VL adapter on tiny random models built from real configs."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import build_tiny_qwen, load_tiny

import vlm_focus
from vlm_focus.images import to_tensor
from vlm_focus.models.preprocess import resize as pil_resize
from vlm_focus.models.qwen2_vl import Qwen2VLAdapter

VARIANTS = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
# (width, height): smart_resize scales up (< 40x40 px), keeps, and scales down (> 96x96 px).
SIZES = [(32, 32), (64, 48), (37, 90), (300, 200), (33, 31), (500, 120)]


@pytest.fixture(scope="module")
def qwen_dirs(tmp_path_factory) -> dict:
    return {v: build_tiny_qwen(tmp_path_factory.mktemp(v), v) for v in VARIANTS}


@pytest.fixture(scope="module")
def qwen(qwen_dirs) -> dict:
    return {v: load_tiny(path) for v, path in qwen_dirs.items()}


def smooth_image(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(sum(size))
    small = rng.integers(0, 256, (max(2, size[1] // 4), max(2, size[0] // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def test_loads_the_right_classes(qwen):
    for variant, adapter in qwen.items():
        assert isinstance(adapter, Qwen2VLAdapter)
        assert adapter.model.config.model_type == variant
        assert type(adapter.model).__name__.endswith("ForConditionalGeneration")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", SIZES)
def test_preprocess_matches_hf_processor(qwen, variant, size):
    adapter = qwen[variant]
    img = smooth_image(size)
    ref = adapter.processor.image_processor(images=[img], return_tensors="pt")
    ours = adapter.preprocess(to_tensor(img)[None])
    assert torch.equal(ours["image_grid_thw"], ref["image_grid_thw"])
    assert ours["pixel_values"].shape == ref["pixel_values"].shape
    diff = (ours["pixel_values"] - ref["pixel_values"]).abs()
    one_step = 1 / 255 / min(adapter.processor.image_processor.image_std)
    assert float(diff.mean()) < 1e-4
    assert float((diff < 1e-3).float().mean()) > 0.99
    assert float(diff.max()) <= one_step + 1e-4
    # The prompt has one placeholder per merged token.
    ids = adapter.prompt_ids(to_tensor(img), "What is it?")
    t, gh, gw = ref["image_grid_thw"][0].tolist()
    assert int(adapter.image_token_mask(ids).sum()) == t * gh * gw // adapter.merge**2


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


@pytest.mark.parametrize("variant", VARIANTS)
def test_scorer_equals_teacher_forced_forward(qwen, variant, scene):
    adapter = qwen[variant]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=4)
    scorer = adapter.scorer(pixels, scene.question, answer)
    with torch.no_grad():
        ours = scorer(pixels[None])[0]
        ids = scorer.input_ids
        # mm_token_type_ids: without them the model refuses images (M-RoPE positions).
        logits = adapter.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            **adapter.extra_inputs(ids),
            **adapter.preprocess(pixels[None]),
        ).logits[0]
        full = logits.float().log_softmax(-1)[scorer.positions].gather(-1, answer.view(-1, 1))[:, 0]
    assert ours.shape == (len(answer),)
    assert torch.allclose(ours, full, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_scorer_gradient_and_batches(qwen, variant, scene):
    adapter = qwen[variant]
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


@pytest.mark.parametrize("variant", VARIANTS)
def test_grid_hooks(qwen, variant, scene):
    adapter = qwen[variant]
    pixels = to_tensor(scene.image)
    rows, cols = adapter.vision_grid(pixels)
    gh, gw = adapter.patch_grid(*pixels.shape[-2:])
    assert (rows, cols) == (gh // 2, gw // 2) and len(adapter.vision_layers()) == 2
    up = adapter.grid_to_pixels(torch.ones(rows, cols), 50, 80)
    assert up.shape == (50, 80) and torch.allclose(up, torch.ones(50, 80))  # no crop: all seen


@pytest.mark.parametrize("variant", VARIANTS)
def test_explain_end_to_end(qwen_dirs, variant, scene):
    lens = vlm_focus.load(
        str(qwen_dirs[variant]),
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
    assert np.isfinite(ex.scores["deletion"]) and np.isfinite(ex.scores["insertion"])


def test_raw_attention_maps_image_tokens_to_the_grid(qwen, scene):
    lens = vlm_focus.Lens(qwen["qwen2_5_vl"], method="attention", alpha=-1e9, metrics=False, max_new_tokens=3)
    ex = lens.explain(scene.image, scene.question)
    assert ex.heatmap.shape == (scene.image.height, scene.image.width) and ex.heatmap.max() > 0


def test_given_answer_tokenizes_as_after_the_prompt(qwen):
    for adapter in qwen.values():
        prompt = adapter.prompt("What color is the circle?")
        tok = adapter.tokenizer
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        joiner = "" if prompt[-1].isspace() else " "
        tail = tok(prompt + joiner + "red circle", add_special_tokens=False)["input_ids"][n:]
        assert adapter.encode_answer(" red circle ").tolist() == tail
