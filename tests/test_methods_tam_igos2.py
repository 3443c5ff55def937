"""TAM (causal subtraction, rank Gaussian filter, head activations on a toy adapter) and the
two-mask iGOS++ (heatmap combination, one hand-computed step, a toy run), by hand."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from vlm_focus.errors import InputError, MethodError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.igos2 import two_mask_heatmap
from vlm_focus.methods.tam import causal_subtract, denoise, rank_gaussian_filter
from vlm_focus.models.base import resize_map
from vlm_focus.models.custom import CustomAdapter


# ----- TAM: estimated causal inference ----------------------------------------------------
def test_causal_subtract_hand_values():
    own = torch.tensor([3.0, 1.0, 2.0])
    context = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    # Only the first context map has weight: I = [1, 0, 1], s = (3 + 2) / 2.
    out, s = causal_subtract(own, context, torch.tensor([1.0, 0.0]))
    assert s == pytest.approx(2.5)
    assert torch.allclose(out, torch.tensor([0.5, 1.0, 0.0]))
    # Equal weights: I = [.5, .5, .5], s = 3 / .75 = 4, own - 2 = [1, -1, 0] -> ReLU.
    out, s = causal_subtract(own, context, torch.tensor([2.0, 2.0]))
    assert s == pytest.approx(4.0)
    assert torch.allclose(out, torch.tensor([1.0, 0.0, 0.0]))
    # Negative weights count as 0; no usable context leaves ReLU(own).
    own_neg = torch.tensor([3.0, -1.0, 2.0])
    for ctx, w in [(context, torch.tensor([-1.0, 0.0])), (torch.zeros(0, 3), torch.zeros(0))]:
        out, s = causal_subtract(own_neg, ctx, w)
        assert s == 0.0 and torch.equal(out, torch.tensor([3.0, 0.0, 2.0]))


# ----- TAM: rank Gaussian filter -----------------------------------------------------------
def test_rank_gaussian_filter_hand_value():
    x = np.zeros((3, 3))
    x[0, 0] = 9.0
    # Centre window = the whole array: sorted [0 x 8, 9], mean 1, std sqrt(9 - 1) = sqrt(8),
    # so sigma^2 = 8 and the 9 (rank offset +4) gets weight e^(-16/16) over the sum.
    total = 1 + 2 * sum(math.exp(-(r**2) / 16) for r in (1, 2, 3, 4))
    out = rank_gaussian_filter(x, 3)
    assert out[1, 1] == pytest.approx(9 * math.exp(-1) / total)
    # sigma = 0: the median (0 here); an all-zero window with adaptive sigma gives 0.
    assert rank_gaussian_filter(x, 3, sigma=0)[1, 1] == 0.0
    assert np.all(rank_gaussian_filter(np.zeros((4, 4)), 3) == 0)
    # A constant map stays constant (std 0: the median).
    assert np.allclose(rank_gaussian_filter(np.full((4, 5), 2.5), 3), 2.5)


def test_rank_gaussian_filter_agrees_with_scipy():
    rng = np.random.default_rng(0)
    x = rng.random((6, 7))
    # sigma 0 is scipy's median filter, a huge sigma its mean filter (numpy "reflect" = scipy "mirror").
    assert np.allclose(rank_gaussian_filter(x, 3, sigma=0), ndimage.median_filter(x, size=3, mode="mirror"))
    assert np.allclose(
        rank_gaussian_filter(x, 3, sigma=1e6), ndimage.uniform_filter(x, size=3, mode="mirror")
    )

    def window(values):  # the adaptive filter, one window at a time
        v = np.sort(values)
        sigma = v.std() / v.mean()
        w = np.exp(-((np.arange(len(v)) - len(v) // 2) ** 2) / (2 * sigma**2))
        return float((v * w).sum() / w.sum())

    for size in (3, 5):
        expected = ndimage.generic_filter(x, window, size=size, mode="mirror")
        assert np.allclose(rank_gaussian_filter(x, size), expected)


def test_rank_gaussian_filter_errors_and_identity():
    x = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(rank_gaussian_filter(x, 1), x)
    with pytest.raises(InputError, match="odd"):
        rank_gaussian_filter(x, 4)
    with pytest.raises(InputError, match="2-D"):
        rank_gaussian_filter(np.zeros(4), 3)


def test_denoise_runs_on_the_token_grid():
    grid = torch.tensor(
        [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.3, 0.9, 0.4], [0.1, 0.0, 0.5, 0.7]]
    )
    heat = grid.repeat_interleave(8, 0).repeat_interleave(8, 1)  # 32 x 32, 16 tokens of 8 x 8 px
    expected = resize_map(torch.from_numpy(rank_gaussian_filter(grid.numpy(), 3)).float(), 32, 32)
    assert torch.allclose(denoise(heat, 16, 3, None), expected, atol=1e-6)
    assert torch.equal(denoise(heat, 16, 1, None), heat)


# ----- TAM on a toy adapter: logits set by hand -------------------------------------------
IMAGE, BOS, PRE = 7, 6, 5
# BOS, a text token before the image, 4 image tokens, the question (3, 4), the answer (1, 2, 0).
IDS = [BOS, PRE, IMAGE, IMAGE, IMAGE, IMAGE, 3, 4, 1, 2, 0]
START = 8


class ToyTokenizer:
    all_special_ids = [BOS]


class ToyHeadAdapter:
    """Identity LM head over 8 classes, so the hidden states *are* the logits."""

    name = "toy-head"
    device = torch.device("cpu")
    tokenizer = ToyTokenizer()

    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden
        self.model = nn.Module()
        head = nn.Linear(8, 8, bias=False)
        with torch.no_grad():
            head.weight.copy_(torch.eye(8))
        self.model.get_output_embeddings = lambda: head

    def image_token_mask(self, ids):
        return ids == IMAGE

    def cast(self, inputs):
        return inputs

    def preprocess(self, pixels):
        return {"pixel_values": pixels}

    def hidden_states(self, ids, inputs):
        return self.hidden[None]

    def image_tokens_to_pixels(self, values, pixels):  # the 4 tokens on a 2 x 2 grid
        return resize_map(values.reshape(2, 2), *pixels.shape[-2:])


class ToyScorer:
    batch_size = 2
    input_ids = torch.tensor([IDS])
    answer_ids = torch.tensor(IDS[START:])


def toy_hidden() -> torch.Tensor:
    h = torch.zeros(len(IDS), 8)
    img = [2, 3, 4, 5]
    h[img, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])  # answer token 2 (id 0)
    h[img, 1] = torch.tensor([2.0, -1.0, 1.0, 3.0])  # answer token 0 (id 1); -1 is cut by ReLU
    h[img, 2] = torch.tensor([1.0, 4.0, 0.0, 2.0])  # answer token 1 (id 2)
    h[img, 3] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # question token at position 6 (id 3)
    h[img, 4] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # question token at position 7 (id 4)
    h[6, 1], h[6, 2], h[7, 2] = 2.0, 1.0, 1.0  # relevances of the question tokens
    h[7, 0], h[8, 0] = -1.0, 2.0  # for answer token 2: position 7 -> 0, answer token 0 -> 2
    return h


def toy_target(selected=(0, 1, 2)):
    return Target(ToyScorer(), list(selected), ToyHeadAdapter(toy_hidden()))


def test_tam_token_values_by_hand():
    values = get_method("tam").token_values(toy_target(), torch.zeros(3, 4, 4))
    # t=0 (id 1): context = the token at 6 (state 7 predicts a_0): I = [1,0,1,0], s = 3/2.
    # t=1 (id 2): context 6, 7 with weights 1, 1: I = [.5,.5,.5,0], s = 2.5 / .75 = 10/3.
    # t=2 (id 0): context 6, 7, 8 with weights 0, 0, 2: I = [2,0,1,3], s = 11/14.
    expected = torch.tensor(
        [[0.5, 0.0, 0.0, 3.0], [0.0, 4 - 5 / 3, 0.0, 2.0], [0.0, 1.0, 2 - 11 / 14, 3 - 33 / 14]]
    )
    assert torch.allclose(values, expected, atol=1e-6)
    plain = get_method("tam", causal=False).token_values(toy_target(), torch.zeros(3, 4, 4))
    assert torch.equal(plain, torch.tensor([[2.0, 0, 1, 3], [1, 4, 0, 2], [0, 1, 2, 3]]))
    # Only the selected tokens, in their order.
    one = get_method("tam").token_values(toy_target([2]), torch.zeros(3, 4, 4))
    assert torch.allclose(one, expected[2:], atol=1e-6)


def test_tam_context_positions():
    tam, adapter = get_method("tam"), ToyHeadAdapter(toy_hidden())
    ids, image = torch.tensor(IDS), torch.tensor(IDS) == IMAGE
    assert tam._context_positions(adapter, ids, image, START) == [6, 7]
    tam_all = get_method("tam", context="all")
    assert tam_all._context_positions(adapter, ids, image, START) == [1, 6, 7]  # BOS is special


def test_tam_maps_and_heatmap():
    tam = get_method("tam", filter_size=1)
    pixels = torch.zeros(3, 4, 4)
    maps = tam.token_maps(toy_target(), pixels)
    assert maps.shape == (3, 4, 4) and float(maps.min()) >= 0 and float(maps.max()) == pytest.approx(1.0)
    # Filter off: each map is its normalised token values, resized (tokens on a 2 x 2 grid).
    v = torch.tensor([0.5, 0.0, 0.0, 3.0]) / 3
    expected = resize_map(v.reshape(2, 2), 4, 4)
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert torch.allclose(maps[0], expected, atol=1e-6)
    heat = tam.explain(toy_target(), pixels, pixels)
    mean = maps.mean(0)
    assert torch.allclose(heat, (mean - mean.min()) / (mean.max() - mean.min()), atol=1e-6)
    assert get_method("tam").explain(toy_target(), pixels, pixels).shape == (4, 4)


def test_tam_option_errors():
    for bad in [{"context": "prompt"}, {"filter_size": 2}, {"filter_size": -1}, {"sigma": -1.0}]:
        with pytest.raises(InputError, match="tam"):
            get_method("tam", **bad)


def test_tam_refuses_a_custom_adapter_without_hidden_states():
    def make(**extra):
        return CustomAdapter(
            preprocess_fn=lambda px: {"x": px},
            logits_fn=lambda ids, inputs: torch.zeros(ids.shape[0], ids.shape[1], 10),
            tokenizer=ToyTokenizer(),
            prompt_fn=lambda question, pixels: [1, 9, 2],
            model=nn.Linear(2, 2),
            **extra,
        )

    pixels = torch.zeros(3, 8, 8)
    for adapter in (make(), make(image_token_id=9)):  # no image-token id; no hidden states
        target = Target(adapter.scorer(pixels, "q?", torch.tensor([4])), [0], adapter)
        with pytest.raises(MethodError, match="tam"):
            get_method("tam").explain(target, pixels, pixels)
    with pytest.raises(MethodError, match="tam"):
        get_method("tam").explain(Target(ToyScorer(), [0]), pixels, pixels)


# ----- two-mask iGOS++ ------------------------------------------------------------------------
class LinearScorer:
    """log P of one 'token' = sum of pixels times a weight (linear in the pixels)."""

    batch_size = 4

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    def __call__(self, pixels):
        return (pixels * self.weight).sum(dim=(1, 2, 3))[:, None]


def square_weight(h=16, w=16, box=(4, 8, 4, 8)):
    wgt = torch.zeros(3, h, w)
    wgt[:, box[0] : box[1], box[2] : box[3]] = 1.0
    return wgt


def test_two_mask_heatmap_hand_value():
    d = torch.tensor([[[[1.0, 0.5], [0.0, 1.0]]]])
    n = torch.tensor([[[[1.0, 1.0], [0.5, 0.5]]]])
    assert torch.allclose(two_mask_heatmap(d, n, (2, 2)), torch.tensor([[0.0, 0.5], [1.0, 0.5]]))


def test_igos2_first_step_by_hand():
    # Linear f, masks on the pixel grid, no noise or regulariser. With D = N = 1 and the mean
    # alpha over 2 points .75, the mask gradient of f(Phi(I, B, aM)) is g = .75 * sum_c w (I - B)
    # = 2.25 in the square; the insertion terms give -g. D: (2g [product, both terms] + g) / 2,
    # N: (2g - (-g)) / 2, so one step of lr .1 gives D = N = 1 - .1 * 1.5 * 2.25 there.
    target = Target(LinearScorer(square_weight()), [0])
    image, base = torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
    options = dict(size=16, iterations=1, ig_iter=2, noise=0.0, lr=0.1, l1=0.0, l2=0.0, l3=0.0)
    method = get_method("igos2", **options)
    heat = method.explain(target, image, base)
    m = 1 - 0.1 * 1.5 * 2.25
    d, n = method.masks
    assert torch.allclose(d[0, 0, 4:8, 4:8], torch.full((4, 4), m))
    assert torch.allclose(n, d)
    assert float(d.sum()) == pytest.approx(16 * 16 - 16 * (1 - m))
    assert torch.allclose(heat[4:8, 4:8], torch.full((4, 4), 1 - m * m))
    assert float(heat.sum()) == pytest.approx(16 * (1 - m * m))
    t = method.trace[0]
    assert t["f_deletion"] == pytest.approx(0.75 * 48) and t["f_product_deletion"] == pytest.approx(0.75 * 48)
    assert t["f_insertion"] == pytest.approx(48 - 0.75 * 48)


def test_igos2_finds_the_square():
    # lr 1: on this toy the default lr 10 overshoots (the regulariser moves both masks, so the
    # product twice as fast as igos++'s single mask) and the masks oscillate.
    wgt = square_weight(32, 32, (8, 16, 20, 28)) * 0.05
    target = Target(LinearScorer(wgt), [0])
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    heat = get_method("igos2", size=8, iterations=5, ig_iter=4, noise=0.0, lr=1.0).explain(
        target, image, torch.zeros(3, 32, 32)
    )
    assert heat.shape == (32, 32) and 0 <= float(heat.min()) and float(heat.max()) <= 1
    inside = heat[8:16, 20:28].mean()
    outside = torch.cat([heat[:8].flatten(), heat[16:].flatten()]).mean()
    assert inside > outside + 0.3


def test_igos2_nan_is_a_clear_error():
    class NaNScorer(LinearScorer):
        def __call__(self, pixels):
            return super().__call__(pixels) * float("nan")

    target = Target(NaNScorer(square_weight()), [0])
    with pytest.raises(MethodError, match="igos2: non-finite"):
        get_method("igos2", size=4, iterations=1, ig_iter=2).explain(
            target, torch.ones(3, 16, 16), torch.zeros(3, 16, 16)
        )
