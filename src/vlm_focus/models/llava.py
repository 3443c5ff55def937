"""LLaVA-1.5 family: any ``LlavaForConditionalGeneration`` with a CLIP/SigLIP-style processor.

Built for ``llava-hf/llava-1.5-7b-hf``, ``llava-hf/llava-1.5-13b-hf``, ``llava-hf/bakLlava-v1-hf``
and the zoo model ``shapes-llava``. Preprocessing re-implemented in torch: resize the
shorter side (or to a fixed size), centre crop, rescale, normalise - as the processor does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import preprocess as P
from .base import Adapter
from .registry import register_adapter


@register_adapter("llava", model_types=("llava",))
class LlavaAdapter(Adapter):
    family = "llava"

    def __init__(self, model, processor, name: str = "") -> None:
        super().__init__(model, processor, name)
        self.ip = self.image_processor()

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        size = P.size_dict(self.ip.size)
        if size.get("shortest_edge"):
            return P.shortest_edge_size(height, width, size["shortest_edge"])
        return size["height"], size["width"]

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        x = pixels
        if getattr(ip, "do_resize", True):
            x = P.resize(
                x, self._target_size(*x.shape[-2:]), getattr(ip, "resample", P.PIL_BICUBIC), fast=self.fast
            )
        if getattr(ip, "do_center_crop", False):
            crop = P.size_dict(ip.crop_size)
            x = P.center_crop(x, (crop["height"], crop["width"]))
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x, ip.image_mean, ip.image_std)
        return {"pixel_values": x}

    # ----- hook points -----------------------------------------------------------------
    def vision_layers(self) -> list[torch.nn.Module]:
        """Vision layers up to the one whose output feeds the projector
        (``vision_feature_layer``: -2 for LLaVA-1.5, so its last layer is left out)."""
        tower = self.model.model.vision_tower
        layers = list(getattr(tower, "vision_model", tower).encoder.layers)
        feature = self.model.config.vision_feature_layer
        # hidden_states[0] is the embedding output, hidden_states[k] the output of layer k.
        last = max(feature) if isinstance(feature, (list, tuple)) else feature
        last = last if last >= 0 else len(layers) + 1 + last
        return layers[:last]

    def _crop_box(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Resized size and the crop box ``(top, left, h, w)`` in resized coordinates."""
        rh, rw = self._target_size(height, width) if getattr(self.ip, "do_resize", True) else (height, width)
        if getattr(self.ip, "do_center_crop", False):
            crop = P.size_dict(self.ip.crop_size)
            ch, cw = crop["height"], crop["width"]
            return (rh, rw), ((rh - ch) // 2, (rw - cw) // 2, ch, cw)
        return (rh, rw), (0, 0, rh, rw)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        _, (_, _, ch, cw) = self._crop_box(*pixels.shape[-2:])
        patch = self.model.config.vision_config.patch_size
        return ch // patch, cw // patch

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config.vision_config
        n = (cfg.image_size // cfg.patch_size) ** 2
        return hidden[:, hidden.shape[1] - n :]

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        (rh, rw), (top, left, ch, cw) = self._crop_box(height, width)
        crop = F.interpolate(
            grid_map[None, None].float(), size=(ch, cw), mode="bilinear", align_corners=False
        )
        canvas = torch.zeros(1, 1, max(rh, top + ch), max(rw, left + cw), device=grid_map.device)
        canvas[..., max(top, 0) : max(top, 0) + ch, max(left, 0) : max(left, 0) + cw] = crop
        canvas = canvas[..., :rh, :rw]
        return F.interpolate(canvas, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
