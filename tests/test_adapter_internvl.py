"""InternVL adapter on a tiny random model built from the real configs (tiles of 32 px, at
most 6, thumbnail; 4x4 patches per tile, 2x2 image tokens after the pixel shuffle)."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_focus.errors import ModelError
from vlm_focus.images import to_tensor
from vlm_focus.methods import Target, get_method
from vlm_focus.models import preprocess as P
from vlm_focus.models.internvl import InternVLAdapter, Tiling, image_options, tile_grid

# (width, height): one tile (square, small), rows, columns, 2x3, 2x2, beyond the tile budget.
SIZES = [(32, 32), (33, 31), (30, 95), (120, 40), (64, 48), (96, 96), (700, 90), (45, 400)]


@pytest.fixture(scope="module")
def internvl(tiny) -> InternVLAdapter:
    return tiny("internvl")[1]


def smooth_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def test_loads_the_right_classes(internvl):
    assert isinstance(internvl, InternVLAdapter)
    assert internvl.model.config.model_type == "internvl"
    assert type(internvl.model).__name__ == "InternVLForConditionalGeneration"
    assert type(internvl.processor).__name__ == "InternVLProcessor"
    assert (internvl.tile, internvl.patch_grid, internvl.merge, internvl.unit_grid) == (
        (32, 32),
        (4, 4),
        2,
        (2, 2),
    )


@pytest.mark.parametrize("limits", [(1, 12), (1, 6), (2, 6), (1, 1), (3, 9)])
def test_tile_grid_matches_hf(limits):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    rng = np.random.default_rng(limits[1])
    sizes = [(448, 448), (896, 448), (448, 896), (1000, 10), (10, 1000), (300, 200), (64, 64)]
    sizes += [tuple(int(v) for v in rng.integers(10, 2000, 2)) for _ in range(200)]
    for h, w in sizes:
        cols, rows = get_optimal_tiled_canvas((h, w), (448, 448), *limits)
        assert tile_grid(h, w, (448, 448), *limits) == (rows, cols), (h, w)


@pytest.mark.parametrize("size", SIZES)
def test_tiles_and_image_tokens_match_hf(internvl, size):
    img = smooth_image(*size, seed=sum(size))
    pixels = to_tensor(img)
    prompt = internvl.prompt("What is it?")
    ref = internvl.processor(text=[prompt], images=[img], return_tensors="pt")
    ours = internvl.preprocess(pixels[None])["pixel_values"]
    assert ours.shape == ref["pixel_values"].shape
    assert float((ours - ref["pixel_values"]).abs().mean()) < 1e-3
    tiling = internvl.tiling(*pixels.shape[-2:])
    assert ours.shape[0] == tiling.n_inputs
    assert tiling.thumbnail == (tiling.n_tiles > 1)
    ids = internvl.prompt_ids(pixels, "What is it?")
    assert torch.equal(ids, ref["input_ids"])
    n_tokens = int(internvl.image_token_mask(ids).sum())
    assert n_tokens == internvl.processor.image_seq_length * tiling.n_inputs
    tok = internvl.tokenizer
    assert int((ids == tok.convert_tokens_to_ids("<img>")).sum()) == 1
    assert int((ids == tok.convert_tokens_to_ids("</img>")).sum()) == 1


def test_processor_tiles_whatever_the_image_processor_says(internvl):
    """The hub preprocessor configs may leave ``crop_to_patches`` off: ``InternVLProcessor``
    turns it on, and so does the adapter."""
    processor = copy.deepcopy(internvl.processor)
    processor.image_processor.crop_to_patches = False
    assert image_options(processor)["crop_to_patches"] is True
    img = smooth_image(96, 40)
    out = processor(text=[internvl.prompt("Why?")], images=[img], return_tensors="pt")
    adapter = InternVLAdapter(internvl.model, processor)
    assert out["pixel_values"].shape == adapter.preprocess(to_tensor(img)[None])["pixel_values"].shape


def test_hub_sized_tiles_match_hf(internvl):
    """The hub checkpoints' settings: 448 px tiles, at most 12 (the model is not run)."""
    processor = copy.deepcopy(internvl.processor)
    ip = processor.image_processor
    ip.size, ip.max_patches = {"height": 448, "width": 448}, 12
    processor.image_seq_length = (448 // 8 // 2) ** 2
    adapter = InternVLAdapter(internvl.model, processor)
    for size in [(1000, 700), (300, 1200)]:
        img = smooth_image(*size, seed=size[0])
        ref = ip(images=[img], return_tensors="pt")["pixel_values"]
        ours = adapter.preprocess(to_tensor(img)[None])["pixel_values"]
        assert ours.shape == ref.shape and ours.shape[0] > 2
        diff = (ours - ref).abs()
        assert float(diff.mean()) < 1e-3 and float((diff < 1e-3).float().mean()) > 0.99


def test_tiles_are_slices_of_the_resized_image_then_the_thumbnail(internvl):
    x = torch.rand(1, 3, 40, 110)
    tiling = internvl.tiling(40, 110)
    assert tiling == Tiling(1, 3, True)
    views = internvl.views(x, tiling)
    canvas = P.resize(x, (32, 96))
    for j in range(3):
        assert torch.equal(views[j], canvas[..., 32 * j : 32 * (j + 1)])
    assert torch.equal(views[3], P.resize(x, (32, 32)))


def test_a_mask_reaches_every_tile(internvl):
    """The gradient of each tile's input lies in that tile's part of the image (plus the
    resampling kernel's reach), and the score's gradient is non-zero in every tile's part."""
    H, W = 48, 72  # 2x3 tiles of 24x24 image pixels each, plus the thumbnail
    tiling = internvl.tiling(H, W)
    assert (tiling.rows, tiling.cols) == (2, 3)
    x = torch.rand(1, 3, H, W, requires_grad=True)
    values = internvl.preprocess(x)["pixel_values"]
    th, tw = H // tiling.rows, W // tiling.cols
    for t in range(tiling.n_tiles):
        (grad,) = torch.autograd.grad(values[t].sum(), x, retain_graph=True)
        i, j = divmod(t, tiling.cols)
        inside = grad[..., i * th : (i + 1) * th, j * tw : (j + 1) * tw]
        assert float(inside.abs().min()) > 0, t
        far = grad.clone()
        far[..., max(0, i * th - 3) : (i + 1) * th + 3, max(0, j * tw - 3) : (j + 1) * tw + 3] = 0
        assert float(far.abs().max()) == 0.0, t
    (grad,) = torch.autograd.grad(values[-1].sum(), x)  # the thumbnail sees everything
    assert float(grad.abs().min()) > 0

    pixels = torch.rand(3, H, W)
    answer = internvl.encode_answer("red")
    scorer = internvl.scorer(pixels, "What color?", answer)
    x = pixels[None].clone().requires_grad_(True)
    scorer(x).sum().backward()
    assert x.grad is not None
    for i in range(tiling.rows):
        for j in range(tiling.cols):
            assert float(x.grad[..., i * th : (i + 1) * th, j * tw : (j + 1) * tw].abs().sum()) > 0


def test_batch_stacks_each_images_inputs(internvl):
    x = torch.rand(3, 3, 40, 70)
    one = internvl.preprocess(x[:1])["pixel_values"]
    three = internvl.preprocess(x)["pixel_values"]
    n = one.shape[0]
    assert n > 1 and three.shape[0] == 3 * n
    assert torch.equal(three[:n], one)
    assert torch.equal(three[2 * n :], internvl.preprocess(x[2:])["pixel_values"])


def test_patch_tokens_follow_the_image_tokens(internvl):
    """A hidden state encoding (input, patch row, patch col) comes out per input (tiles, then
    the thumbnail), on the input's token grid, averaged over each token's 2x2 patches."""
    H, W = 48, 72
    internvl.preprocess(torch.rand(2, 3, H, W))
    tiling = internvl.recalled_layout()
    assert internvl.vision_grid(torch.rand(3, H, W)) == (2, 2) and tiling.thumbnail
    g = 4
    n = tiling.n_inputs
    index = torch.arange(2 * n, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, g, g, 1)
    pr = torch.arange(g, dtype=torch.float).view(1, g, 1, 1).expand(2 * n, g, g, 1)
    pc = torch.arange(g, dtype=torch.float).view(1, 1, g, 1).expand(2 * n, g, g, 1)
    hidden = torch.cat([index, pr, pc], -1).reshape(2 * n, g * g, 3)
    hidden = torch.cat([torch.full((2 * n, 1, 3), -1.0), hidden], 1)  # class token first
    tokens = internvl.patch_tokens(hidden).reshape(2, n, 2, 2, 3)
    for b in range(2):
        for i in range(n):
            for r in range(2):
                for c in range(2):
                    assert tokens[b, i, r, c].tolist() == [b * n + i, r * 2 + 0.5, c * 2 + 0.5]


def test_grid_cells_are_the_models_image_tokens(internvl):
    """On one tile, cell ``j`` of the grid holds the patches the pixel shuffle folds into
    image token ``j``: the model's unit order is ours."""
    g, d = 4, 2
    features = torch.arange(g * g, dtype=torch.float).view(1, g, g, 1).expand(1, g, g, d)
    shuffled = internvl.model.model.pixel_shuffle(features.contiguous(), scale_factor=0.5)
    tokens = shuffled.reshape(1, -1, shuffled.shape[-1])  # [1, 4 tokens, 4 patches * d]
    per_token = tokens.view(1, 4, 4, d)[..., 0].mean(-1)  # mean patch index in each token
    internvl.preprocess(torch.rand(1, 3, 32, 32))
    hidden = torch.cat([torch.zeros(1, 1, d), features.reshape(1, g * g, d)], 1)
    assert internvl.patch_tokens(hidden)[0, :, 0].tolist() == per_token[0].tolist()


@pytest.mark.parametrize("size", [(48, 72), (72, 48), (40, 80)])
def test_patches_to_pixels_puts_every_tile_where_it_was_cut(internvl, size):
    """Tokens valued by their own centre row map to a ramp over the image rows: each pixel is
    seen by one tile and by the thumbnail, so the map is twice the row fraction."""
    H, W = size
    tiling = internvl.tiling(H, W)
    assert tiling.n_tiles > 1 and tiling.thumbnail
    uh, uw = internvl.unit_grid
    rows = []
    for t in range(tiling.n_tiles):
        rows.append((t // tiling.cols * uh + torch.arange(uh) + 0.5) / (tiling.rows * uh))
    rows.append((torch.arange(uh) + 0.5) / uh)  # the thumbnail
    values = torch.cat([r.view(uh, 1).expand(uh, uw).reshape(-1) for r in rows])
    heat = internvl.patches_to_pixels(values, torch.zeros(3, H, W))
    ramp = 2 * (torch.arange(H) + 0.5) / H
    inner = slice(H // 4, H - H // 4)  # bilinear resizes clamp within half a cell of the edges
    assert torch.allclose(heat[inner], ramp[inner, None].expand(-1, W), atol=0.02)


def test_grid_to_pixels_is_a_plain_resize(internvl):
    up = internvl.grid_to_pixels(torch.ones(4, 6), 48, 72)
    assert up.shape == (48, 72) and torch.allclose(up, torch.ones(48, 72))
    left = torch.zeros(4, 6)
    left[:, :3] = 1
    up = internvl.grid_to_pixels(left, 48, 72)
    assert float(up[:, :30].min()) == pytest.approx(1.0) and float(up[:, 42:].max()) == 0.0


def make_target(adapter, pixels):
    answer = adapter.encode_answer("red")
    scorer = adapter.scorer(pixels, "What color is the circle?", answer, batch_size=4)
    return Target(scorer, list(range(len(answer))), adapter)


@pytest.mark.parametrize("name", ["gradcam", "tmm", "iia", "attention"])
def test_internal_methods_on_one_tile(internvl, name):
    pixels = to_tensor(smooth_image(30, 30, seed=1))
    assert internvl.tiling(30, 30).n_inputs == 1
    options = {"iia": {"steps": 2}}.get(name, {})
    heat = get_method(name, **options).explain(
        make_target(internvl, pixels), pixels, torch.zeros_like(pixels)
    )
    assert heat.shape == (30, 30) and torch.isfinite(heat).all()


@pytest.mark.parametrize("name", ["gradcam", "attention", "tmm", "iia"])
def test_internal_methods_map_every_tile(internvl, name):
    pixels = to_tensor(smooth_image(80, 40, seed=2))
    assert internvl.tiling(40, 80).n_inputs > 1
    options = {"iia": {"steps": 2}}.get(name, {})
    heat = get_method(name, **options).explain(
        make_target(internvl, pixels), pixels, torch.zeros_like(pixels)
    )
    assert heat.shape == (40, 80) and torch.isfinite(heat).all()


def test_mismatched_tokens_per_tile_is_refused(internvl):
    processor = copy.deepcopy(internvl.processor)
    processor.image_seq_length = 9
    with pytest.raises(ModelError, match="image tokens per tile"):
        InternVLAdapter(internvl.model, processor)
