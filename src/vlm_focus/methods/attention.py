"""Raw language-model attention to the image tokens (as LVLM-Interpret, Ben Melech Stan et
al. 2024, shows it), restricted to the visually relevant answer tokens.

One forward pass with eager attention; for each chosen layer the attention probabilities
``[heads, L, L]`` are reduced over heads (``heads="mean"`` or ``"max"``), the rows of the
selected answer positions (``scorer.positions[selected]``, where the logits of the selected
tokens are computed) are kept, and their columns at the image placeholder positions
(``adapter.image_token_mask``) are averaged over those rows and over the layers. The result,
one value per image token, is mapped to pixels by ``adapter.image_tokens_to_pixels`` (which
knows how the connector packs crops, tiles, row ends and pixel-shuffled blocks into image
tokens). No backward pass.

Where we differ: LVLM-Interpret shows one answer token at a time, per layer and head; here
the rows of all selected tokens (paper Eq. 7's set ``K``) are averaged, so it explains the
same score as the other methods. Attention is not attribution (no gradient, no baseline):
use it as a view of the model's routing, not as evidence.

Example::

    lens = vlm_focus.load("shapes-llava", method="attention", layers=[-1], heads="max")
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InputError, MethodError
from .base import Method, Target, register_method
from .hooks import eager_attention, require_adapter, to_heatmap


def image_attention(
    attentions: Sequence[torch.Tensor],
    queries: torch.Tensor,
    image_mask: torch.Tensor,
    layers: str | Sequence[int] = "all",
    heads: str = "mean",
) -> torch.Tensor:
    """Attention ``[n_image]`` from the ``queries`` rows to the ``image_mask`` columns,
    reduced over heads (mean/max), then averaged over query rows and the chosen layers."""
    index = range(len(attentions)) if isinstance(layers, str) else layers
    maps = []
    for i in index:
        a = attentions[i][0]  # [heads, L, L]
        a = a[:, queries.to(a.device)][:, :, image_mask.to(a.device)].float()  # [heads, Q, n_image]
        a = a.mean(0) if heads == "mean" else a.amax(0)
        maps.append(a.mean(0).cpu())
    return torch.stack(maps).mean(0)


@register_method("attention")
class RawAttention(Method):
    """Language-model attention from the selected answer positions to the image tokens."""

    needs_gradients = False
    needs_attention = True

    @classmethod
    def defaults(cls) -> dict:
        return {"layers": "all", "heads": "mean"}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        o = self.options
        if o["heads"] not in ("mean", "max"):
            raise InputError(f"attention: heads must be 'mean' or 'max', got {o['heads']!r}")
        adapter = require_adapter(target, self.name)
        scorer = target.scorer
        ids = scorer.input_ids
        image_mask = adapter.image_token_mask(ids)[0].cpu()
        if not bool(image_mask.any()):
            raise MethodError("attention: no image token in the prompt")
        queries = scorer.positions.cpu()[target.index]
        inputs = adapter.cast(adapter.preprocess(pixels[None].to(adapter.device)))
        with torch.no_grad(), eager_attention(adapter.model):
            attentions = [a for a in adapter.language_attentions(ids, inputs) if a is not None]
        if not attentions:
            raise MethodError(
                "attention: the language model returned no attention weights (eager attention unsupported?)"
            )
        layers = o["layers"]
        n = len(attentions)
        if layers != "all" and (
            isinstance(layers, (str, int))
            or not layers
            or not all(isinstance(i, int) and -n <= i < n for i in layers)
        ):
            raise InputError(
                f"attention: layers must be 'all' or a non-empty list of ints in [-{n}, {n - 1}], got {layers!r}"
            )
        values = image_attention(attentions, queries, image_mask, layers, o["heads"])
        return to_heatmap(adapter, values, pixels, self.name, tokens="image_tokens")
