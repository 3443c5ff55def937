"""Adapter contract, parametrised over every registered adapter family."""

import numpy as np
import pytest
import torch
from conftest import VARIANTS
from PIL import Image

import vlm_focus
from vlm_focus.errors import InputError, MethodError, ModelError
from vlm_focus.images import to_tensor
from vlm_focus.methods.hooks import capture_outputs
from vlm_focus.models import list_adapters

# (width, height): square, wide, tall, up- and down-scaling, odd sizes, extreme aspect.
SIZES = [(32, 32), (64, 48), (37, 90), (300, 200), (33, 31), (500, 120), (20, 70), (96, 96)]


def test_every_adapter_has_a_tiny_model(tiny):
    assert {type(tiny(v)[1]).family for v in VARIANTS} == set(list_adapters())


@pytest.mark.parametrize("family", VARIANTS)
@pytest.mark.parametrize("size", SIZES)
def test_preprocess_matches_hf_processor(tiny, family, size):
    adapter = tiny(family)[1]
    rng = np.random.default_rng(sum(size))
    # Smooth random image: upsampled noise (real photos are smooth, pure noise is adversarial).
    small = rng.integers(0, 256, (max(2, size[1] // 4), max(2, size[0] // 4), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    ref = adapter.processor.image_processor(images=[img], return_tensors="pt")
    out = adapter.preprocess(to_tensor(img)[None])
    for key in ("image_grid_thw", "image_sizes"):  # grid sizes of dynamic-resolution models
        if key in ref:
            assert torch.equal(out[key].cpu(), ref[key].cpu()), key
    ours, ref = out["pixel_values"], ref["pixel_values"]
    assert ours.shape == ref.shape
    diff = (ours - ref).abs()
    # Equal within 1e-3 but for rare ties of the 8-bit rounding, off by exactly one step;
    # torch's uint8 kernels and torchvision's Lanczos (fast processors) round with fixed-point
    # weights: more such ties, rarely two steps.
    one_step = 1 / 255 / min(adapter.processor.image_processor.image_std)
    assert float(diff.mean()) < 1e-3
    assert float((diff < 1e-3).float().mean()) > (0.97 if adapter.fast else 0.99)
    assert float(diff.max()) <= (2 if adapter.fast else 1) * one_step + 1e-4


@pytest.mark.parametrize("family", VARIANTS)
def test_preprocess_is_differentiable(tiny, family):
    x = torch.rand(1, 3, 40, 50, requires_grad=True)
    tiny(family)[1].preprocess(x)["pixel_values"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("family", VARIANTS)
def test_scorer_equals_teacher_forced_forward(tiny, family, scene):
    adapter = tiny(family)[1]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=4)
    scorer = adapter.scorer(pixels, scene.question, answer)
    with torch.no_grad():
        ours = scorer(pixels[None])[0]
        ids = scorer.input_ids
        logits = adapter.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            **adapter.extra_inputs(ids),
            **adapter.preprocess(pixels[None]),
        ).logits[0]
        full = logits.float().log_softmax(-1)[scorer.positions].gather(-1, answer.view(-1, 1))[:, 0]
    assert ours.shape == (len(answer),)
    assert torch.allclose(ours, full, atol=1e-4)


@pytest.mark.parametrize("family", VARIANTS)
def test_scorer_gradient_and_batches(tiny, family, scene):
    adapter = tiny(family)[1]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=3)
    scorer = adapter.scorer(pixels, scene.question, answer, batch_size=2)
    batch = torch.stack([pixels, pixels * 0.5, pixels.flip(-1)])
    with torch.no_grad():
        together = scorer(batch)  # split into chunks of 2
        single = torch.cat([scorer(b[None]) for b in batch])
    assert torch.allclose(together, single, atol=1e-5)
    x = pixels[None].clone().requires_grad_(True)
    scorer(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("family", VARIANTS)
def test_grid_hooks(tiny, family, scene):
    adapter = tiny(family)[1]
    pixels = to_tensor(scene.image)
    rows, cols = adapter.vision_grid(pixels)
    assert rows > 0 and cols > 0 and len(adapter.vision_layers()) > 0
    up = adapter.grid_to_pixels(torch.ones(rows, cols), 50, 80)
    assert up.shape == (50, 80)
    assert float(up[25, 40]) == pytest.approx(1.0) and float(up.min()) >= 0.0
    if family == "llava":  # centre crop of a wide image: the sides are never seen
        assert float(up[:, 0].max()) == 0.0


@pytest.mark.parametrize("family", VARIANTS)
def test_token_maps_fit_the_model(tiny, family, scene):
    """Every patch token the last vision layer puts out (all crops/tiles/frames) and every
    image token of the prompt has a place on the image, for a square and a wide image."""
    adapter = tiny(family)[1]
    for pixels in [to_tensor(scene.image), torch.rand(3, 40, 90)]:
        scorer = adapter.scorer(pixels, "What is it?", adapter.encode_answer("red"))
        with torch.no_grad(), capture_outputs(adapter.vision_layers()[-1:]) as outs:
            scorer(pixels)
        tokens = adapter.patch_tokens(outs[0][-1])
        assert tokens.shape[0] == 1
        heat = adapter.patches_to_pixels(tokens[0, :, 0], pixels)
        assert heat.shape == pixels.shape[-2:] and torch.isfinite(heat).all()
        n = int(adapter.image_token_mask(scorer.input_ids).sum())
        heat = adapter.image_tokens_to_pixels(torch.ones(n), pixels)
        assert heat.shape == pixels.shape[-2:] and float(heat.max()) > 0
        with pytest.raises(MethodError, match="do not fill"):
            adapter.image_tokens_to_pixels(torch.ones(n + 1), pixels)


@pytest.mark.parametrize("family", VARIANTS)
def test_given_answer_tokenizes_as_after_the_prompt(tiny, family):
    """A given answer gets the token ids it has when the tokenizer reads it after the prompt."""
    adapter = tiny(family)[1]
    prompt = adapter.prompt("What color is the circle?")
    tok = adapter.tokenizer
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    joiner = "" if prompt[-1].isspace() else " "
    tail = tok(prompt + joiner + "red circle", add_special_tokens=False)["input_ids"][n:]
    assert adapter.encode_answer(" red circle ").tolist() == tail


def test_empty_question(tiny_adapter):
    with pytest.raises(InputError, match="empty"):
        tiny_adapter.prompt("   ")


def test_text_only_model_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlm_focus.models import load_adapter

    LlamaForCausalLM(
        LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50
        )
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="cannot take images"):
        load_adapter(str(tmp_path))
    with pytest.raises(ModelError, match="cannot load"):
        load_adapter(str(tmp_path / "missing"))


@pytest.mark.parametrize("family", VARIANTS)
def test_explain_end_to_end_from_the_saved_checkpoint(tiny, family, scene):
    lens = vlm_focus.load(
        str(tiny(family)[0]),
        method="igos++",
        device="cpu",
        iterations=1,
        ig_iter=2,
        size=8,
        alpha=-1e9,
        metric_steps=5,
        metric_grid=8,
        max_new_tokens=3,
    )
    image = scene.image.resize((80, 56))
    ex = lens.explain(image, scene.question)
    assert ex.heatmap.shape == (56, 80) and np.isfinite(ex.heatmap).all()
    assert np.isfinite(ex.scores["deletion"]) and np.isfinite(ex.scores["insertion"])


@pytest.mark.parametrize("family", VARIANTS)
def test_loading_options(tiny, family, scene):
    """bf16, eager attention and gradient checkpointing together: the scorer still gives
    finite float32 log-probabilities and a gradient in the pixels."""
    from vlm_focus.models import load_adapter

    adapter = load_adapter(
        str(tiny(family)[0]),
        device="cpu",
        dtype="bf16",
        attn_implementation="eager",
        gradient_checkpointing=True,
    )
    assert adapter.dtype == torch.bfloat16
    assert adapter.model.config._attn_implementation == "eager"
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=2)
    x = pixels[None].clone().requires_grad_(True)
    out = adapter.scorer(pixels, scene.question, answer)(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
