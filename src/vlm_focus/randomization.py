"""The sanity check by model-parameter randomisation, on one explanation (Adebayo et al.,
"Sanity checks for saliency maps", NeurIPS 2018).

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

    from vlm_focus.randomization import sanity_check

    result = sanity_check(lens, "scene.png", "What color is the circle?")
    result.spearman, result.ssim, result.passed()

Moved here from ``vlm_focus.metrics.sanity``, which keeps the pure map comparison
(:func:`~vlm_focus.metrics.similarity`): this check runs the model. The dataset-level study
is :mod:`vlm_focus.study.sanity` (``vlm-focus study sanity``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import InputError
from .metrics.sanity import similarity

if TYPE_CHECKING:
    from .explain import Lens
    from .explanation import Explanation
    from .images import ImageLike


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
    Raises :class:`InputError` when the answer does not depend on the image. Thread-safe:
    other threads' calls on the same model wait until the weights are restored.
    """
    ex = explanation if explanation is not None else lens.explain(image, question)
    if not ex.selected or ex.heatmap is None:
        raise InputError("the answer does not depend on the image: there is no heatmap to check")
    model = lens.adapter.model
    # The weights change in place: hold the adapter's (re-entrant) lock so that no other
    # thread's explanation runs on the randomised model.
    with lens.adapter.lock, randomize_top_down(model, layers, seed=seed, depth=depth):
        random_heat = fixed_heatmap(lens, image, question, ex.token_ids, ex.selected)
    sim = similarity(ex.heatmap, random_heat)
    return SanityResult(sim["spearman"], sim["ssim"], list(ex.selected), ex.heatmap, random_heat)
