"""Occlusion (Zeiler & Fergus, ECCV 2014): slide a patch of baseline over the image, black-box.

For each window position, the window's pixels are replaced by the baseline
(``Phi(I, B, M)`` with ``M = 0`` inside the window, paper Eq. 3) and the drop of the score
``f(I) - f(occluded)`` is credited to every pixel of the window; overlapping windows are
averaged, negative values clipped (ReLU) and the map normalised to [0, 1].

``window`` is the window side as a fraction of the image side (default 1/8), ``stride`` the
step as a fraction of the window (default 1/2); the last row/column of windows is moved in
so the image is covered to its edge.

Where we differ from Zeiler & Fergus: the occluder is the baseline image (blur by default)
rather than a grey square, and the score is ``f`` of the selected answer tokens (paper
Eq. 7) rather than a class probability. Windows are scored ``batch_size`` at a time.

Example::

    lens = vlm_focus.load("shapes-llava", method="occlusion", window=0.125, stride=0.5)
"""

from __future__ import annotations

import torch

from ..errors import InputError, MethodError
from .base import Method, Target, normalize_map, register_method
from .compose import phi


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``[0, size)``, the last one flush with the edge."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


@register_method("occlusion")
class Occlusion(Method):
    """Score drop when a sliding window shows the baseline."""

    needs_gradients = False
    black_box = True

    @classmethod
    def defaults(cls) -> dict:
        return {"window": 0.125, "stride": 0.5, "batch_size": None}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        o = self.options
        if not 0 < o["window"] <= 1 or not 0 < o["stride"] <= 1:
            raise InputError(
                f"occlusion: window and stride must be in (0, 1], got {o['window']!r}, {o['stride']!r}"
            )
        H, W = pixels.shape[-2:]
        wh, ww = max(1, round(o["window"] * H)), max(1, round(o["window"] * W))
        sh, sw = max(1, round(o["stride"] * wh)), max(1, round(o["stride"] * ww))
        boxes = [(y, x) for y in window_starts(H, wh, sh) for x in window_starts(W, ww, sw)]
        batch = int(o["batch_size"] or target.batch_size)
        baseline = baseline.to(pixels)
        heat = torch.zeros(H, W, dtype=torch.float64)
        count = torch.zeros(H, W, dtype=torch.float64)
        with torch.no_grad():
            f0 = target.f(pixels[None]).double().cpu()
            for i in range(0, len(boxes), batch):
                chunk = boxes[i : i + batch]
                masks = torch.ones(len(chunk), 1, H, W, device=pixels.device, dtype=pixels.dtype)
                for k, (y, x) in enumerate(chunk):
                    masks[k, :, y : y + wh, x : x + ww] = 0
                drop = f0 - target.f(phi(pixels[None], baseline[None], masks)).double().cpu()
                if not torch.isfinite(drop).all():
                    raise MethodError("occlusion: the model's scores are not finite")
                for d, (y, x) in zip(drop.tolist(), chunk):
                    heat[y : y + wh, x : x + ww] += d
                    count[y : y + wh, x : x + ww] += 1
        return normalize_map(torch.relu(heat / count)).to(pixels.device)
