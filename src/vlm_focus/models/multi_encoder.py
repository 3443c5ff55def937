"""Multi-encoder models: one image read by several vision encoders whose features are fused.

Built for our :mod:`vlm_focus.architectures.multi_encoder` (``model_type``
``vlm_focus_multi_encoder``; the zoo model ``shapes-multi-encoder``): a CLIP ViT and a
ConvNeXt, fused per cell of the ViT's patch grid - the structure of Cambrian-1 and
Mini-Gemini (wrap their own codebases with :class:`~vlm_focus.models.custom.CustomAdapter`,
see ``docs/custom_models.md``).

Preprocessing: the processor is a CLIP image processor (shorter side to ``conv_size``,
centre crop, rescale, normalise), re-implemented by :class:`LlavaAdapter`; the model
derives the ViT's input from the same tensor, so a mask reaches both encoders.

Hook points: ``vision_layers`` lists the ConvNeXt stages, then the ViT layers (so
``layer=-1`` is the ViT's last layer and ``layer=0`` the first ConvNeXt stage). Both map to
the fused token grid: ViT tokens without the class token, ConvNeXt feature maps
average-pooled onto the grid exactly as the model pools them. T-MM and IIA roll out the
ViT's attention (the ConvNeXt has none); Grad-CAM works on either encoder.

Example::

    lens = vlm_focus.load("shapes-multi-encoder", method="gradcam", layer=0)  # ConvNeXt stage 1
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..architectures import multi_encoder as arch  # noqa: F401  (registers the Auto classes)
from .llava import LlavaAdapter
from .registry import register_adapter


@register_adapter("multi_encoder", model_types=(arch.MODEL_TYPE,))
class MultiEncoderAdapter(LlavaAdapter):
    family = "multi_encoder"

    @property
    def grid(self) -> int:
        return int(self.model.config.grid)

    def vision_layers(self) -> list[torch.nn.Module]:
        inner: Any = self.model.model
        vit = getattr(inner.vit, "vision_model", inner.vit)
        return list(inner.convnext.encoder.stages) + list(vit.encoder.layers)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        return self.grid, self.grid

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """ViT layer output ``[B, 1 + g*g, D]`` -> ``[B, g*g, D]``; ConvNeXt stage output
        ``[B, C, h, w]`` -> pooled onto the ``g x g`` grid, ``[B, g*g, C]``."""
        g = self.grid
        if hidden.ndim == 4:
            return F.adaptive_avg_pool2d(hidden, (g, g)).flatten(2).transpose(1, 2)
        return hidden[:, hidden.shape[1] - g * g :]
