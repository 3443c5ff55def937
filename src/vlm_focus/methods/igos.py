"""Improved iGOS++ (paper Sec. 3.3, Eq. 8): one mask optimised for deletion and insertion.

``min_M f(Phi(I, I~, M)) - f(Phi(I, I~, 1 - M)) + l1 |1 - M|_1 + l2 e^(-gamma t) |1 - M|_2^2
+ l3 BTV(M)`` where ``M`` is a low-resolution mask (1 = keep the image), upsampled
bilinearly; the heatmap is ``1 - M``. The gradients of the two ``f`` terms are integrated
gradients along the mask path ``alpha * M``, ``alpha = 1/K .. 1``: deletion images
``Phi(I, I~, alpha M)`` and insertion images ``Phi(I~, I, alpha M)``, each with small
Gaussian noise. Each iteration takes one step on the mask, clamped to [0, 1].

**The step: converging by default, the paper's with** ``preset="paper"``. The paper /
reference code steps with the raw gradient (Nesterov, lr 10, momentum 5, 32x32 mask). On
the zoo models that does not converge: the gradient's scale changes up to 350x within one
optimisation (it grows as the mask removes evidence), so with lr 10 every cell with
``|g| > 0.1`` jumps across [0, 1] in one step, cells flip back and forth and the mask's
change per iteration *grows* (x2.6-4 over the 5 iterations); other objects, once switched
on, keep their heat. The default (``preset="converging"``) starts from a superpixel
occlusion instead of the first gradient step, changes the step and scores probabilities
instead of log-probabilities, at fewer passes:

- ``init="segments"``: iteration 1 is not a gradient step. The image is cut into about
  ``init_regions`` (24) SLIC superpixels (scikit-image); each is replaced by the baseline in
  turn, and the mask starts at ``1 - init_scale * d`` (``init_scale`` = 1) with ``d`` the
  score's drop (on the probability score: the probability the region carries; clipped to
  [0, 1]; drops below ``init_floor`` = 0.01 count as 0), area-averaged onto the mask's
  cells; iterations 2-4 are the gradient steps below. With ``init_insertion`` (on), a region
  counts no more than it gains when inserted alone into the baseline (tested for the regions
  over the floor only: their number + 1 more passes, 2-3 on the zoo models): blurring a
  plain background region next to an object smears the object into it, and that can lower
  the answer as much as deleting the asked-about object (a new blob the question may be
  about), but the region inserted alone gives nothing (E15). ``init_scale`` = 1, not the
  first step's 0.3: from a start of at most 0.3 the later steps, each moving the cell with
  the largest gradient by a full ``lr``, could lift a cell off the object above the whole
  start (E15). With ``init_coarse`` (12): when no region carries a tenth
  (``SPLIT_SHARE``) of what the whole image carries (``s(I) - s(baseline)``; one more pass
  when the insertion test did not already score the baseline),
  the image is cut again into about ``init_coarse`` regions and that cut is used if its best
  region carries more. SLIC can split a uniform object between two regions, and when either
  half keeps the answer neither deletion lowers it; the coarser cut keeps such an object
  whole (E16). It costs its regions (and its insertion test) more passes, in the scenes
  that need it only, and is skipped when the start would score more than ``START_ITERATIONS``
  gradient iterations (40 images: the method stays within 100); ``init_coarse=0`` never cuts
  again. With ``init_contrast`` (on), a region's ``d`` is painted on its pixels in proportion
  to how much the baseline changes them (``|I - B|``, over the region's largest): a region
  that holds an object's tip and a stretch of plain background put the same heat on the
  background, which no step can remove (deleting a pixel the blur barely changes moves no
  score), and the maximum could land off the object (E16). A single region (a texture SLIC
  cannot cut) keeps ``M = 1``. Why a start: the first gradient step, taken at
  ``M = 1`` on blends of the whole image with its blur, decides which object ends hottest,
  and under heavy blur any blob of the answer's colour will do, so the map could follow
  another object the model does not need (``benchmarks/igos_convergence_log.md``, D10);
  deleting a whole region asks what the answer needs in the image as it is. Superpixels,
  not a grid: grid cells cut objects, and deleting part of an object leaves the answer
  (E12, E13). The floor keeps a
  model that does not give the answer (a randomised one, P ~ 1e-5) at exactly ``M = 1``:
  without it its tiny drops paint a faint superpixel pattern, which the sanity check's
  min-max normalisation turns into a full map that matches the trained one (E13);

- ``normalize="max"``: the step is ``g / max |g|`` (no cell moves more than ``lr`` per
  step), the max taken over the cells the clamped step can move (``projected_scale``);
- ``schedule="linear"``: ``lr`` 0.3 decaying as 1, .75, .5, .25 over the 4 iterations (the
  start takes the first; a stochastic gradient - IG with noise - needs a decaying step to
  settle); no momentum (``momentum=0``);
- a 16x16 mask (``size``): on 64-px scenes the paper's 32x32 gives 2-px cells whose
  gradients are mostly pixel noise; 16x16 pools them;
- ``score="prob"``: the two ``f`` terms on the selected tokens' joint probability
  ``exp(f)`` instead of their log-probability. The integration path's blends of the image
  and its baseline can show colours the model reads as something else; there the
  log-probability falls 5-10 nats below both ends with huge, sign-changing gradients that
  outweigh the real signal, while on the probability scale such a dip weighs at most the
  probability it loses (``benchmarks/igos_convergence_log.md``, D8 and CHECK 3). This
  is the one change to the objective; ``preset="paper"`` keeps ``log P``;
- ``blend_with="mean"``: the mask blends the image with its mean colour, not with the
  explanation's baseline; the baseline (the paper's blur by default) still selects the
  tokens and scores deletion / insertion, and ``blend_with="baseline"`` (as ``preset="paper"``)
  optimises against it. The reference blur's kernel is fixed (101 px for any image under
  500 px), so the larger the image, the weaker the blur: at 64 px it is nearly the mean
  colour, at 240 px it leaves the background away from the objects as it was. There no
  perturbation map, of the trained or of a randomised model, can put heat, and the sanity
  check's Spearman correlation counts the two maps' shared zeros as agreement. Pooled over
  five fresh seeds of two scene generators (120-300 px), sanity 0.050 / -0.036 / 0.092 /
  0.051 (llava, qwen2.5-vl, onevision, multi-encoder) against 0.219 / 0.087 / 0.211 / 0.203
  with the blur, pointing 1.000 / 0.985 / 0.963 / 1.000 against 1.000 / 0.970 / 0.955 /
  0.984; on the 200 development scenes (64 px, where the blur is nearly the mean colour)
  pointing equal or +0.01 and insertion - deletion -0.02 ... +0.03 (E18, E19).

Measured with ``benchmarks/igos_convergence.py`` on fresh scenes (2-4 objects, colour and
shape questions, 40 per zoo model). The converging step with ``log P`` against
``preset="paper"`` (seed 9090, 96 px): the mask's change per iteration falls x3-6 (paper:
grows x2.6-3.1); pointing 0.77-0.92 (0.47-0.57); insertion - deletion 0.93-0.98
(0.58-0.82). The probability score on top (seeds 5151 / 128 px, 6262 / 112 px, 7373 / 144
px), still from ``M = 1``: pointing 0.82-0.97, the asked-about object the hottest of all
objects in 83-100 % of scenes, insertion - deletion 0.92-0.99; the misses were mostly colour
questions where another object has the same colour (D10). The superpixel start on top
(E13, CHECK 5): on seed 7373 / 144 px pointing 0.879 -> 0.939 (onevision) and 0.906 -> 0.969
(multi-encoder), object hottest 0.848 -> 0.970 and 0.969 -> 1.000; on the unseen seed 2468
/ 176 px pointing 0.96 / 0.87 / 0.93 / 0.97 and object hottest 1.00 / 0.93 / 0.97 / 0.97
(llava, qwen2.5-vl, onevision, multi-encoder); on the 200 development scenes of
``benchmarks/ground_truth.py`` (64 px, all question types) pointing on colour/shape 0.98 /
0.95 on llava / multi-encoder (from 0.93 / 0.90), on count questions too. The stronger start
with the insertion test (E15) on qwen2.5-vl / onevision: on seed 2468 / 176 px pointing
0.867 -> 0.967 and 0.934 -> 0.970; on the unseen seed 5353 / 192 px 0.951 -> 0.951 and
0.927 -> 0.938 (onevision's misses there: scenes where deleting the asked-about object
leaves P at 1.00), insertion - deletion 0.956 -> 0.994 and 0.921 -> 0.966. The coarse
cut and the contrast painting (E16), on the 200 development scenes: pointing 1.000 / 0.967 /
0.970 / 0.971 (from 0.975 / 0.957 / 0.948 / 0.953; llava, qwen2.5-vl, onevision,
multi-encoder), relevance rank +0.07, insertion - deletion 0.89-0.92; on fresh seeds 8181 /
160 px and 7979 / 136 px pointing 0.93-1.00, every miss left a scene where deleting the
asked-about object leaves P at 0.79-1.00. Passes: the start's regions + 1 (SLIC gives
18-25), the regions over the floor + 1 inserted, the coarse cut where it runs
(``trace[0]["passes"]``, at most 40), then (iterations - 1) x ig_iter x 2 = 60: 80-100
(mean 85-87) instead of 100.
Explicit options override the preset's values (``preset="paper", lr=1.0``;
``init="ones", iterations=5``: the converging step from ``M = 1``, the default before the
start).

**Fewer passes:** ``preset="fast"`` is the superpixel start and one gradient step
(``iterations=2``): 45-54 passes (mean 45-47), about half the default's, at the same seconds
per sample as the 40-pass preset it replaced (the start's passes need no backward pass). On
the 200 development scenes it points as the default does (colour/shape 1.000 / 0.967 / 0.980
/ 0.971 on llava / qwen2.5-vl / onevision / multi-encoder) with insertion - deletion
0.84-0.90, a higher relevance rank (0.83-0.88) and sanity 0.02-0.18 (20 scenes); on the
independent generator's scenes (seed 6161, 26-29 per model) pointing 0.966 / 1.000 / 0.962 /
1.000 and sanity 0.248 / 0.064 / 0.074 / 0.131 (default 0.149 / -0.010 / 0.038 / 0.045):
with one step, the randomised model's noise step is not worn down by later regulariser
steps (E17, E19). So it **trades the sanity margin and some
insertion for speed**. The fast preset before the start (the converging step from
``M = 1`` in 2 iterations, lr 0.6, 40 passes) is ``init="ones", iterations=2, lr=0.6``;
against the current default it lost 0.08-0.15 in pointing on the seed-4747 scenes. Fewer
integrated-gradient points cost more than fewer iterations (``ig_iter=5``, 50 passes from
``M = 1``: pointing 0.81 against 0.87 for 2 iterations, mean of the zoo models, development
scenes). An early stop on "the mask stops moving" cannot save passes here: the
max-normalised step moves the top movable cell by exactly the scheduled ``lr`` every
iteration.

Where we differ from the paper / the reference code (bytedance/LVLM_Interpretation):

- the K interpolation points of each term are evaluated as batches (``batch_size``
  at a time) instead of one forward pass each; same gradient, fewer passes;
- noise is added in ``[0, 1]`` pixel space with std ``noise`` (0.05) - the reference
  adds std 0.2 to CLIP-normalised pixels, about 0.054 in pixel space - and is seeded;
- the bilateral TV term weighs both directions by the channel-mean of the squared image
  difference (the reference mixes "mean then square" and "square then mean");
- the L1 term is the mean of ``|1 - M|`` and the L2 term the sum of ``(1 - M)^2``, as
  in the reference code (the paper writes norms);
- a non-finite gradient or mask stops the optimisation with :class:`MethodError`
  instead of silently producing a NaN heatmap;
- ``method.trace`` holds per iteration the ``f`` values, the regulariser, the largest
  ``|g|`` and the mask's mean / largest change, ``method.masks`` the mask after each step.

Example::

    lens = vlm_focus.load("shapes-llava", method="igos++")                  # converging
    lens = vlm_focus.load("shapes-llava", method="igos++", preset="paper")  # the paper's
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch

from ..baselines import blank
from ..errors import InputError, MethodError
from .base import Method, Target, register_method
from .compose import phi, upsample
from .regions import SLIC_MISSING, each_deleted, have_skimage, make_regions


def l1_term(mask: torch.Tensor) -> torch.Tensor:
    """``mean |1 - M|`` per mask ``[B, 1, h, w]`` -> ``[B]``."""
    return (1 - mask).abs().flatten(1).mean(1)


def l2_term(mask: torch.Tensor, step: int, gamma: float) -> torch.Tensor:
    """Graduated non-convexity: ``e^(-gamma * step) * sum (1 - M)^2`` -> ``[B]``."""
    return math.exp(-gamma * step) * ((1 - mask) ** 2).flatten(1).sum(1)


def bilateral_tv(
    mask: torch.Tensor, image: torch.Tensor, beta: float = 2.0, sigma: float = 0.01
) -> torch.Tensor:
    """Bilateral total variation -> ``[B]``.

    ``0.5 * (TV(M) + sum_dir mean(w * |dM_up|^beta))`` with the plain TV of the low-res mask
    (mean of ``|dM|^beta`` in each direction) and, on the mask upsampled to the image,
    edge-aware weights ``w = exp(-mean_c (dI)^2 / sigma)`` that make mask edges cheap
    where the image has edges.
    """
    m = mask[:, 0]
    tv = (m[:, 1:, :] - m[:, :-1, :]).abs().pow(beta).flatten(1).mean(1)
    tv = tv + (m[:, :, 1:] - m[:, :, :-1]).abs().pow(beta).flatten(1).mean(1)
    up = upsample(mask, (image.shape[-2], image.shape[-1]))[:, 0]
    img = image if image.ndim == 4 else image[None]
    wy = torch.exp(-((img[:, :, 1:, :] - img[:, :, :-1, :]) ** 2).mean(1) / sigma)
    wx = torch.exp(-((img[:, :, :, 1:] - img[:, :, :, :-1]) ** 2).mean(1) / sigma)
    btv = (wy * (up[:, 1:, :] - up[:, :-1, :]).abs().pow(beta)).flatten(1).mean(1)
    btv = btv + (wx * (up[:, :, 1:] - up[:, :, :-1]).abs().pow(beta)).flatten(1).mean(1)
    return 0.5 * (tv + btv)


def scored(f: torch.Tensor, score: str) -> torch.Tensor:
    """The objective's score of images whose selected tokens have log-probability ``f``:
    ``logprob``: ``f``; ``prob``: ``exp(f)``."""
    if score == "logprob":
        return f
    if score == "prob":
        if float(f.detach().max()) < PROB_FLOOR:
            raise MethodError(
                f"iGOS++: the selected tokens' probability underflows (log P = "
                f"{float(f.detach().max()):.0f}); use score=logprob"
            )
        return f.exp()
    raise InputError(f"unknown score {score!r}; choose from {SCORES}")


def integrated_mask_gradient(
    target: Target,
    start: torch.Tensor,
    end: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    noise: float,
    generator: torch.Generator,
    batch_size: int,
    score: str = "logprob",
) -> tuple[torch.Tensor, float]:
    """Gradient w.r.t. ``mask`` of ``mean_k s(Phi(start, end, alpha_k M))``, and that mean.

    ``alpha_k = k / steps``, k = 1..steps; evaluated ``batch_size`` points at a time,
    each chunk's graph freed after its backward pass. ``score``: ``logprob``: ``s = f``, the
    selected tokens' summed log-probability; ``prob``: ``s = exp(f)``, their joint probability.
    """
    H, W = start.shape[-2:]
    alphas = torch.linspace(1 / steps, 1, steps)
    grad = torch.zeros_like(mask)
    total = 0.0
    for chunk in alphas.split(batch_size):
        m = mask.detach().clone().requires_grad_(True)
        up = upsample(m, (H, W)) * chunk.view(-1, 1, 1, 1).to(m)
        images = phi(start[None], end[None], up)
        if noise > 0:
            images = images + noise * torch.randn(images.shape, generator=generator).to(images)
        value = scored(target.f(images), score).sum() / steps
        (g,) = torch.autograd.grad(value, m)
        grad += g
        total += float(value.detach())
    return grad, total


SCORES = ("logprob", "prob")
PROB_FLOOR = -80.0
"""Below this log-probability ``exp`` underflows in float32 (``exp(-88)`` is its smallest normal)."""

OBJECTIVE: dict[str, Any] = {
    "iterations": 5,
    "ig_iter": 10,
    "l1": 1.0,
    "l2": 0.1,
    "l3": 10.0,
    "gamma": 1.0,
    "noise": 0.05,
    "tv_beta": 2.0,
    "sigma": 0.01,
    "batch_size": None,
    "seed": 0,
    "score": "logprob",
}
"""The objective and its cost (the paper's values), common to every preset and to ``igos2``."""

CONVERGING: dict[str, Any] = {
    "init": "segments",
    "init_regions": 24,
    "init_floor": 0.01,
    "init_scale": 1.0,
    "init_insertion": True,
    "init_coarse": 12,
    "init_contrast": True,
    "iterations": 4,
    "score": "prob",
    "size": 16,
    "lr": 0.3,
    "momentum": 0.0,
    "normalize": "max",
    "scale_quantile": 1.0,
    "projected_scale": True,
    "schedule": "linear",
    "blend_with": "mean",
}
"""The default start, step and score (``preset=converging``): see the module docstring."""

START_ITERATIONS = 2
"""The superpixel start scores no more images than this many gradient iterations
(``2 * ig_iter`` each): with ``iterations=4`` the method never scores more than 5 gradient
iterations from ``M = 1`` (the default before the start: 100). Only the coarser second cut
(``init_coarse``) can reach it; it is skipped when it would not fit."""

SPLIT_SHARE = 0.1
"""``init_coarse``: the image is cut again when no region of the first cut carries this share of
what the whole image carries. Each half of a split object carries about 0 (the other half keeps
the answer); when the evidence lies on several objects, each carries a sixth or more, and a
coarser cut that merges them localises worse (E16: at 0.5, llava lost ``8181-22``)."""

PAPER: dict[str, Any] = {
    "score": "logprob",
    "size": 32,
    "lr": 10.0,
    "momentum": 5.0,
    "normalize": "none",
    "scale_quantile": 1.0,
    "projected_scale": False,
    "schedule": "constant",
}
"""The paper's / reference code's optimiser (``-O preset=paper``): raw gradient, NAG with lr 10
and momentum 5, a constant step, a 32x32 mask, log-probabilities."""

FAST: dict[str, Any] = {"iterations": 2}
"""``-O preset=fast``: the superpixel start and one gradient step instead of three (45-54
passes instead of 80-100). Trades the sanity margin and some insertion for speed: see the
module docstring."""

PRESETS: dict[str, dict[str, Any]] = {
    "converging": {},
    "paper": {**PAPER, "init": "ones", "iterations": OBJECTIVE["iterations"], "blend_with": "baseline"},
    "fast": FAST,
}
NORMALIZE = ("none", "max")
STEP_RANGES: dict[str, tuple[float | None, float | None]] = {
    "lr": (0.0, None),
    "momentum": (0.0, None),
    "scale_quantile": (1e-6, 1.0),
}
SCHEDULES = ("constant", "linear")
INITS = ("ones", "segments")
BLENDS = ("mean", "baseline")


def step_size(lr: float, step: int, steps: int, schedule: str) -> float:
    """The learning rate of iteration ``step`` (0-based) of ``steps``: ``constant``: ``lr``;
    ``linear``: ``lr * (steps - step) / steps`` (for 5 steps 1, .8, .6, .4, .2 times lr)."""
    if schedule == "constant":
        return lr
    if schedule == "linear":
        return lr * (steps - step) / steps
    raise InputError(f"unknown lr schedule {schedule!r}; choose from {SCHEDULES}")


def movable(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The gradient with the cells a descent step cannot move zeroed: those at a bound of
    [0, 1] that the step would push further out (``M = 1, g < 0`` or ``M = 0, g > 0``)."""
    blocked = ((mask >= 1) & (grad < 0)) | ((mask <= 0) & (grad > 0))
    return grad.masked_fill(blocked, 0.0)


def normalize_gradient(
    grad: torch.Tensor, how: str, quantile: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``none``: ``grad`` as is. ``max``: divided by the ``quantile`` of ``|grad|`` (1: its
    maximum) and clipped to [-1, 1], so that no cell moves more than the learning rate in one
    step; with ``mask``, that scale is taken over the cells the step can move
    (:func:`movable`), not over cells held at a bound."""
    if how == "none":
        return grad
    if how != "max":
        raise InputError(f"unknown gradient normalisation {how!r}; choose from {NORMALIZE}")
    a = (grad if mask is None else movable(grad, mask)).abs().flatten()
    scale = a.max() if quantile >= 1 else torch.quantile(a.float(), quantile).to(a)
    if float(scale) <= 0:
        return torch.zeros_like(grad)
    return (grad / scale).clamp(-1, 1)


def region_drops(
    target: Target,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    labels: torch.Tensor,
    score: str,
    batch_size: int,
    regions: torch.Tensor | None = None,
    value: float | None = None,
) -> tuple[torch.Tensor, float]:
    """How much the score falls when each region is replaced by the baseline.

    ``labels`` ``[H, W]`` (0..R-1); returns the drops ``[R]`` (``s(I) - s(I, region r
    deleted)``) and ``s(I)``. ``R + 1`` images scored, ``batch_size`` at a time, no gradient;
    each batch's masks are built when it is scored. With ``regions`` (indices), only those
    are scored (``len(regions) + 1`` images) and the others' drops are 0. With ``value``
    (``s(I)``, already known), one image fewer.
    """
    n = int(labels.max()) + 1
    chosen = torch.arange(n, device=labels.device) if regions is None else regions.to(labels.device)
    todo = chosen if value is not None else torch.cat([torch.tensor([-1], device=labels.device), chosen])
    with torch.no_grad():
        v = each_deleted(lambda x: scored(target.f(x), score), pixels, baseline, labels, batch_size, todo)
    v = v.float()
    if value is not None:
        v = torch.cat([v.new_tensor([value]), v])
    drops = torch.zeros(n, device=v.device)
    drops[chosen.to(v.device)] = v[0] - v[1:]
    return drops, float(v[0])


class Carried(NamedTuple):
    """One cut's regions and what each carries (:func:`carried`)."""

    drops: torch.Tensor
    value: float  # s(I)
    base: float  # s(baseline); NaN when no insertion was tested
    inserted: int
    passes: int  # images scored
    complete: bool = True  # False: the cut did not fit the budget; the drops are not to be used


def carried(
    target: Target,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    labels: torch.Tensor,
    score: str,
    batch_size: int,
    floor: float,
    insertion: bool,
    value: float | None = None,
    base: float | None = None,
    budget: float = math.inf,
) -> Carried:
    """The score each region carries: its deletion drop (:func:`region_drops`); with
    ``insertion``, no more than it gains when inserted alone into the baseline, tested only for
    the regions whose drop reaches ``floor``. ``value`` (``s(I)``) and ``base``
    (``s(baseline)``), when known, are not scored again. Never more than ``budget`` images:
    ``complete=False`` (no drops to use) when the deletions or the insertion test would not fit.

    Why the insertion test: deleting a plain background region by the blur baseline can lower
    the score as much as deleting the object - the blur smears a neighbouring object into it
    and makes a new blob the question may be about - but that region inserted alone into the
    baseline gives nothing (BENCHMARKS.md, log E15).
    """
    n = int(labels.max()) + 1
    passes = n + (value is None)
    if passes > budget:
        return Carried(torch.zeros(n, device=pixels.device), math.nan, math.nan, 0, 0, complete=False)
    drops, value = region_drops(target, pixels, baseline, labels, score, batch_size, value=value)
    candidates = (
        torch.nonzero(drops >= floor).flatten() if insertion else drops.new_zeros(0, dtype=torch.long)
    )
    if len(candidates):
        if passes + len(candidates) + (base is None) > budget:
            return Carried(drops, value, math.nan, 0, passes, complete=False)
        passes += len(candidates) + (base is None)
        losses, base = region_drops(target, baseline, pixels, labels, score, batch_size, candidates, base)
        # inserting r alone "drops" the baseline's score by minus its gain
        drops[candidates] = torch.minimum(drops[candidates], -losses[candidates])
    return Carried(drops, value, math.nan if base is None else base, len(candidates), passes)


def contrast_weight(pixels: torch.Tensor, baseline: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per pixel ``[H, W]``, how much deleting it changes the image, ``|I - B|`` (the largest
    channel), divided by its region's largest: 1 on the pixels of a region the baseline changes
    most, 0 where it changes nothing (deleting such a pixel cannot move the score)."""
    change = (pixels - baseline).abs().amax(0).float()
    top = torch.zeros(int(labels.max()) + 1, device=change.device)
    top = top.scatter_reduce(0, labels.flatten(), change.flatten(), "amax")
    return change / top[labels].clamp_min(1e-6)


def segment_start(
    drops: torch.Tensor,
    labels: torch.Tensor,
    size: int,
    scale: float,
    floor: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mask ``[1, 1, size, size]`` after ``init="segments"``: ``1 - scale * d``, ``d`` the
    regions' drops clipped to [0, 1] (on the probability score: the probability the region
    carries), those below ``floor`` set to 0, painted on their pixels and area-averaged onto
    the mask's cells. Neither divided by the largest drop nor kept when tiny: a model that
    does not give the answer (a randomised one) starts at exactly ``M = 1``, not at a
    superpixel pattern of the image (module docstring, ``init``)."""
    d = drops.clamp(0, 1).to(torch.float32)
    painted = torch.where(d < floor, torch.zeros_like(d), d)[labels]
    if weight is not None:
        painted = painted * weight.to(painted)
    painted = painted[None, None]
    return (1 - scale * torch.nn.functional.adaptive_avg_pool2d(painted, (size, size))).clamp(0, 1)


def nesterov(
    mask: torch.Tensor,
    theta: torch.Tensor,
    grad: torch.Tensor,
    step: int,
    lr: float,
    momentum: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask update, ``(new mask clamped to [0, 1], new theta)``.

    With ``momentum`` a Nesterov accelerated gradient step as the reference code's 'NAG'
    option: ``theta' = M - lr g``, ``M' = theta' + e (theta' - theta)``,
    ``e = step / (step + momentum)`` (``theta`` starts at zeros; ``e = 0`` at step 0; a larger
    ``momentum`` is *less* momentum). ``momentum = 0``: no momentum, a plain projected
    gradient step ``M' = M - lr g``.
    """
    new_theta = mask - lr * grad
    if momentum == 0:
        return new_theta.clamp(0, 1), new_theta
    e = step / (step + momentum)
    return (new_theta + e * (new_theta - theta)).clamp(0, 1), new_theta


@register_method("igos++")
class IGOSPlusPlus(Method):
    """Improved iGOS++ with one mask for deletion and insertion (paper Eq. 8)."""

    option_ranges: ClassVar[dict[str, tuple[float | None, float | None]]] = {
        **STEP_RANGES,
        "init_regions": (1, None),
        "init_floor": (0.0, 1.0),
        "init_scale": (0.0, 1.0),
        "init_coarse": (0, None),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        preset = self.options["preset"]
        if preset not in PRESETS:
            raise InputError(f"{self.name}: unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        # The preset replaces the defaults; options given explicitly win over both.
        self.options = {**self.defaults(), **PRESETS[preset], **options}
        check_step_options(self.name, self.options)
        for key, choices in (("blend_with", BLENDS), ("init", INITS)):
            if self.options[key] not in choices:
                raise InputError(f"{self.name}: {key} must be one of {choices}, got {self.options[key]!r}")
        for key in ("init_insertion", "init_contrast"):
            if not isinstance(self.options[key], bool):
                raise InputError(f"{self.name}: {key} must be true or false, got {self.options[key]!r}")
        if self.options["init"] == "segments" and not have_skimage():
            raise InputError(f"{self.name}: init='segments' {SLIC_MISSING}; or use -O init=ones")

    @classmethod
    def defaults(cls) -> dict:
        return {"preset": "converging", **OBJECTIVE, **CONVERGING}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        o = self.options
        baseline = self.blend_target(pixels, baseline)
        size, device = int(o["size"]), pixels.device
        batch = int(o["batch_size"] or target.batch_size)
        iterations = int(o["iterations"])
        gen = torch.Generator().manual_seed(int(o["seed"]))
        mask = torch.ones(1, 1, size, size, device=device)
        theta = torch.zeros_like(mask)
        self.trace: list[dict] = []
        self.masks: list[torch.Tensor] = [mask]
        first = 0
        if o["init"] == "segments":
            mask = self.start(target, pixels, baseline, batch)
            first = 1
        for i in range(first, iterations):
            g_del, f_del = integrated_mask_gradient(
                target, pixels, baseline, mask, o["ig_iter"], o["noise"], gen, batch, o["score"]
            )
            g_ins, f_ins = integrated_mask_gradient(
                target, baseline, pixels, mask, o["ig_iter"], o["noise"], gen, batch, o["score"]
            )
            m = mask.clone().requires_grad_(True)
            reg = (
                o["l1"] * l1_term(m)
                + o["l2"] * l2_term(m, i, o["gamma"])
                + o["l3"] * bilateral_tv(m, pixels, o["tv_beta"], o["sigma"])
            ).sum()
            (g_reg,) = torch.autograd.grad(reg, m)
            grad = g_del - g_ins + g_reg
            if not torch.isfinite(grad).all():
                raise MethodError(
                    f"iGOS++: non-finite gradient at iteration {i} (the model's scores overflowed); "
                    "try dtype float32 or a smaller lr"
                )
            previous = mask
            mask, theta = nesterov(
                mask,
                theta,
                step_direction(grad, mask, o),
                i,
                step_size(float(o["lr"]), i, iterations, o["schedule"]),
                o["momentum"],
            )
            self.masks.append(mask)
            self.trace.append(
                {
                    "iteration": i,
                    "f_deletion": f_del,
                    "f_insertion": f_ins,
                    "regulariser": float(reg.detach()),
                    "grad_max": float(grad.abs().max()),
                    "change": float((mask - previous).abs().mean()),
                    "change_max": float((mask - previous).abs().max()),
                }
            )
        heat = 1 - upsample(mask, (pixels.shape[-2], pixels.shape[-1]))[0, 0]
        if not torch.isfinite(heat).all():
            raise MethodError("iGOS++: the mask became non-finite")
        return heat.detach().clamp(0, 1)

    def blend_target(self, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """What the mask blends the image with: its mean colour (``blend_with="mean"``) or
        the explanation's ``baseline``."""
        return blank(pixels) if self.options["blend_with"] == "mean" else baseline

    def start(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor, batch: int) -> torch.Tensor:
        """Iteration 0 of ``init="segments"``: the superpixel occlusion start (module docstring)."""
        o = self.options
        baseline = baseline.to(pixels)
        labels, first = self.cut(target, pixels, baseline, batch, int(o["init_regions"]))
        chosen, passes, evidence = first, first.passes, math.nan
        cuts = [(int(first.drops.numel()), float(first.drops.max()))]
        drop = float(first.drops.max())
        # An object may be split between regions. On probabilities s(B) >= 0, so the evidence
        # s(I) - s(B) is at most s(I), and a drop over a tenth of s(I) needs no s(B); a
        # log-probability is negative, so there s(B) is always scored.
        maybe_split = o["score"] != "prob" or drop < SPLIT_SHARE * first.value
        if o["init_coarse"] and maybe_split:
            base = first.base
            if math.isnan(base):
                with torch.no_grad():
                    base = float(scored(target.f(baseline[None]), o["score"])[0])
                passes += 1
            evidence = first.value - base
            if drop < SPLIT_SHARE * evidence:
                budget = START_ITERATIONS * 2 * int(o["ig_iter"]) - passes
                other_labels, other = self.cut(
                    target,
                    pixels,
                    baseline,
                    batch,
                    int(o["init_coarse"]),
                    value=first.value,
                    base=base,
                    budget=budget,
                )
                passes += other.passes
                if other.complete:
                    cuts.append((int(other.drops.numel()), float(other.drops.max())))
                    if float(other.drops.max()) > drop:
                        labels, chosen = other_labels, other
        drops = chosen.drops
        if not torch.isfinite(drops).all():
            raise MethodError("iGOS++: non-finite scores in the superpixel start")
        weight = contrast_weight(pixels, baseline, labels) if o["init_contrast"] else None
        mask = segment_start(
            drops, labels, int(o["size"]), float(o["init_scale"]), float(o["init_floor"]), weight
        )
        self.masks.append(mask)
        self.trace.append(
            {
                "iteration": 0,
                "init": "segments",
                "regions": int(drops.numel()),
                "inserted": chosen.inserted,
                "passes": passes,
                "score": chosen.value,
                "evidence": evidence,
                "cuts": cuts,
                "drop_max": float(drops.max()),
                "change": float((1 - mask).mean()),
                "change_max": float((1 - mask).max()),
            }
        )
        return mask

    def cut(
        self,
        target: Target,
        pixels: torch.Tensor,
        baseline: torch.Tensor,
        batch: int,
        n: int,
        value: float | None = None,
        base: float | None = None,
        budget: float = math.inf,
    ) -> tuple[torch.Tensor, Carried]:
        """About ``n`` SLIC regions of ``pixels`` and what each carries (:func:`carried`, within
        ``budget`` images). A single region (a texture SLIC cannot cut) carries nothing and scores
        nothing: deleting the whole image cannot say where."""
        o = self.options
        labels = make_regions(pixels, n, "slic").to(pixels.device)
        if int(labels.max()) == 0:
            return labels, Carried(torch.zeros(1, device=pixels.device), math.nan, math.nan, 0, 0)
        floor, insertion = float(o["init_floor"]), o["init_insertion"]
        found = carried(
            target,
            pixels,
            baseline,
            labels,
            o["score"],
            batch,
            floor,
            insertion,
            value=value,
            base=base,
            budget=budget,
        )
        return labels, found


def step_direction(grad: torch.Tensor, mask: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """The gradient as the step uses it, after the ``normalize`` options."""
    return normalize_gradient(
        grad,
        options["normalize"],
        float(options["scale_quantile"]),
        mask if options["projected_scale"] else None,
    )


def check_step_options(name: str, o: dict[str, Any]) -> None:
    """The step options' values (those the generic option check leaves to the method)."""
    if o["normalize"] not in NORMALIZE:
        raise InputError(f"{name}: normalize must be one of {NORMALIZE}, got {o['normalize']!r}")
    if o["schedule"] not in SCHEDULES:
        raise InputError(f"{name}: schedule must be one of {SCHEDULES}, got {o['schedule']!r}")
    if o["score"] not in SCORES:
        raise InputError(f"{name}: score must be one of {SCORES}, got {o['score']!r}")
    if not isinstance(o["projected_scale"], bool):
        raise InputError(f"{name}: projected_scale must be true or false, got {o['projected_scale']!r}")
