import pytest
import torch

from vlm_focus.baselines import blur_kernel_size, gaussian_blur, make_baseline
from vlm_focus.errors import InputError


def test_kernel_rule_follows_reference():
    assert blur_kernel_size(64) == 101
    assert blur_kernel_size(499) == 101
    assert blur_kernel_size(500) == 201
    assert blur_kernel_size(800) == 301
    assert blur_kernel_size(2000) == 501


def test_blur_keeps_constant_and_mean():
    x = torch.full((3, 40, 30), 0.25)
    assert torch.allclose(make_baseline("blur", x), x, atol=1e-6)


def test_blur_flattens_small_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 64, 64, generator=g)
    b = make_baseline("blur", x)
    assert b.shape == x.shape
    assert float(b.std(dim=(1, 2)).max()) < 0.02  # near the flat mean-colour image
    assert torch.allclose(b.mean(dim=(1, 2)), x.mean(dim=(1, 2)), atol=0.02)


def test_gaussian_blur_hand_value():
    # A 1-D impulse blurred with kernel 3, sigma 1: weights e^-0.5 : 1 : e^-0.5, normalised.
    x = torch.zeros(3, 5, 5)
    x[:, 2, 2] = 1.0
    out = gaussian_blur(x, 3, 1.0)
    w = torch.tensor([0.6065307, 1.0, 0.6065307])
    w = w / w.sum()
    assert float(out[0, 2, 2]) == pytest.approx(float(w[1] * w[1]), abs=1e-6)
    assert float(out[0, 1, 2]) == pytest.approx(float(w[0] * w[1]), abs=1e-6)


def test_blur_kernel_wider_than_image():
    x = torch.rand(3, 9, 9, generator=torch.Generator().manual_seed(1))
    out = gaussian_blur(x, 51, 50.0)
    assert torch.isfinite(out).all() and out.shape == x.shape


def test_blank_noise_and_unknown():
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(make_baseline("blank", x)[:, 0, 0], x.mean(dim=(1, 2)))
    assert torch.equal(make_baseline("noise", x, seed=3), make_baseline("noise", x, seed=3))
    with pytest.raises(InputError, match="unknown baseline"):
        make_baseline("sepia", x)
