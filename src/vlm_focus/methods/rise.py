"""RISE (Petsiuk, Das & Saenko, BMVC 2018): randomised input sampling, black-box.

``N`` random binary masks on a ``grid x grid`` lattice (each cell kept with probability
``p``) are upsampled bilinearly to ``(grid + 1)`` cells and cropped at a random shift, then
``Phi(I, B, m) = I * m + B * (1 - m)`` (paper Eq. 3) is scored with ``f``;
``saliency = sum_i w_i m_i / (N p)``.

Weights: ``f`` is a log-probability sum, so it cannot weigh masks directly (it is negative).
``score="prob"`` (default) uses the joint probability of the selected tokens ``exp(f)``, as
RISE uses class probabilities; it is computed as ``exp(f - running max)`` so that it never
underflows: a constant factor, which the final normalisation removes. ``score="delta"``
uses ``f - f(baseline)`` instead (log-likelihood gain; may be negative).

Where we differ from Petsiuk et al.: masked-out pixels show the baseline (blur by default)
instead of zeros; masks are drawn and scored ``batch_size`` at a time from a seeded
generator (memory stays at one batch of masks); the heatmap is normalised to [0, 1].

Example::

    lens = vlm_focus.load("shapes-llava", method="rise", n_masks=500, grid=8)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError, MethodError
from .base import Method, Target, normalize_map, register_method
from .compose import phi


def rise_masks(
    n: int, grid: int, p: float, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` RISE masks ``[n, 1, height, width]`` in [0, 1]."""
    ch, cw = math.ceil(height / grid), math.ceil(width / grid)
    cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
    up = F.interpolate(cells, size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear", align_corners=False)
    dy = torch.randint(0, ch, (n,), generator=generator)
    dx = torch.randint(0, cw, (n,), generator=generator)
    return torch.stack([up[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(zip(dy, dx))])


@register_method("rise")
class RISE(Method):
    """Black-box saliency from randomly masked images."""

    needs_gradients = False
    black_box = True

    @classmethod
    def defaults(cls) -> dict:
        return {"n_masks": 500, "grid": 8, "p": 0.5, "seed": 0, "score": "prob", "batch_size": None}

    def _check(self) -> None:
        o = self.options
        if not isinstance(o["n_masks"], int) or o["n_masks"] < 1:
            raise InputError(f"rise: n_masks must be a positive int, got {o['n_masks']!r}")
        if not isinstance(o["grid"], int) or o["grid"] < 1:
            raise InputError(f"rise: grid must be a positive int, got {o['grid']!r}")
        if not 0 < o["p"] < 1:
            raise InputError(f"rise: p must be in (0, 1), got {o['p']!r}")
        if o["score"] not in ("prob", "delta"):
            raise InputError(f"rise: score must be 'prob' or 'delta', got {o['score']!r}")

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        self._check()
        o = self.options
        H, W = pixels.shape[-2:]
        batch = int(o["batch_size"] or target.batch_size)
        gen = torch.Generator().manual_seed(int(o["seed"]))
        baseline = baseline.to(pixels)
        acc = torch.zeros(H, W, dtype=torch.float64)
        top = -math.inf  # running max of f, for score="prob"
        with torch.no_grad():
            f_base = float(target.f(baseline[None])[0]) if o["score"] == "delta" else 0.0
            for start in range(0, o["n_masks"], batch):
                masks = rise_masks(min(batch, o["n_masks"] - start), o["grid"], o["p"], H, W, gen)
                f = target.f(phi(pixels[None], baseline[None], masks.to(pixels))).double().cpu()
                if not torch.isfinite(f).all():
                    raise MethodError("rise: the model's scores are not finite")
                if o["score"] == "delta":
                    w = f - f_base
                else:
                    new_top = max(top, float(f.max()))
                    acc *= math.exp(top - new_top) if top > -math.inf else 1.0
                    top, w = new_top, (f - new_top).exp()
                acc += (w.view(-1, 1, 1) * masks[:, 0].double()).sum(0)
        return normalize_map(acc / (o["n_masks"] * o["p"])).to(pixels.device)
