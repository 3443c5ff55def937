"""Sanity check by model-parameter randomisation (Adebayo et al., "Sanity checks for
saliency maps", NeurIPS 2018).

An explanation that describes the *model* must change when the model's learned weights
are destroyed. The check explains an answer with the trained model, re-initialises
parameters - cascading from the output layer down - explains the *same* score again and
compares the two heatmaps. A method whose map barely changes (similarity close to 1)
fails: it shows the image (edges, colours), not what the model uses.

Differences from Adebayo et al.: each parameter tensor is replaced by Gaussian noise with
that tensor's own mean and standard deviation (instead of each layer's initialisation
scheme), which works for any architecture and keeps activation scales; and the
randomised model explains the trained model's answer tokens and selected tokens (same
token ids, same set K), because its own generation and LLR selection would explain a
different score.

Example::

    result = sanity_check(lens, "scene.png", "What color is the circle?")
    result.spearman, result.ssim, result.passed()
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import ndimage

from ..errors import InputError
from .compare import rank_correlation
from .localization import as_map

if TYPE_CHECKING:
    from ..explain import Lens
    from ..explanation import Explanation
    from ..images import ImageLike


def _resolve(model: torch.nn.Module, layers: Sequence[torch.nn.Module | str] | None) -> list[torch.nn.Module]:
    if layers is None:
        return [model]
    out = []
    for layer in layers:
        if isinstance(layer, str):
            try:
                layer = model.get_submodule(layer)
            except AttributeError:
                raise InputError(f"the model has no submodule {layer!r}") from None
        if not isinstance(layer, torch.nn.Module):
            raise InputError(f"layers must be modules or submodule names, got {type(layer).__name__}")
        out.append(layer)
    return out


@contextlib.contextmanager
def randomize_top_down(
    model: torch.nn.Module,
    layers: Sequence[torch.nn.Module | str] | None = None,
    seed: int = 0,
    depth: int | None = None,
) -> Iterator[list[torch.nn.Module]]:
    """Context manager: re-initialise the top ``depth`` of ``layers``, restore on exit.

    ``layers`` are modules (or submodule names of ``model``) ordered **input to output**,
    e.g. ``adapter.vision_layers()``; ``None`` means the whole model. The last ``depth``
    of them (default: all) are randomised - Adebayo's cascading randomisation at depth
    ``depth``. Each floating-point parameter becomes Gaussian noise with the parameter's
    own mean and standard deviation; the noise of a layer depends only on ``seed`` and the
    layer's position from the top, so deeper cascades extend shallower ones. The original
    values are kept on the CPU (as much memory as the randomised parameters) and copied
    back in ``finally``, also after an error. Yields the randomised modules.

    Example::

        with randomize_top_down(model, adapter.vision_layers(), seed=0, depth=2):
            ...  # the last two vision blocks are random here
    """
    modules = _resolve(model, layers)
    if depth is not None:
        if not 0 <= depth <= len(modules):
            raise InputError(f"depth must be in [0, {len(modules)}], got {depth}")
        modules = modules[len(modules) - depth :]
    top_down = modules[::-1]
    seen: set[int] = set()
    plan: list[tuple[int, torch.nn.Parameter]] = []
    for j, module in enumerate(top_down):
        for p in module.parameters():
            if id(p) not in seen and p.is_floating_point():
                seen.add(id(p))
                plan.append((j, p))
    backup = [p.detach().to("cpu", copy=True) for _, p in plan]
    try:
        with torch.no_grad():
            gen, current = None, -1
            for j, p in plan:
                if j != current:
                    gen, current = torch.Generator().manual_seed(int(seed) * 1_000_003 + j), j
                x = p.detach().float()
                std = float(x.std(unbiased=False)) if x.numel() > 1 else 0.0
                noise = torch.randn(p.shape, generator=gen)
                p.copy_(noise * std + float(x.mean()))
        yield top_down
    finally:
        with torch.no_grad():
            for (_, p), saved in zip(plan, backup, strict=True):
                p.copy_(saved)


def ssim(a: Any, b: Any, data_range: float = 1.0, sigma: float = 1.5, truncate: float = 3.5) -> float:
    """Structural similarity of two maps of one shape, in [-1, 1].

    Reference: Wang et al., "Image quality assessment: from error visibility to structural
    similarity" (IEEE TIP 2004): local means, variances and covariance under a Gaussian
    window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, averaged over the map. As
    scikit-image's ``structural_similarity(gaussian_weights=True)``: reflected borders and
    the border of half a window width left out of the mean (kept for maps too small).
    """
    x, y = as_map(a, "first map"), as_map(b, "second map")
    if x.shape != y.shape:
        raise InputError(f"ssim needs maps of one shape, got {x.shape} and {y.shape}")

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(z, sigma, mode="reflect", truncate=truncate)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = int(truncate * sigma + 0.5)
    if min(s.shape) > 2 * r:
        s = s[r:-r, r:-r]
    return float(s.mean())


def similarity(map_a: Any, map_b: Any) -> dict[str, float]:
    """``{"spearman", "ssim"}`` between two heatmaps of one shape.

    Both are min-max normalised to [0, 1] first (SSIM with ``data_range = 1``), as Adebayo
    et al. compare normalised maps. NaN when either map is flat.
    """
    x, y = as_map(map_a, "first map"), as_map(map_b, "second map")
    if x.shape != y.shape:
        raise InputError(f"maps of shapes {x.shape} and {y.shape} differ")
    if x.max() == x.min() or y.max() == y.min():
        return {"spearman": math.nan, "ssim": math.nan}
    x, y = (x - x.min()) / (x.max() - x.min()), (y - y.min()) / (y.max() - y.min())
    return {"spearman": rank_correlation(x, y, resize=False), "ssim": ssim(x, y)}


@dataclass
class SanityResult:
    """Similarity of the trained model's heatmap to the randomised model's."""

    spearman: float
    ssim: float
    selected: list[int]
    heatmap: np.ndarray = field(repr=False)
    heatmap_random: np.ndarray = field(repr=False)

    def passed(self, threshold: float = 0.5) -> bool:
        """True when the map changed: ``|spearman| < threshold`` (Adebayo et al. use the
        absolute rank correlation). NaN (a flat map) does not pass."""
        return bool(abs(self.spearman) < threshold)


def fixed_heatmap(
    lens: Lens, image: ImageLike, question: str, token_ids: Sequence[int], selected: Sequence[int]
) -> np.ndarray:
    """Heatmap of ``f = sum_{t in selected} log P(a_t)`` for a *given* answer and token set,
    skipping generation and LLR selection (the rest as :meth:`Lens.explain`)."""
    ex = lens.explain(image, question, answer_ids=token_ids, selected=selected, metrics=False)
    if ex.heatmap is None:
        raise InputError("no token selected: there is no heatmap to compute")
    return ex.heatmap


def sanity_check(
    lens: Lens,
    image: ImageLike,
    question: str,
    layers: Sequence[torch.nn.Module | str] | None = None,
    seed: int = 0,
    depth: int | None = None,
    explanation: Explanation | None = None,
) -> SanityResult:
    """Model-parameter randomisation test for ``lens``'s method on one question.

    Explains ``question`` about ``image`` with the trained model (or reuses
    ``explanation``, an output of ``lens.explain`` on them), randomises ``layers``
    (default: the whole model; see :func:`randomize_top_down`), explains the same answer
    tokens and selected tokens again and returns the similarity of the two heatmaps.
    Raises :class:`InputError` when the answer does not depend on the image.
    """
    ex = explanation if explanation is not None else lens.explain(image, question)
    if not ex.selected or ex.heatmap is None:
        raise InputError("the answer does not depend on the image: there is no heatmap to check")
    model = lens.adapter.model
    with randomize_top_down(model, layers, seed=seed, depth=depth):
        random_heat = fixed_heatmap(lens, image, question, ex.token_ids, ex.selected)
    sim = similarity(ex.heatmap, random_heat)
    return SanityResult(sim["spearman"], sim["ssim"], list(ex.selected), ex.heatmap, random_heat)
