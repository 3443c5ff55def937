"""Grad-CAM, T-MM and IIA on toy modules, checked against values computed by hand
(or by an independent autograd path), and their MethodErrors."""

import pytest
import torch
import torch.nn.functional as F
from fakes import FnScorer
from torch import nn

from vlm_focus.errors import InputError, MethodError
from vlm_focus.methods import Target, get_method
from vlm_focus.methods.base import normalize_map
from vlm_focus.methods.gradcam import gradcam_patches
from vlm_focus.methods.tmm import rollout, window_cam
from vlm_focus.models.base import Adapter


# ----- toy models ------------------------------------------------------------------------
class ToyAttention(nn.Module):
    """Two-head self-attention returning ``(out, probs)`` like a Hugging Face eager module."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.q, self.k, self.heads = nn.Linear(dim, dim), nn.Linear(dim, dim), heads

    def forward(self, x):
        B, N, D = x.shape
        split = lambda t: t.view(B, N, self.heads, D // self.heads).transpose(1, 2)  # noqa: E731
        a = (split(self.q(x)) @ split(self.k(x)).transpose(-1, -2)).softmax(-1)
        return (a @ split(x)).transpose(1, 2).reshape(B, N, D), a


class ToyBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.attn, self.mlp = ToyAttention(dim), nn.Linear(dim, dim)

    def forward(self, x):
        x = x + self.attn(x)[0]
        return x + torch.tanh(self.mlp(x))


class ToyViT(nn.Module):
    """Image -> 2x2 grid of mean-pooled patches, a class token, two blocks."""

    def __init__(self, dim: int = 4, grid: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.grid, self.embed = grid, nn.Linear(3, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.layers = nn.ModuleList([ToyBlock(dim), ToyBlock(dim)])
        self.readout = torch.randn(dim)
        self.requires_grad_(False)

    def tokens(self, pixels):
        patches = F.adaptive_avg_pool2d(pixels, self.grid).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(len(pixels), -1, -1), self.embed(patches)], 1)

    def forward(self, pixels):
        x = self.tokens(pixels)
        for layer in self.layers:
            x = layer(x)
        return x


class ToyAdapter:
    name = "toy"

    def __init__(self, model):
        self.model = model

    def vision_layers(self):
        return list(self.model.layers)

    def vision_grid(self, pixels):
        return self.model.grid, self.model.grid

    def patch_tokens(self, hidden):
        return hidden[:, 1:]

    def grid_to_pixels(self, grid_map, height, width):
        return F.interpolate(grid_map[None, None], size=(height, width), mode="nearest")[0, 0]

    patches_to_pixels = Adapter.patches_to_pixels  # one grid: the default mapping


def vit_target():
    vit = ToyViT()
    return Target(FnScorer(lambda p: vit(p)[:, 0] @ vit.readout), [0], ToyAdapter(vit)), vit


def no_hooks(model):
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


# ----- Grad-CAM ----------------------------------------------------------------------------
class LinearTokens(nn.Module):
    """Each pixel of a 2x2 image is a token (3 channels); a zero class token in front."""

    grid = 2

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2, bias=False)
        self.layer.weight.data = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        self.layers = [self.layer]

    def forward(self, pixels):
        tokens = pixels.flatten(2).transpose(1, 2)
        return self.layer(torch.cat([torch.zeros_like(tokens[:, :1]), tokens], 1))  # [B, 5, 2]


def test_gradcam_hand_value():
    model = LinearTokens()
    u, v = torch.tensor([5.0, 1.0, 2.0, 3.0, 2.0]), torch.tensor([1.0, -2.0])
    target = Target(FnScorer(lambda p: (model(p) @ v) @ u), [0], ToyAdapter(model))
    # tokens row-major: (1,0,0), (.5,.5,0), (0,0,1), (1,1,1) -> A = (1,0), (.5,.5), (0,-1), (1,0)
    pixels = torch.tensor([[1.0, 0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]).view(3, 2, 2)
    # dF/dA_t = u_t v; mean over the 4 patch tokens (class token excluded) -> w = 2 v = (2, -4)
    # w . A = 2, -1, 4, 2 -> ReLU -> 2, 0, 4, 2
    cam = gradcam_patches(target, pixels, model.layer)
    assert torch.allclose(cam, torch.tensor([2.0, 0.0, 4.0, 2.0]))
    heat = get_method("gradcam").explain(target, pixels, torch.zeros_like(pixels))
    assert torch.allclose(heat, torch.tensor([[0.5, 0.0], [1.0, 0.5]]))
    assert no_hooks(model.layer)


def test_gradcam_errors():
    target, vit = vit_target()
    x = torch.rand(3, 8, 8)
    with pytest.raises(InputError, match="layer"):
        get_method("gradcam", layer=5).explain(target, x, x)

    def first_layer_only(p):  # like LLaVA-1.5: the last layer runs, its output is not read
        h = vit.layers[0](vit.tokens(p))
        vit.layers[1](h)
        return h[:, 0] @ vit.readout

    unused = Target(FnScorer(first_layer_only), [0], ToyAdapter(vit))
    with pytest.raises(MethodError, match="does not reach"):
        get_method("gradcam", layer=-1).explain(unused, x, x)
    with pytest.raises(MethodError, match="adapter"):
        get_method("gradcam").explain(Target(target.scorer, [0]), x, x)

    class NoLayers(ToyAdapter):
        def vision_layers(self):
            raise NotImplementedError("NoLayers exposes no vision layers")

    with pytest.raises(MethodError, match="no vision layers"):
        get_method("gradcam").explain(Target(target.scorer, [0], NoLayers(vit)), x, x)
    assert no_hooks(vit)


# ----- T-MM and IIA --------------------------------------------------------------------------
def test_rollout_hand_value():
    # Layer 1: head products [[.4, 0], [.2, .2]] and [[0, -.2], [.2, .6]] -> ReLU, mean:
    # Abar1 = [[.2, 0], [.2, .4]]. Layer 2: one head [[0, .5], [0, 0]] -> Abar2 = [[0, .5], [0, 0]].
    a1, g1 = (
        torch.tensor([[[0.8, 0.2], [0.4, 0.4]], [[0.5, 0.5], [0.5, 0.5]]]),
        torch.tensor([[[0.5, 0.0], [0.5, 0.5]], [[0.0, -0.4], [0.4, 1.2]]]),
    )
    a2, g2 = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]]), torch.tensor([[[0.0, 1.0], [-1.0, 3.0]]])
    # (I + Abar2)(I + Abar1) = [[1, .5], [0, 1]] @ [[1.2, 0], [.2, 1.4]] = [[1.3, .7], [.2, 1.4]]
    expected = torch.tensor([[1.3, 0.7], [0.2, 1.4]])
    c1, c2 = (g1 * a1)[None], (g2 * a2)[None]  # one encoder input
    assert torch.allclose(rollout([c1, c2]), expected[None])
    assert torch.allclose(rollout([c1, None]), torch.tensor([[[1.2, 0.0], [0.2, 1.4]]]))
    # Two inputs (crops) roll out separately: the second has the layers' products swapped,
    # Abar1' = [[0, .5], [0, 0]] (the head repeated) and Abar2' = [[.2, 0], [.2, .4]]:
    # (I + Abar2')(I + Abar1') = [[1.2, 0], [.2, 1.4]] @ [[1, .5], [0, 1]] = [[1.2, .6], [.2, 1.5]].
    two = rollout([torch.cat([c1, c2.expand(1, 2, 2, 2)]), torch.cat([c2[:, :1].expand(1, 2, 2, 2), c1])])
    assert torch.allclose(two[0], expected)
    assert torch.allclose(two[1], torch.tensor([[1.2, 0.6], [0.2, 1.5]]))


def test_window_cam_puts_windows_on_the_diagonal_and_sums_images():
    # Two images of 3 tokens each, windows of 2 + 1 tokens per image, one head.
    windows = [torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1), torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)]
    cams = [torch.full((1, 1, 2, 2), 1.0), None, torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 1, 1), 5.0)]
    expected = torch.tensor([[3.0, 3.0, 0.0], [3.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    assert torch.equal(window_cam(windows, cams, 2, "tmm"), expected[None, None])
    with pytest.raises(MethodError, match="window"):
        window_cam(windows, cams, 4, "tmm")


def test_tmm_matches_an_independent_autograd_path():
    target, vit = vit_target()
    pixels = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    heat = get_method("tmm").explain(target, pixels, torch.zeros_like(pixels))
    # Same model, attention kept with retain_grad, explicit product (I + Abar2)(I + Abar1).
    x = vit.tokens(pixels[None].clone().requires_grad_(True))
    probs = []
    for layer in vit.layers:
        out, a = layer.attn(x)
        a.retain_grad()
        probs.append(a)
        x = x + out
        x = x + torch.tanh(layer.mlp(x))
    (x[:, 0] @ vit.readout).sum().backward()
    bars = [torch.relu(a.grad[0] * a[0].detach()).mean(0) for a in probs]
    eye = torch.eye(5)
    r = (eye + bars[1]) @ (eye + bars[0])
    expected = normalize_map(F.interpolate(r[0, 1:].view(1, 1, 2, 2), size=(8, 8), mode="nearest")[0, 0])
    assert torch.allclose(heat, expected, atol=1e-5)
    assert heat.max() == 1 and no_hooks(vit)
    patches = get_method("tmm", rows="patches").explain(target, pixels, torch.zeros_like(pixels))
    rows = normalize_map(F.interpolate(r[1:, 1:].mean(0).view(1, 1, 2, 2), size=(8, 8), mode="nearest")[0, 0])
    assert torch.allclose(patches, rows, atol=1e-5) and not torch.allclose(patches, heat, atol=1e-3)
    with pytest.raises(InputError, match="rows"):
        get_method("tmm", rows="all").explain(target, pixels, pixels)


def test_iia_one_point_is_tmm_and_batching_does_not_matter():
    target, vit = vit_target()
    pixels = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    base = torch.full_like(pixels, 0.5)
    tmm = get_method("tmm").explain(target, pixels, base)
    assert torch.allclose(get_method("iia", steps=1).explain(target, pixels, base), tmm)
    one = get_method("iia", steps=4, batch_size=1).explain(target, pixels, base)
    four = get_method("iia", steps=4, batch_size=4).explain(target, pixels, base)
    assert torch.allclose(one, four, atol=1e-5) and not torch.allclose(one, tmm)
    with pytest.raises(InputError, match="steps"):
        get_method("iia", steps=0).explain(target, pixels, base)


def test_tmm_needs_attention_layers():
    class ConvNet(nn.Module):
        grid = 2

        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1)])

    net = ConvNet()
    target = Target(FnScorer(lambda p: net.layers[0](p).sum((1, 2, 3))), [0], ToyAdapter(net))
    for name in ("tmm", "iia"):
        with pytest.raises(MethodError, match="transformer"):
            get_method(name).explain(target, torch.rand(3, 8, 8), torch.zeros(3, 8, 8))
