"""Minimal correction regions of a wrong yes/no answer (after EAGLE's hallucination study), black-box.

A wrong answer to "Is there a red triangle?" ("Yes" when there is none, or "No" when there
is one) is explained by two things: the regions that drive it (an explanation of the wrong
answer, e.g. the run's heatmap) and the *minimal correction region*, the smallest region
whose removal (the baseline shown there) makes the model prefer the correct answer.

The search sees only a *margin* ``m(images[B, 3, H, W]) -> [B]``: how much more the model
prefers the wrong answer than the correct one (``log P(wrong) - log P(correct)`` of the
answers' first word, :func:`vlm_focus.hallucination.yes_no_margin`); ``m > 0``: the wrong
answer wins, ``m < 0``: the answer has flipped. Given region labels (the grid or SLIC
regions of :func:`vlm_focus.methods.regions.make_regions`) and an order of the regions (most
responsible first: :func:`heat_order` of a heatmap, or :func:`occlusion_order`), it

1. removes the first ``k = 1, 2, ...`` regions of the order, cumulatively, scored
   ``batch_size`` prefixes at a time, until the margin turns negative (or the removed area
   would pass ``max_area``);
2. with ``prune``, drops again each region of that prefix, least responsible first, whose
   removal is not needed (the margin stays negative without it): one image per region.

The minimal correction region is what is left; its size is its share of the image's area,
and the correction *succeeds* under a budget (10 % of the area by default) when the answer
flipped with at most that share removed. Greedy, so the region is minimal for this order
(each of its regions is needed), not the smallest of all subsets.

Cost, in images scored (each image is one pass per answer scored, so two for a margin of
two answers): 1 (the full image) + the prefixes up to the first flip, rounded up to a whole
batch + one per region of the flipping prefix (pruning); :func:`occlusion_order` adds one
per region.

Where we differ from EAGLE: EAGLE ranks regions by its own subset search and reports the
smallest flipping set on COCO-based hallucination questions; here any heatmap (or a
single-region occlusion) orders the regions, the flip is judged on the first word's
log-probabilities of the two answers, and removed regions show the run's baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError, MethodError
from .compose import phi
from .regions import each_deleted

DEFAULT_BUDGET = 0.10  # the share of the image area removed for "correction success"

Margin = Callable[[torch.Tensor], torch.Tensor]


def check_budget(budget: Any) -> float:
    """The correction budget as a float in (0, 1] (:class:`InputError` otherwise)."""
    ok = isinstance(budget, (int, float)) and not isinstance(budget, bool) and math.isfinite(budget)
    if not ok or not 0 < budget <= 1:
        raise InputError(f"the correction budget must be a share of the image area in (0, 1], got {budget!r}")
    return float(budget)


@dataclass
class Correction:
    """The result of :func:`minimal_correction`."""

    flipped: bool  # the answer flipped within max_area
    area: float | None  # share of the image area of the minimal correction region (None: no flip)
    regions: list[int]  # its region labels, in the order's order
    mask: torch.Tensor  # bool [H, W]: the pixels removed (all False without a flip)
    margin: float  # on the full image (> 0: the wrong answer is preferred)
    margin_after: float | None  # with the minimal correction region removed
    budget: float
    passes: int  # model passes (images scored x passes_per_image)
    order: list[int] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """The answer flipped with at most ``budget`` of the image area removed."""
        return self.flipped and self.area is not None and self.area <= self.budget + 1e-9


def _onehot(labels: torch.Tensor) -> torch.Tensor:
    n = int(labels.max()) + 1
    return labels[None] == torch.arange(n, device=labels.device).view(-1, 1, 1)  # [R, H, W]


def heat_order(heat: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """Regions by their mean ``heat`` (``[H, W]``, on the labels' grid), hottest first; ties
    by label."""
    if tuple(heat.shape) != tuple(labels.shape):
        raise InputError(f"heat {tuple(heat.shape)} and labels {tuple(labels.shape)} differ in shape")
    onehot = _onehot(labels).to(torch.float64)
    mean = (onehot * heat.to(onehot)[None]).sum((1, 2)) / onehot.sum((1, 2)).clamp(min=1)
    return sorted(range(len(mean)), key=lambda r: (-float(mean[r]), r))


def _scorer(margin: Margin, counter: list[int]) -> Margin:
    def score(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            m = margin(images).detach().double().cpu().reshape(-1)
        counter[0] += len(images)
        if len(m) != len(images):
            raise MethodError(f"correction: the margin gave {len(m)} values for {len(images)} images")
        if not torch.isfinite(m).all():
            raise MethodError("correction: the model's scores are not finite")
        return m

    return score


def occlusion_order(
    margin: Margin,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 16,
) -> tuple[list[int], int]:
    """Regions by how much removing each one alone lowers the margin, most first (ties by
    label); returns ``(order, images scored)``: one image per region."""
    counter = [0]
    d = -each_deleted(_scorer(margin, counter), pixels, baseline, labels, batch_size)
    return sorted(range(len(d)), key=lambda r: (-float(d[r]), r)), counter[0]


def minimal_correction(
    margin: Margin,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    labels: torch.Tensor,
    order: Sequence[int],
    *,
    budget: float = DEFAULT_BUDGET,
    max_area: float = 1.0,
    batch_size: int = 16,
    prune: bool = True,
    passes_per_image: int = 1,
) -> Correction:
    """The smallest prefix of ``order`` (then pruned) whose removal flips the answer.

    ``pixels`` / ``baseline``: ``[3, H, W]``; ``labels``: ``[H, W]`` region labels 0..R-1;
    ``order``: region labels, most responsible first (regions left out are never removed).
    ``max_area``: stop before the removed share of the area passes it. ``passes_per_image``:
    model passes per scored image (2 for a margin of two answers), for :attr:`Correction.passes`.
    """
    budget = check_budget(budget)
    if not 0 < max_area <= 1:
        raise InputError(f"max_area must be in (0, 1], got {max_area!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
    order = [int(r) for r in order]
    onehot = _onehot(labels)
    if any(not 0 <= r < len(onehot) for r in order) or len(set(order)) != len(order):
        raise InputError(f"order must list distinct region labels in [0, {len(onehot)})")
    total = float(labels.numel())
    area = onehot.sum((1, 2)).double().cpu() / total
    counter = [0]
    score = _scorer(margin, counter)
    baseline = baseline.to(pixels)
    m0 = float(score(pixels[None])[0])

    def result(chosen: list[int], after: float | None, flipped: bool) -> Correction:
        mask = onehot[chosen].any(0) if chosen else torch.zeros_like(labels, dtype=torch.bool)
        return Correction(
            flipped=flipped,
            area=float(area[chosen].sum()) if flipped else None,
            regions=chosen if flipped else [],
            mask=mask if flipped else torch.zeros_like(mask),
            margin=m0,
            margin_after=after,
            budget=float(budget),
            passes=counter[0] * int(passes_per_image),
            order=order,
        )

    if m0 < 0:  # the correct answer is already preferred: nothing to remove
        return result([], m0, True)
    cum = torch.cumsum(area[order], 0) if order else torch.zeros(0)
    k_max = sum(1 for a in cum.tolist() if a <= max_area + 1e-9)

    def removed(sets: list[list[int]]) -> torch.Tensor:
        keep = torch.stack([~onehot[s].any(0) for s in sets]).to(pixels.dtype)[:, None]
        return score(phi(pixels[None], baseline[None], keep))

    found: tuple[list[int], float] | None = None
    for start in range(1, k_max + 1, batch_size):
        ks = list(range(start, min(k_max, start + batch_size - 1) + 1))
        m = removed([order[:k] for k in ks])
        hits = [i for i, v in enumerate(m.tolist()) if v < 0]
        if hits:
            found = (order[: ks[hits[0]]], float(m[hits[0]]))
            break
    if found is None:
        return result([], None, False)
    chosen, after = found
    if prune:
        for r in reversed(list(chosen)):
            if len(chosen) == 1:
                break
            rest = [c for c in chosen if c != r]
            v = float(removed([rest])[0])
            if v < 0:
                chosen, after = rest, v
    return result(chosen, after, True)
