"""Hallucination explanations: the minimal correction region of a wrong yes/no answer.

When a model answers a yes/no question wrongly against the dataset's label ("Yes" to "Is
there a red triangle?" when there is none: a hallucination; "No" when there is one: a
miss), two things explain it: the regions that drive the wrong answer (the run's heatmap
of the answer, or a single-region occlusion when the answer has no image-dependent token)
and the smallest region whose removal flips it, its *minimal correction region*
(:func:`vlm_focus.methods.correction.minimal_correction`). The flip is judged on the first
word: the answer flips when ``log P(correct word) > log P(wrong word)`` at the answer's
first position (each word encoded as the adapter encodes a given answer, e.g. " Yes" /
" No"), so two passes per scored image, through the scorer only: every adapter works.

Example::

    from vlm_focus.hallucination import correct_answer

    result = correct_answer(lens, image, "Is there a red triangle?", "Yes, there is ...", "No")
    result.correction.area, result.correction.success   # share of the image, within 10 %?

``vlm-focus evaluate --hallucination`` records it per wrong yes/no answer
(:mod:`vlm_focus.runs.runner`) and summarises the hallucination rate, the correction
success under the 10 % budget and the mean minimal correction region.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import make_baseline
from .errors import InputError
from .images import ImageLike, load_image, to_tensor
from .methods.correction import DEFAULT_BUDGET, Correction, heat_order, minimal_correction, occlusion_order
from .methods.regions import make_regions

if TYPE_CHECKING:
    from .explain import Lens
    from .models.base import Adapter

YES, NO = "yes", "no"
ORDERS = ("auto", "heat", "occlusion", "random")


def yes_no(text: str | None) -> str | None:
    """``"yes"`` / ``"no"`` when ``text`` starts with that word (case and punctuation
    ignored), else None."""
    from .data.grading import normalize

    words = normalize(text or "")
    return words[0] if words and words[0] in (YES, NO) else None


def _word(answer: str, value: str) -> str:
    """``value`` ("yes"/"no") written in the case of the answer's first word."""
    first = answer.strip().split()[0].strip(".,!?;:") if answer.strip() else ""
    if first.isupper() and len(first) > 1:
        return value.upper()
    return value.capitalize() if first[:1].isupper() else value


def yes_no_margin(
    adapter: Adapter, pixels: torch.Tensor, question: str, wrong: str, correct: str, batch_size: int
):
    """``margin(images[B, 3, H, W]) -> [B]``: ``log P(wrong) - log P(correct)`` of the two
    words as the answer's first tokens (summed over each word's tokens); two passes per image."""
    w_ids, c_ids = adapter.encode_answer(wrong), adapter.encode_answer(correct)
    s_wrong = adapter.scorer(pixels, question, w_ids, batch_size=batch_size)
    s_correct = adapter.scorer(pixels, question, c_ids, batch_size=batch_size)

    def margin(images: torch.Tensor) -> torch.Tensor:
        return s_wrong(images).sum(-1) - s_correct(images).sum(-1)

    return margin


@dataclass
class CorrectionResult:
    """A wrong yes/no answer and its minimal correction region (``mask`` on the image grid)."""

    wrong: str  # the model's word, e.g. "Yes"
    correct: str  # the label's, e.g. "No"
    order_from: str  # "heat" (the heatmap given) or "occlusion"
    n_regions: int
    correction: Correction
    mask: np.ndarray  # bool [H, W] on the image grid: the minimal correction region
    seconds: float

    def record(self) -> dict[str, Any]:
        """The fields a run records per sample (``correction_area`` only when it flipped)."""
        c = self.correction
        out: dict[str, Any] = {
            "correction_success": c.success,
            "correction_flipped": c.flipped,
            "correction_budget": c.budget,
            "correction_passes": c.passes,
            "correction_regions": len(c.regions),
            "correction_order": self.order_from,
            "correction_margin": c.margin,
            "correction_words": [self.wrong, self.correct],
            "correction_seconds": round(self.seconds, 4),
        }
        if c.flipped:
            out.update(correction_area=c.area, correction_margin_after=c.margin_after)
        return out


def correct_answer(
    lens: Lens,
    image: ImageLike,
    question: str,
    answer: str,
    reference: str,
    heatmap: np.ndarray | None = None,
    *,
    budget: float = DEFAULT_BUDGET,
    n_regions: int = 36,
    segments: str = "grid",
    max_area: float = 1.0,
    prune: bool = True,
    order: str = "auto",
    seed: int = 0,
) -> CorrectionResult | None:
    """The minimal correction region of ``answer`` (the model's) against ``reference`` (the
    label), or None when they are not opposite yes/no answers. ``heatmap`` (``[H, W]`` on the
    image grid, e.g. the run's): orders the regions, hottest removed first; without one, the
    regions are ordered by occlusion (one more image per region). ``order``: ``"auto"`` (as
    just said), ``"heat"`` (needs ``heatmap``), ``"occlusion"``, or ``"random"`` (a permutation
    drawn with ``seed``: a control for the other two). Uses the lens's working size, baseline
    and batch size; regions as :func:`~vlm_focus.methods.regions.make_regions`."""
    import time

    said, label = yes_no(answer), yes_no(reference)
    if said is None or label is None or said == label:
        return None
    if order not in ORDERS:
        raise InputError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "heat" and heatmap is None:
        raise InputError("order='heat' needs a heatmap")
    if not isinstance(n_regions, int) or isinstance(n_regions, bool) or n_regions < 1:
        raise InputError(f"n_regions must be an int >= 1, got {n_regions!r}")
    t0 = time.perf_counter()
    o = lens.options
    batch = lens.batch_size
    img = load_image(image)
    adapter = lens.adapter
    wrong, correct = _word(answer, said), _word(answer, label)
    lock = getattr(adapter, "lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        pixels = to_tensor(img, o["working_size"]).to(adapter.device)
        base = make_baseline(o["baseline"], pixels)
        labels = make_regions(pixels, n_regions, segments).to(pixels.device)
        margin = yes_no_margin(adapter, pixels, question, wrong, correct, batch)
        extra = 0
        order_from = ("heat" if heatmap is not None else "occlusion") if order == "auto" else order
        if order_from == "heat":
            heat = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
            if tuple(heat.shape) != tuple(labels.shape):
                heat = F.interpolate(heat[None, None], size=tuple(labels.shape), mode="bilinear")[0, 0]
            ranked = heat_order(heat.to(pixels.device), labels)
        elif order_from == "occlusion":
            ranked, extra = occlusion_order(margin, pixels, base, labels, batch)
        else:
            g = torch.Generator().manual_seed(int(seed))
            ranked = torch.randperm(int(labels.max()) + 1, generator=g).tolist()
        c = minimal_correction(
            margin,
            pixels,
            base,
            labels,
            ranked,
            budget=budget,
            max_area=max_area,
            batch_size=batch,
            prune=prune,
            passes_per_image=2,
        )
    c.passes += 2 * extra
    mask = c.mask.float()[None, None]
    if tuple(mask.shape[-2:]) != (img.height, img.width):
        mask = F.interpolate(mask, size=(img.height, img.width), mode="nearest")
    return CorrectionResult(
        wrong=wrong,
        correct=correct,
        order_from=order_from,
        n_regions=int(labels.max()) + 1,
        correction=c,
        mask=mask[0, 0].cpu().numpy() > 0.5,
        seconds=time.perf_counter() - t0,
    )
