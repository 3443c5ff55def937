"""Deletion and insertion curves and their AUC (paper Sec. 4.3).

Deletion replaces mask-grid cells of the image by the baseline in descending heatmap
order; insertion adds them to the baseline. After each step the selected tokens are
scored; scores are normalised ``s' = (s - s_baseline) / (s_image - s_baseline)`` so that
the curves run from 1 to ~0 (deletion) and ~0 to 1 (insertion). AUC is the trapezoid
area over the removed/inserted fraction in [0, 1]. Cells are removed whole
(nearest-neighbour upsampling of the cell mask). Lower deletion and higher insertion are better.

Default score: the **mean probability** of the selected tokens, as the reference code, so
that figures compare with the paper; ``score="logprob"`` uses the summed log-probability
(the objective f the heatmap methods optimise).

Two protocols (``protocol=``), on the same steps and the same forward passes:

- ``"ours"`` (default): cells ordered by their mean heat, ties in cell order (stable);
  removed cells replaced whole (nearest upsampling); AUC = trapezoid over the fraction
  changed in [0, 1], start point included.
- ``"paper"``: the procedure of the reference code (bytedance/LVLM_Interpretation,
  ``metric`` in ``methods_helper.py``), so that a figure can be put beside the paper's.
  Cells are ordered by an unstable sort (``torch.argsort``) of the mask value ``1 - heat``
  ascending, so tied cells come in whatever order torch returns; the 0/1 cell mask is
  upsampled **bilinearly with aligned corners** (``UpsamplingBilinear2d``), so a removed
  cell fades into its kept neighbours and vice versa; the AUC is the reference's sum
  ``(sum_{k<K} s_k * step + (n - c_{K-1})) / n`` over the ``K`` steps *after* the start
  point: a right Riemann sum whose last (short) step adds its width instead of its width
  times its score (an operator-precedence slip). For deletion that last term adds
  ``(n - c_{K-1}) / n`` (4/1024 on a 32 x 32 grid) where the score is 0; for insertion it
  is right (the score is 1 there). Differences left: the reference scores fp16 images on
  GPU, and its grid is the method's own mask grid (here ``grid``, the heatmap pooled to it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..methods.compose import phi, upsample

SCORES = ("prob", "logprob")
PROTOCOLS = ("ours", "paper")


def score_fn(scorer: Callable[[torch.Tensor], torch.Tensor], selected: list[int], score: str = "prob"):
    """``pixels[B] -> [B]``: mean probability or summed log-probability of the selected tokens."""
    if score not in SCORES:
        raise InputError(f"unknown score {score!r}; choose from {SCORES}")
    index = torch.tensor(selected, dtype=torch.long)

    def fn(pixels: torch.Tensor) -> torch.Tensor:
        logp = scorer(pixels)[:, index.to(pixels.device)]
        return logp.exp().mean(-1) if score == "prob" else logp.sum(-1)

    return fn


def cell_order(heatmap: torch.Tensor, grid: int, protocol: str = "ours") -> torch.Tensor:
    """Cells of a ``grid`` x ``grid`` partition, most salient first: stable for ties
    (``"ours"``), or the reference code's unstable ascending sort of ``1 - heat``
    (``"paper"``)."""
    cells = F.adaptive_avg_pool2d(heatmap.float()[None, None], grid).flatten()
    if protocol == "paper":
        return torch.argsort(1 - cells.cpu())
    return torch.from_numpy(np.argsort(-cells.cpu().numpy(), kind="stable").copy())


def paper_auc(counts: list[int], curve: np.ndarray) -> float:
    """The reference code's AUC of a normalised curve sampled at ``counts`` cells changed
    (``counts[0] == 0``, steps of equal width but the last): the scores after each step
    weighted by the step width, the start point left out, and the last step adding its
    width instead of width times score; divided by the number of cells ``counts[-1]``."""
    n = counts[-1]
    widths = np.diff(np.asarray(counts, dtype=np.float64))
    y = np.asarray(curve, dtype=np.float64)[1:]
    return float((np.sum(widths[:-1] * y[:-1]) + widths[-1]) / n)


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
    protocol: str = "ours",
) -> dict:
    """Curves and AUCs for a heatmap ``[H, W]`` on ``pixels``/``baseline`` ``[3, H, W]``.

    Returns ``{"x", "deletion", "insertion"}`` (normalised curves) and
    ``{"deletion_auc", "insertion_auc", "score_image", "score_baseline"}``. The AUCs are
    NaN when the image and baseline scores coincide (nothing to normalise by).
    ``protocol``: ``"ours"`` or ``"paper"`` (the reference code's procedure, see the
    module docstring); both score the same ``len(x)`` images per curve.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown metric protocol {protocol!r}; choose from {PROTOCOLS}")
    H, W = pixels.shape[-2:]
    n = grid * grid
    step = max(1, n // steps)
    counts = list(range(0, n, step)) + [n]
    order = cell_order(heatmap, grid, protocol).to(pixels.device)
    masks = torch.zeros(len(counts), n, device=pixels.device)  # 1 = cell changed
    for i, c in enumerate(counts):
        masks[i, order[:c]] = 1.0
    cells = masks.view(-1, 1, grid, grid)
    if protocol == "paper":  # UpsamplingBilinear2d: bilinear with aligned corners
        up = F.interpolate(cells, size=(H, W), mode="bilinear", align_corners=True)
    else:
        up = upsample(cells, (H, W), mode="nearest")
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
        out[f"{name}_auc"] = paper_auc(counts, curve) if protocol == "paper" else trapezoid_auc(x, curve)
    return out
