"""The reference code's *structure* for the paper's single-mask method, re-implemented by us.

The reference code (bytedance/LVLM_Interpretation, ``methods.py: iGOS_p`` with
``methods_helper.py: integrated_gradient / interval_score``) computes each integrated
gradient as follows: the upsampled mask is built once per iteration; the K interpolation
images ``Phi(start, end, alpha_k up(M)) + noise`` are made at once, then scored **one image
per forward pass**, the K log-probabilities are summed into one loss (so **the K autograd
graphs stay alive together**), divided by K and back-propagated once with
``retain_graph=True`` into ``M.grad``; the gradient is copied out and ``M.grad`` zeroed.
Each iteration makes **two** such calls (deletion ``Phi(I, I~, .)`` and insertion
``Phi(I~, I, .)``), then back-propagates the regulariser into the same ``M.grad`` and steps.

The two-mask ``iGOS_pp`` makes **four** such calls per iteration (deletion and insertion of
each mask, and of their product): :class:`ReferenceIGOS2`.

This module reproduces that structure (not the code) on vlm-focus's :class:`Target`, with
igos++'s objective, noise and step options, so that the only difference to
:class:`vlm_focus.methods.igos.IGOSPlusPlus` is how the passes are organised: for equal
options and ``batch_size >= ig_iter`` both draw the same noise and give the same map.
``tests/test_speed_reference.py`` checks the gradient against
:func:`vlm_focus.methods.igos.integrated_mask_gradient`.

The reference code's own step is igos++'s ``preset="paper"`` (NAG, lr 10, momentum 5,
32x32 mask); ``ReferenceIGOS(preset="paper")`` is therefore the reference method with the
reference structure. (The reference also runs in fp16 and adds noise of std 0.2 to
CLIP-normalised pixels; we keep the lens's dtype and igos++'s pixel-space noise.)
"""

from __future__ import annotations

import torch

from vlm_focus.methods.base import Target
from vlm_focus.methods.compose import phi, upsample
from vlm_focus.methods.igos import (
    IGOSPlusPlus,
    bilateral_tv,
    l1_term,
    l2_term,
    nesterov,
    scored,
    step_direction,
    step_size,
)
from vlm_focus.methods.igos2 import TwoMaskIGOS


def reference_interval_loss(
    target: Target,
    start: torch.Tensor,
    end: torch.Tensor,
    up: torch.Tensor,
    steps: int,
    noise: float,
    generator: torch.Generator,
    score: str = "logprob",
) -> torch.Tensor:
    """``(1/K) sum_k s(Phi(start, end, alpha_k up) + noise_k)``, one image per forward pass,
    every pass's graph kept in the returned loss (the reference ``interval_score``); ``s`` is
    :func:`vlm_focus.methods.igos.scored`."""
    alphas = torch.linspace(1 / steps, 1, steps).to(up).view(-1, 1, 1, 1)
    images = phi(start[None], end[None], up * alphas)
    if noise > 0:  # all K noise images drawn at once, as the reference does
        images = images + noise * torch.randn(images.shape, generator=generator).to(images)
    loss = torch.zeros((), device=up.device)
    for image in images:
        loss = loss + scored(target.f(image[None]), score).sum().to(loss.device)
    return loss / steps


def reference_integrated_gradient(
    target: Target,
    mask: torch.Tensor,
    up: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    steps: int,
    noise: float,
    generator: torch.Generator,
    score: str = "logprob",
) -> tuple[torch.Tensor, float]:
    """The reference ``integrated_gradient``: backward with ``retain_graph=True`` into
    ``mask.grad`` (``mask`` a leaf, ``up`` its upsampling, shared by the calls of one
    iteration); returns the gradient (copied, ``mask.grad`` zeroed) and the loss."""
    loss = reference_interval_loss(target, start, end, up, steps, noise, generator, score)
    loss.backward(retain_graph=True)
    assert mask.grad is not None
    grad = mask.grad.clone()
    mask.grad.zero_()
    return grad, float(loss.detach())


def reference_mask_gradient(
    target: Target,
    start: torch.Tensor,
    end: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    noise: float,
    generator: torch.Generator,
    batch_size: int | None = None,
    score: str = "logprob",
) -> tuple[torch.Tensor, float]:
    """:func:`reference_integrated_gradient` with the signature of
    :func:`vlm_focus.methods.igos.integrated_mask_gradient` (``batch_size`` ignored: one image
    a pass)."""
    m = mask.detach().clone().requires_grad_(True)
    up = upsample(m, (start.shape[-2], start.shape[-1]))
    return reference_integrated_gradient(target, m, up, start, end, steps, noise, generator, score)


class ReferenceIGOS(IGOSPlusPlus):
    """igos++ (one mask, paper Eq. 8) organised as the reference code: 2 integrated-gradient
    calls per iteration, each K single-image passes with the graphs kept. Same options and
    presets as ``igos++`` (``batch_size`` is ignored). Not registered as a method."""

    name = "igos+ reference structure"

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        o = self.options
        baseline = self.blend_target(pixels, baseline)
        H, W = pixels.shape[-2:]
        size, iterations, steps = int(o["size"]), int(o["iterations"]), int(o["ig_iter"])
        gen = torch.Generator().manual_seed(int(o["seed"]))
        mask = torch.ones(1, 1, size, size, device=pixels.device)
        theta = torch.zeros_like(mask)
        self.trace: list[dict] = []
        self.masks: list[torch.Tensor] = [mask]
        first = 0
        if o["init"] == "segments":  # the superpixel start, one image a pass
            mask, first = self.start(target, pixels, baseline, 1), 1
        for i in range(first, iterations):
            m = mask.clone().requires_grad_(True)
            up = upsample(m, (H, W))
            g_del, f_del = reference_integrated_gradient(
                target, m, up, pixels, baseline, steps, o["noise"], gen, o["score"]
            )
            g_ins, f_ins = reference_integrated_gradient(
                target, m, up, baseline, pixels, steps, o["noise"], gen, o["score"]
            )
            reg = (
                o["l1"] * l1_term(m)
                + o["l2"] * l2_term(m, i, o["gamma"])
                + o["l3"] * bilateral_tv(m, pixels, o["tv_beta"], o["sigma"])
            ).sum()
            reg.backward()
            assert m.grad is not None
            grad = g_del - g_ins + m.grad
            mask, theta = nesterov(
                mask,
                theta,
                step_direction(grad, mask, o),
                i,
                step_size(float(o["lr"]), i, iterations, o["schedule"]),
                o["momentum"],
            )
            self.trace.append({"iteration": i, "f_deletion": f_del, "f_insertion": f_ins})
        return (1 - upsample(mask, (H, W))[0, 0]).detach().clamp(0, 1)


class ReferenceIGOS2(TwoMaskIGOS):
    """The two-mask iGOS++ (``igos2``) organised as the reference code's ``iGOS_pp``: 4
    integrated-gradient calls per iteration, each K single-image passes with the graphs kept.
    Same options as ``igos2``; for ``batch_size >= ig_iter`` the same noise and map."""

    name = "igos2 reference structure"
    mask_gradient = staticmethod(reference_mask_gradient)
