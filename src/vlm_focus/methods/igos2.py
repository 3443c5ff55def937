"""The original two-mask iGOS++ (Khorram et al., CVPR 2021, "iGOS++: Integrated Gradient
Optimized Saliency by Bilateral Perturbations"): a deletion mask and an insertion mask
optimised jointly, the heatmap from their product.

``min_{D, N} f(Phi(I, I~, D)) - f(Phi(I~, I, N)) + f(Phi(I, I~, D N)) - f(Phi(I~, I, D N))
+ l1 |1 - D N|_1 + l2 e^(-gamma t) |1 - D N|_2^2 + l3 BTV(D N)``

with low-resolution masks ``D`` (deletion) and ``N`` (insertion), both 1 = keep the image,
upsampled bilinearly (``D N`` is the product of the upsampled masks in the ``f`` terms).
``D`` alone learns what to remove from the image to lose the answer, ``N`` alone what to
reveal of the baseline to recover it; the two product terms make the combined mask do
both. The heatmap is ``1 - D N``: high where either mask drops the pixel. Each iteration
takes four integrated-gradient calls (the ``f`` terms above, along the paths ``alpha M``,
``alpha = 1/K .. 1``, batched as :func:`vlm_focus.methods.igos.integrated_mask_gradient`
does): the two product terms reach both masks by the chain rule, the deletion term only
``D``, the insertion term only ``N``; the ``f`` gradients of each mask are halved (as in
the reference code) and the regularisers' gradients, all on the product ``D N``, added.
Both masks take Nesterov accelerated gradient steps (:func:`vlm_focus.methods.igos.nesterov`)
and are clamped to [0, 1].

The paper's improved method (Eq. 8, one mask, half the gradient calls) is ``igos++``; this
is the baseline it improves on, about twice as expensive.

Where we differ from the reference code (bytedance/LVLM_Interpretation, ``iGOS_pp``):

- the same batching, seeded pixel-space noise, loss-term normalisation and bilateral TV as
  ``igos++`` (see :mod:`vlm_focus.methods.igos`);
- the product terms' integrated gradients are taken w.r.t. the upsampled product mask and
  carried to ``D`` and ``N`` by autograd through the upsampling (the reference
  backpropagates through the product directly; same gradient);
- a non-finite gradient or mask stops the optimisation with :class:`MethodError`.

Its defaults are the reference settings (``igos++ -O preset=paper``: raw gradient, NAG
with lr 10 and momentum 5, mask 32x32); ``igos++``'s converging step options
(``normalize``, ``scale_quantile``, ``projected_scale``, ``schedule``, ``momentum``) apply
to each mask here too, but were not tuned for two masks.

After :meth:`explain`, ``method.masks`` holds the final ``(D, N)`` and ``method.trace``
the four ``f`` values and the regulariser per iteration.

Example::

    lens = vlm_focus.load("shapes-llava", method="igos2", iterations=5)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..errors import MethodError
from .base import Method, Target, register_method
from .compose import upsample
from .igos import (
    OBJECTIVE,
    PAPER,
    STEP_RANGES,
    bilateral_tv,
    check_step_options,
    integrated_mask_gradient,
    l1_term,
    l2_term,
    nesterov,
    step_direction,
    step_size,
)


def two_mask_heatmap(deletion: torch.Tensor, insertion: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``1 - up(D * N)`` ``[H, W]`` from masks ``[1, 1, h, w]`` (1 = keep the image)."""
    return 1 - upsample(deletion * insertion, size)[0, 0]


@register_method("igos2")
class TwoMaskIGOS(Method):
    """The original iGOS++: separate deletion and insertion masks, heatmap ``1 - D N``."""

    option_ranges: ClassVar[dict[str, tuple[float | None, float | None]]] = STEP_RANGES

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_step_options(self.name, self.options)

    @classmethod
    def defaults(cls) -> dict:
        # igos++'s objective with the paper's / reference code's step.
        return {**OBJECTIVE, **PAPER}

    #: One integrated-gradient call (:func:`~vlm_focus.methods.igos.integrated_mask_gradient`'s
    #: signature); ``benchmarks/reference_structure.py`` swaps in the reference code's structure.
    mask_gradient = staticmethod(integrated_mask_gradient)

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        o = self.options
        size, device = int(o["size"]), pixels.device
        H, W = pixels.shape[-2:]
        batch = int(o["batch_size"] or target.batch_size)
        gen = torch.Generator().manual_seed(int(o["seed"]))
        steps, noise, score = int(o["ig_iter"]), float(o["noise"]), o["score"]
        deletion = torch.ones(1, 1, size, size, device=device)
        insertion = torch.ones_like(deletion)
        theta_d, theta_n = torch.zeros_like(deletion), torch.zeros_like(deletion)
        self.trace: list[dict] = []
        for i in range(int(o["iterations"])):
            d = deletion.clone().requires_grad_(True)
            n = insertion.clone().requires_grad_(True)
            product = upsample(d, (H, W)) * upsample(n, (H, W))
            # Full-resolution masks: the helper's upsampling to (H, W) is then the identity.
            g_pd, f_pd = self.mask_gradient(
                target, pixels, baseline, product.detach(), steps, noise, gen, batch, score
            )
            g_pi, f_pi = self.mask_gradient(
                target, baseline, pixels, product.detach(), steps, noise, gen, batch, score
            )
            g_d, f_d = self.mask_gradient(target, pixels, baseline, deletion, steps, noise, gen, batch, score)
            g_n, f_n = self.mask_gradient(
                target, baseline, pixels, insertion, steps, noise, gen, batch, score
            )
            g_pd_d, g_pd_n = torch.autograd.grad(product, (d, n), grad_outputs=g_pd - g_pi)
            both = d * n
            reg = (
                o["l1"] * l1_term(both)
                + o["l2"] * l2_term(both, i, o["gamma"])
                + o["l3"] * bilateral_tv(both, pixels, o["tv_beta"], o["sigma"])
            ).sum()
            r_d, r_n = torch.autograd.grad(reg, (d, n))
            grad_d = (g_pd_d + g_d) / 2 + r_d
            grad_n = (g_pd_n - g_n) / 2 + r_n
            if not (torch.isfinite(grad_d).all() and torch.isfinite(grad_n).all()):
                raise MethodError(
                    f"igos2: non-finite gradient at iteration {i} (the model's scores overflowed); "
                    "try dtype float32 or a smaller lr"
                )
            lr = step_size(float(o["lr"]), i, int(o["iterations"]), o["schedule"])
            deletion, theta_d = nesterov(
                deletion, theta_d, step_direction(grad_d, deletion, o), i, lr, o["momentum"]
            )
            insertion, theta_n = nesterov(
                insertion, theta_n, step_direction(grad_n, insertion, o), i, lr, o["momentum"]
            )
            self.trace.append(
                {
                    "iteration": i,
                    "f_deletion": f_d,
                    "f_insertion": f_n,
                    "f_product_deletion": f_pd,
                    "f_product_insertion": f_pi,
                    "regulariser": float(reg.detach()),
                }
            )
        self.masks = (deletion.detach(), insertion.detach())
        heat = two_mask_heatmap(deletion, insertion, (H, W))
        if not torch.isfinite(heat).all():
            raise MethodError("igos2: the masks became non-finite")
        return heat.detach().clamp(0, 1)
