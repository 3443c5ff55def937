"""IIA (Barkan et al., ICCV 2023, "Visual explanations via iterated integrated attributions"),
as the paper uses it (Sec. 4.3): T-MM with integrated gradients over the interpolations
``x_r = r * I + (1 - r) * B``, ``r = 0, 0.1, ..., 1`` (``steps`` = 11 points).

Per vision attention layer ``l`` the gradient-weighted attention is averaged over the path,
``cam_l = mean_r(df/dA_l(x_r) * A_l(x_r))``, then the T-MM rule of :mod:`.tmm`
(``Abar_l = mean_heads(ReLU(cam_l))``, rollout ``R = I; R += Abar_l @ R``, class-token row,
or the patch rows' mean with ``rows="patches"``, as in T-MM).

Where we differ from Barkan et al.:

- one level of integration only (the input path). The paper's "iterated" attributions also
  integrate along interpolations of the intermediate attention/activation maps and nest
  those integrals; we do not iterate;
- the product ``df/dA * A`` is averaged over the path (not ``A(I)`` times the mean gradient),
  so each point uses its own attention; ``steps=1`` is T-MM on the image itself;
- the path points are evaluated ``batch_size`` at a time (``target.batch_size`` by default),
  each chunk's graph freed after its backward pass.

Example::

    lens = vlm_focus.load("shapes-llava", method="iia", steps=11)
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .base import Method, Target, register_method
from .hooks import eager_attention, require_adapter
from .tmm import attention_modules_of, relevance_heatmap, weighted_attention


def path_points(steps: int) -> torch.Tensor:
    """``r`` values: ``steps`` points from 0 to 1; a single point is the image (r = 1)."""
    return torch.ones(1) if steps == 1 else torch.linspace(0, 1, steps)


def integrated_cams(
    target: Target,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    modules: list[torch.nn.Module],
    steps: int,
    batch_size: int,
    method: str = "iia",
) -> list[torch.Tensor | None]:
    """``mean_r df/dA_l(x_r) * A_l(x_r)`` per layer ``[heads, N, N]`` (None: no gradient)."""
    total: list[torch.Tensor | None] | None = None
    for chunk in path_points(steps).split(batch_size):
        r = chunk.view(-1, 1, 1, 1).to(pixels)
        cams = weighted_attention(target, r * pixels[None] + (1 - r) * baseline[None], modules, method)
        if total is None:
            total = cams
        else:
            total = [t if c is None else (c if t is None else t + c) for t, c in zip(total, cams)]
    assert total is not None  # steps >= 1 is checked by the caller
    return [None if t is None else t / steps for t in total]


@register_method("iia")
class IIA(Method):
    """Integrated-gradient T-MM over the baseline-to-image path (one level of IIA)."""

    needs_attention = True

    @classmethod
    def defaults(cls) -> dict:
        return {"steps": 11, "batch_size": None, "rows": "cls"}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        steps = self.options["steps"]
        if not isinstance(steps, int) or steps < 1:
            raise InputError(f"iia: steps must be a positive int, got {steps!r}")
        batch = int(self.options["batch_size"] or target.batch_size)
        adapter = require_adapter(target, self.name)
        modules = attention_modules_of(adapter, self.name)
        with eager_attention(adapter.model):
            cams = integrated_cams(target, pixels, baseline.to(pixels), modules, steps, batch, self.name)
        return relevance_heatmap(target, cams, pixels, self.options["rows"], self.name)
