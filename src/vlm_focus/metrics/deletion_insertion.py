"""Deletion and insertion curves and their AUC (paper Sec. 4.3).

Deletion replaces mask-grid cells of the image by the baseline in descending heatmap
order; insertion adds them to the baseline. After each step the selected tokens are
scored; scores are normalised ``s' = (s - s_baseline) / (s_image - s_baseline)`` so that
the curves run from 1 to ~0 (deletion) and ~0 to 1 (insertion). AUC is the trapezoid
area over the removed/inserted fraction in [0, 1] (the reference code's sum adds its last
step unweighted; we integrate it properly). Cells are removed whole (nearest-neighbour
upsampling of the cell mask; the reference upsamples bilinearly, which blends each
removed cell into its neighbours). Lower deletion and higher insertion are better.

Default score: the **mean probability** of the selected tokens, as the reference code, so
that figures compare with the paper; ``score="logprob"`` uses the summed log-probability
(the objective f the heatmap methods optimise).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..methods.compose import phi, upsample

SCORES = ("prob", "logprob")


def score_fn(scorer: Callable[[torch.Tensor], torch.Tensor], selected: list[int], score: str = "prob"):
    """``pixels[B] -> [B]``: mean probability or summed log-probability of the selected tokens."""
    if score not in SCORES:
        raise InputError(f"unknown score {score!r}; choose from {SCORES}")
    index = torch.tensor(selected, dtype=torch.long)

    def fn(pixels: torch.Tensor) -> torch.Tensor:
        logp = scorer(pixels)[:, index.to(pixels.device)]
        return logp.exp().mean(-1) if score == "prob" else logp.sum(-1)

    return fn


def cell_order(heatmap: torch.Tensor, grid: int) -> torch.Tensor:
    """Cells of a ``grid`` x ``grid`` partition, most salient first (stable for ties)."""
    cells = F.adaptive_avg_pool2d(heatmap.float()[None, None], grid).flatten()
    return torch.from_numpy(np.argsort(-cells.cpu().numpy(), kind="stable").copy())


def trapezoid_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under ``y(x)`` by the trapezoid rule."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


@torch.no_grad()
def deletion_insertion(
    fn: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    heatmap: torch.Tensor,
    grid: int = 32,
    steps: int = 50,
    batch_size: int = 16,
) -> dict:
    """Curves and AUCs for a heatmap ``[H, W]`` on ``pixels``/``baseline`` ``[3, H, W]``.

    Returns ``{"x", "deletion", "insertion"}`` (normalised curves) and
    ``{"deletion_auc", "insertion_auc", "score_image", "score_baseline"}``. The AUCs are
    NaN when the image and baseline scores coincide (nothing to normalise by).
    """
    H, W = pixels.shape[-2:]
    n = grid * grid
    step = max(1, n // steps)
    counts = list(range(0, n, step)) + [n]
    order = cell_order(heatmap, grid).to(pixels.device)
    masks = torch.zeros(len(counts), n, device=pixels.device)  # 1 = cell changed
    for i, c in enumerate(counts):
        masks[i, order[:c]] = 1.0
    up = upsample(masks.view(-1, 1, grid, grid), (H, W), mode="nearest")
    raw = {}
    for name, start, end in (("deletion", pixels, baseline), ("insertion", baseline, pixels)):
        images = phi(end[None], start[None], up)  # changed cells take `end`
        raw[name] = torch.cat([fn(chunk) for chunk in images.split(batch_size)]).float().cpu().numpy()
    s_img, s_base = float(raw["deletion"][0]), float(raw["insertion"][0])
    denom = s_img - s_base
    x = np.asarray(counts, dtype=np.float64) / n
    out: dict = {"x": x.tolist(), "score_image": s_img, "score_baseline": s_base}
    for name in ("deletion", "insertion"):
        curve = (raw[name] - s_base) / denom if abs(denom) > 1e-12 else np.full_like(raw[name], np.nan)
        out[name] = curve.tolist()
        out[f"{name}_auc"] = trapezoid_auc(x, curve)
    return out
