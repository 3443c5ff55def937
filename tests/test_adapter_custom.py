"""CustomAdapter on a toy two-encoder model (Mini-Gemini in miniature): the runnable version
of docs/custom_models.md."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vlm_focus
from vlm_focus.errors import InputError, ModelError
from vlm_focus.images import to_tensor
from vlm_focus.models.custom import CustomAdapter

MEAN, STD = (
    torch.tensor([0.48, 0.46, 0.41]).view(1, 3, 1, 1),
    torch.tensor([0.27, 0.26, 0.28]).view(1, 3, 1, 1),
)


class PatchEncoder(nn.Module):
    """Image ``[B, 3, S, S]`` -> tokens ``[B, (S / 4)^2, D]``, row-major (a one-layer "ViT")."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ToyTwoEncoderVLM(nn.Module):
    """Low-resolution encoder (16 px) + high-resolution encoder (32 px), fused per token as
    Mini-Gemini mines high-resolution detail for each low-resolution token; the tokens are
    spliced into the text at the ``<image>`` placeholder (LLaVA-style), so the output has
    ``L + n_tokens - 1`` positions."""

    def __init__(self, vocab: int, image_id: int, stop_ids: list[int], dim: int = 32) -> None:
        super().__init__()
        self.image_id = image_id
        self.low, self.aux = PatchEncoder(dim), PatchEncoder(dim)
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(256, dim) * 0.02)
        self.block = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, vocab)
        with torch.no_grad():
            self.head.bias[stop_ids] = -10.0  # a random model would often stop at once

    def image_tokens(self, images: torch.Tensor, images_aux: torch.Tensor) -> torch.Tensor:
        low = self.low(images)  # [B, 16, D] on a 4x4 grid
        aux = self.aux(images_aux).transpose(1, 2).unflatten(2, (8, 8))  # [B, D, 8, 8]
        return low + F.avg_pool2d(aux, 2).flatten(2).transpose(1, 2)  # 2x2 high-res patches per token

    def forward(
        self, input_ids: torch.Tensor, images: torch.Tensor, images_aux: torch.Tensor
    ) -> torch.Tensor:
        where = int((input_ids[0] == self.image_id).nonzero()[0])
        text = self.embed(input_ids)
        x = torch.cat([text[:, :where], self.image_tokens(images, images_aux), text[:, where + 1 :]], dim=1)
        x = x + self.pos[: x.shape[1]]
        causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.head(self.block(x, src_mask=causal, is_causal=True))


def two_resolutions(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """One image, two encoders: each input is a differentiable resize of the same pixels."""
    low = F.interpolate(pixels, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    high = F.interpolate(pixels, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    return {"images": (low - MEAN) / STD, "images_aux": (high - MEAN) / STD}


@pytest.fixture(scope="module")
def toy():
    from common import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = ToyTwoEncoderVLM(
        len(tok), tok.convert_tokens_to_ids("<image>"), [tok.eos_token_id, tok.pad_token_id]
    )

    def prompt_fn(question, pixels):
        return tok(f"USER: <image>\n{question} ASSISTANT:", add_special_tokens=False)["input_ids"]

    def full_logits(input_ids, inputs):  # all positions, aligned with input_ids
        return model(input_ids, **inputs)[:, -input_ids.shape[1] :]

    common = dict(
        tokenizer=tok,
        prompt_fn=prompt_fn,
        model=model,
        name="toy-mgm",
        image_token_id=model.image_id,
        vision_layers=[model.low],
        vision_grid_fn=lambda px: (4, 4),
    )
    return {"model": model, "tok": tok, "full": CustomAdapter(two_resolutions, full_logits, **common)}


def test_scorer_equals_full_forward(toy, scene):
    adapter, model = toy["full"], toy["model"]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=4)
    scorer = adapter.scorer(pixels, scene.question, answer)
    with torch.no_grad():
        ours = scorer(pixels[None])[0]
        ids = scorer.input_ids
        logits = model(ids, **two_resolutions(pixels[None]))[0]
        shift = logits.shape[0] - ids.shape[1]  # 16 image tokens replace one placeholder
        full = logits.log_softmax(-1)[scorer.positions + shift].gather(-1, answer.view(-1, 1))[:, 0]
    assert shift == 15 and ours.shape == (len(answer),)
    assert torch.allclose(ours, full, atol=1e-5)


def test_logits_at_positions_only_agree_with_full_logits(toy, scene):
    model = toy["model"]

    def at_positions(input_ids, inputs, positions):  # the cheap form: the head at T positions
        where = int((input_ids[0] == model.image_id).nonzero()[0])
        text = model.embed(input_ids)
        tokens = model.image_tokens(inputs["images"], inputs["images_aux"])
        x = (
            torch.cat([text[:, :where], tokens, text[:, where + 1 :]], dim=1)
            + model.pos[: input_ids.shape[1] + 15]
        )
        causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        hidden = model.block(x, src_mask=causal, is_causal=True)
        return model.head(hidden[:, positions + tokens.shape[1] - 1])

    cheap = CustomAdapter(two_resolutions, at_positions, toy["tok"], toy["full"].prompt_fn, model=model)
    pixels = to_tensor(scene.image)
    answer = toy["full"].generate(pixels, scene.question, max_new_tokens=4)
    with torch.no_grad():
        a = toy["full"].scorer(pixels, scene.question, answer)(pixels[None])
        b = cheap.scorer(pixels, scene.question, answer)(pixels[None])
    assert torch.allclose(a, b, atol=1e-5)


def test_one_mask_reaches_both_encoders(toy, scene):
    adapter = toy["full"]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=3)
    scorer = adapter.scorer(pixels, scene.question, answer)
    x = pixels[None].clone().requires_grad_(True)
    inputs = adapter.preprocess(x)
    logits = adapter.answer_logits(scorer.input_ids, inputs, scorer.positions)
    score = logits.log_softmax(-1).gather(-1, answer.view(1, -1, 1)).sum()
    g_low, g_high, g_px = torch.autograd.grad(score, [inputs["images"], inputs["images_aux"], x])
    assert float(g_low.abs().sum()) > 0 and float(g_high.abs().sum()) > 0 and float(g_px.abs().sum()) > 0


def test_batches_and_generation(toy, scene):
    adapter = toy["full"]
    pixels = to_tensor(scene.image)
    answer = adapter.generate(pixels, scene.question, max_new_tokens=5)
    assert 1 <= len(answer) <= 5 and torch.equal(
        answer, adapter.generate(pixels, scene.question, max_new_tokens=5)
    )
    scorer = adapter.scorer(pixels, scene.question, answer, batch_size=2)
    batch = torch.stack([pixels, pixels * 0.5, pixels.flip(-1)])
    with torch.no_grad():
        assert torch.allclose(scorer(batch), torch.cat([scorer(b[None]) for b in batch]), atol=1e-5)
    own = CustomAdapter(
        two_resolutions,
        toy["full"].logits_fn,
        toy["tok"],
        toy["full"].prompt_fn,
        generate_fn=lambda px, q, n: [7, 8, toy["tok"].eos_token_id, 9],
        model=toy["model"],
    )
    assert own.generate(pixels, scene.question).tolist() == [7, 8]


def test_user_errors_are_clear(toy, scene):
    adapter, tok = toy["full"], toy["tok"]
    pixels = to_tensor(scene.image)
    with pytest.raises(InputError, match="empty"):
        adapter.prompt_ids(pixels, "  ")
    with pytest.raises(InputError, match="callable"):
        CustomAdapter(None, adapter.logits_fn, tok, adapter.prompt_fn)
    bad = CustomAdapter(lambda px: [px], adapter.logits_fn, tok, adapter.prompt_fn, model=toy["model"])
    with pytest.raises(ModelError, match="dict of tensors"):
        bad.preprocess(pixels[None])
    short = CustomAdapter(
        two_resolutions,
        lambda ids, inputs: adapter.logits_fn(ids, inputs)[:, :-1],
        tok,
        adapter.prompt_fn,
        model=toy["model"],
    )
    with pytest.raises(ModelError, match="positions"):
        short.generate(pixels, scene.question)
    numpy_prep = CustomAdapter(
        lambda px: two_resolutions(torch.from_numpy(px.detach().numpy())),
        adapter.logits_fn,
        tok,
        adapter.prompt_fn,
        model=toy["model"],
    )
    scorer = numpy_prep.scorer(pixels, scene.question, torch.tensor([5, 6]))
    with pytest.raises(ModelError, match="gradient"):
        scorer(pixels[None].clone().requires_grad_(True))


def test_explain_end_to_end(toy, scene):
    lens = vlm_focus.Lens(
        toy["full"],
        method="igos++",
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
    assert np.isfinite(ex.heatmap).all() and ex.selected and ex.model == "toy-mgm"


def test_gradcam_through_the_hook_points(toy, scene):
    lens = vlm_focus.Lens(toy["full"], method="gradcam", alpha=-1e9, metrics=False, max_new_tokens=3)
    ex = lens.explain(scene.image, scene.question)
    assert ex.heatmap.shape == (scene.image.height, scene.image.width)
    assert not toy["model"].low._forward_hooks  # scoped hooks removed
