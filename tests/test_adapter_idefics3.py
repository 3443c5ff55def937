"""Idefics3 / SmolVLM adapter on tiny random models built from real configs."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_idefics3 import SHAPES as TINY

from vlm_focus.baselines import make_baseline
from vlm_focus.errors import ModelError
from vlm_focus.images import to_tensor
from vlm_focus.methods import Target, get_method
from vlm_focus.models import idefics3 as I
from vlm_focus.models import preprocess as P
from vlm_focus.models.idefics3 import Idefics3Adapter

FAMILIES = ["idefics3", "smolvlm"]
# (height, width): square, wide, tall, extreme aspect ratios, tiny, larger than the longest edge.
SHAPES = [
    (32, 32),
    (48, 64),
    (90, 37),
    (200, 300),
    (120, 500),
    (70, 20),
    (3, 129),
    (300, 7),
    (1, 1),
    (640, 480),
]


@pytest.fixture(scope="module")
def models(tiny) -> dict:
    return {name: tiny(name)[1] for name in FAMILIES}


def smooth_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def test_loads_the_right_classes(models):
    for name, adapter in models.items():
        assert isinstance(adapter, Idefics3Adapter) and adapter.family == "idefics3"
        assert adapter.model.config.model_type == name
        assert (
            type(adapter.processor).__name__
            == {"idefics3": "Idefics3Processor", "smolvlm": "SmolVLMProcessor"}[name]
        )


def test_size_rules_match_hf():
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        _resize_output_size_rescale_to_max_len,
        _resize_output_size_scale_below_upper_bound,
    )

    for h, w in [(1, 1), (3, 129), (129, 3), (480, 640), (1001, 999), (5000, 20), (20, 5000)]:
        for longest in (64, 1456, 2048, 8192):
            hf = _resize_output_size_rescale_to_max_len(h, w, max_len=longest)
            hf = _resize_output_size_scale_below_upper_bound(*hf, max_len=I.MAX_SIDE)
            assert I.longest_edge_size(h, w, longest) == hf, (h, w, longest)


@pytest.mark.parametrize("family", FAMILIES)
def test_crops_and_image_tokens_match_hf(models, family):
    adapter = models[family]
    proc = adapter.processor
    seq = proc.image_seq_len
    for h, w in SHAPES:
        img = smooth_image(h, w)
        ref = proc.image_processor(images=[img], return_tensors="pt")
        n_hf, rows_hf, cols_hf = proc.image_processor.get_number_of_image_patches(h, w)
        _, _, rows, cols = adapter.layout(h, w)
        n = adapter.n_frames(h, w)
        assert (rows, cols) == (rows_hf, cols_hf) and n == max(n_hf, 1) == ref["pixel_values"].shape[1]
        ids = adapter.prompt_ids(to_tensor(img), "What is it?")[0]
        assert int(adapter.image_token_mask(ids).sum()) == n * seq == n * adapter.model.model.image_seq_len
        tokens = adapter.tokenizer.convert_ids_to_tokens(ids.tolist())
        assert tokens.count("<global-img>") == 1
        assert [t for t in tokens if t.startswith("<row_")] == [
            f"<row_{i + 1}_col_{j + 1}>" for i in range(rows) for j in range(cols)
        ]


def test_prompt_follows_the_hub_template(models):
    assert (
        models["idefics3"].prompt("Why?") == "<|begin_of_text|>User:<image>Why?<end_of_utterance>\nAssistant:"
    )
    assert models["smolvlm"].prompt("Why?") == "<|im_start|>User:<image>Why?<end_of_utterance>\nAssistant:"


def test_lanczos_resize_matches_pillow():
    rng = np.random.default_rng(0)
    for (H, W), (h, w) in [
        ((40, 70), (64, 112)),
        ((97, 33), (20, 11)),
        ((64, 64), (64, 13)),
        ((30, 200), (9, 64)),
    ]:
        img = smooth_image(H, W, seed=int(rng.integers(1000)))
        ref = to_tensor(img.resize((w, h), Image.Resampling.LANCZOS))
        ours = P.pil_resize(to_tensor(img)[None], (h, w), P.PIL_LANCZOS)[0]
        diff = (ours - ref).abs() * 255
        assert float(diff.max()) <= 1 + 1e-3 and float((diff > 0.5).float().mean()) < 1e-3


def test_unsupported_resample_is_refused():
    with pytest.raises(ModelError, match="resampling filter 0"):
        P.pil_resize(torch.rand(1, 3, 8, 8), (4, 4), 0)


def test_crops_are_slices_and_global_is_whole_image(models):
    adapter = models["idefics3"]  # 40x70 -> 36x64 -> 64x64: 2x2 crops of 32 px + global
    assert adapter.layout(40, 70) == ((36, 64), (64, 64), 2, 2)
    x = torch.randint(0, 256, (1, 3, 40, 70)) / 255  # 8-bit, as the processor's input
    frames = adapter.frames(x)
    canvas = P.pil_resize(P.pil_resize(x, (36, 64), P.PIL_LANCZOS), (64, 64), P.PIL_LANCZOS)
    assert len(frames) == 5
    assert torch.equal(frames[1], canvas[..., :32, 32:]) and torch.equal(frames[2], canvas[..., 32:, :32])
    assert torch.equal(frames[4], P.pil_resize(canvas, (32, 32), P.PIL_LANCZOS))
    out = adapter.preprocess(x)
    assert out["pixel_values"].shape == (1, 5, 3, 32, 32)
    assert out["pixel_attention_mask"].shape == (1, 5, 32, 32) and bool(out["pixel_attention_mask"].all())


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_reaches_every_crop(models, family):
    """Each crop's values depend on its own part of the image; the global image on all of it."""
    adapter = models[family]
    H, W = 64, 96
    _, _, rows, cols = adapter.layout(H, W)
    assert rows * cols > 1
    for k in range(rows * cols + 1):
        x = torch.rand(1, 3, H, W, requires_grad=True)
        adapter.preprocess(x)["pixel_values"][0, k].sum().backward()
        grad = x.grad[0].abs().sum(0)
        if k == rows * cols:  # the global image: every quarter of the image
            assert all(float(q.sum()) > 0 for half in grad.chunk(2, 0) for q in half.chunk(2, 1))
            continue
        i, j = divmod(k, cols)
        top, left = i * H // rows, j * W // cols
        bottom, right = (i + 1) * H // rows, (j + 1) * W // cols
        assert float(grad[top + 2 : bottom - 2, left + 2 : right - 2].min()) > 0  # its own part
        reach = 10  # Lanczos taps of the two resizes: no further than this past the crop's part
        near = grad[max(0, top - reach) : bottom + reach, max(0, left - reach) : right + reach]
        assert float(near.sum()) == pytest.approx(float(grad.sum()))


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_score_depends_on_every_frame(models, family, scene):
    """The model reads every crop and the global image: the answer's score has a gradient
    in each frame's pixel values."""
    adapter = models[family]
    pixels = to_tensor(scene.image)
    scorer = adapter.scorer(pixels, scene.question, adapter.encode_answer(scene.answer)[:2])
    inputs = adapter.preprocess(pixels[None])
    values = inputs["pixel_values"].detach().requires_grad_(True)
    logits = adapter.model(input_ids=scorer.input_ids, **{**inputs, "pixel_values": values}).logits
    logits[0, scorer.positions].log_softmax(-1).gather(-1, scorer.answer_ids.view(-1, 1)).sum().backward()
    assert values.shape[1] == adapter.n_frames(*pixels.shape[-2:]) > 1
    assert all(float(frame.abs().sum()) > 0 for frame in values.grad[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_grid_hooks_global_image(models, family):
    adapter = models[family]
    side, patch = TINY[family][:2]
    rows, cols = adapter.vision_grid(torch.zeros(1, 3, 50, 80))
    assert (rows, cols) == (side // patch, side // patch) and len(adapter.vision_layers()) == 2
    # SmolVLM's tiny frames: 9 patches of 4 px see 36 of 38 px; the rest of the image gets 0.
    H, W = 2 * side, 3 * side
    unseen_h, unseen_w = (H * (side - rows * patch) // side, W * (side - cols * patch) // side)
    up = adapter.grid_to_pixels(torch.ones(rows, cols), H, W)
    assert torch.allclose(up[: H - unseen_h, : W - unseen_w], torch.ones(1))
    assert float(up[H - unseen_h :].abs().sum()) == 0 and float(up[:, W - unseen_w :].abs().sum()) == 0
    assert (unseen_h, unseen_w) == ((0, 0) if family == "idefics3" else (4, 6))
    n = adapter.preprocess(torch.rand(1, 3, 64, 96))["pixel_values"].shape[1]
    hidden = torch.arange(2 * n, dtype=torch.float).view(-1, 1, 1).expand(-1, rows * cols, 3)
    tokens = adapter.patch_tokens(hidden)  # two images, each its crops then its global frame
    assert tokens.shape == (2, n * rows * cols, 3)
    assert tokens[:, :: rows * cols, 0].tolist() == [list(range(n)), list(range(n, 2 * n))]


def frame_token_rows(adapter, height: int, width: int) -> torch.Tensor:
    """Each patch token's centre row as a fraction of the image height: every crop's (crop
    ``k`` at ``divmod(k, cols)`` of the split image), then the global frame's."""
    _, (h, _), nr, nc = adapter.layout(height, width)
    rows, cols = adapter.vision_grid(torch.zeros(3, height, width))
    centre = (torch.arange(rows) + 0.5) * adapter.patch
    crops = [((k // nc) * adapter.side + centre) / h for k in range(nr * nc)]
    return torch.cat(
        [r.view(rows, 1).expand(rows, cols).reshape(-1) for r in [*crops, centre / adapter.side]]
    )


@pytest.mark.parametrize("size", [(64, 96), (96, 64), (100, 100)])
def test_patches_to_pixels_puts_every_crop_where_it_was_cut(models, size):
    """Tokens valued by their own centre row map to a ramp over the image rows: each pixel
    is seen by one crop and by the global image, so the map is twice the row fraction."""
    adapter = models["idefics3"]
    H, W = size
    assert adapter.n_frames(H, W) > 1
    heat = adapter.patches_to_pixels(frame_token_rows(adapter, H, W), torch.zeros(3, H, W))
    ramp = 2 * (torch.arange(H) + 0.5) / H
    inner = slice(H // 6, H - H // 6)  # bilinear resizes clamp within half a cell of the edges
    assert torch.allclose(heat[inner], ramp[inner, None].expand(-1, W), atol=0.03)


def test_image_tokens_are_the_pixel_shuffles_blocks(models):
    """Image token ``j`` of a frame holds the ``k x k`` patch block the model's pixel shuffle
    folds into it; the prompt has as many image tokens as the mapping expects."""
    adapter = models["idefics3"]
    pixels = torch.zeros(3, 64, 96)
    n = adapter.n_frames(64, 96)
    rows, cols = adapter.vision_grid(pixels)
    k = int(adapter.model.config.scale_factor)
    features = torch.rand(n, rows * cols, 1)
    shuffled = adapter.model.model.connector.pixel_shuffle(features, k)  # [n, tokens, k * k]
    pooled = features.view(n, rows // k, k, cols // k, k).mean((2, 4), keepdim=True)
    blocks = pooled.expand(n, rows // k, k, cols // k, k).reshape(-1)
    assert torch.allclose(
        adapter.image_tokens_to_pixels(shuffled.mean(-1).flatten(), pixels),
        adapter.patches_to_pixels(blocks, pixels),
        atol=1e-6,
    )
    for size in [(32, 32), (64, 96), (100, 100)]:
        x = torch.rand(3, *size)
        n_tokens = int(adapter.image_token_mask(adapter.prompt_ids(x, "What is it?")).sum())
        assert adapter.image_tokens_to_pixels(torch.ones(n_tokens), x).shape == size


def test_grid_to_pixels_is_a_resize_where_patches_cover_the_frame(models):
    adapter = models["idefics3"]  # 8 patches of 4 px cover all 32 px
    grid = torch.rand(8, 8)
    up = adapter.grid_to_pixels(grid, 40, 100)
    ref = torch.nn.functional.interpolate(
        grid[None, None], size=(40, 100), mode="bilinear", align_corners=False
    )
    assert torch.allclose(up, ref[0, 0], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_internal_methods_map_split_images(models, family, scene):
    adapter = models[family]
    pixels = to_tensor(scene.image)
    answer = adapter.encode_answer(scene.answer)[:2]
    target = Target(adapter.scorer(pixels, scene.question, answer), [0, 1], adapter)
    baseline = make_baseline("blur", pixels)
    assert adapter.n_frames(*pixels.shape[-2:]) > 1
    for name in ["gradcam", "attention", "tmm", "iia"]:
        heat = get_method(name, **({"steps": 2} if name == "iia" else {})).explain(target, pixels, baseline)
        assert heat.shape == pixels.shape[-2:] and torch.isfinite(heat).all()


def test_preprocess_rounds_the_input_to_8_bits(models):
    """A grey image is never all-zero after normalisation (the model drops such frames as padding)."""
    adapter = models["idefics3"]
    x = torch.full((1, 3, 64, 64), 0.5)  # 64 px: no resize before the crops
    values = adapter.preprocess(x)["pixel_values"]
    assert bool((values != 0).all())


def test_mismatched_processor_is_refused(tiny):
    path, adapter = tiny("idefics3")
    processor = Idefics3Adapter.load_processor(str(path), "idefics3")
    processor.image_seq_len = 7
    with pytest.raises(ModelError, match="image tokens per frame"):
        Idefics3Adapter(adapter.model, processor)


def test_smolvlm_without_num2words_is_a_model_error(tiny, monkeypatch):
    import transformers.models.smolvlm.processing_smolvlm as smol

    path = tiny("smolvlm")[0]
    monkeypatch.setattr(smol, "num2words", None)
    with pytest.raises(ModelError, match="num2words"):
        Idefics3Adapter.load_processor(str(path), "smolvlm")
