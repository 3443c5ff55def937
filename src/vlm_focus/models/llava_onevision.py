"""LLaVA-OneVision and LLaVA-NeXT: any-resolution crops plus a downscaled base image.

Built for ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf``, ``llava-hf/llava-onevision-qwen2-7b-ov-hf``,
``llava-hf/llava-onevision-qwen2-72b-ov-hf`` (and their ``-si``/``-chat`` variants; ``model_type``
``llava_onevision``), and ``llava-hf/llava-v1.6-mistral-7b-hf``, ``llava-hf/llava-v1.6-vicuna-7b-hf``
(``llava_next``).

Preprocessing re-implemented in torch, as the processors do it for a single image:
``select_best_resolution`` picks a grid from ``image_grid_pinpoints``; the image is resized
(aspect kept, PIL-like bicubic with 8-bit rounding) into that resolution and zero-padded to it
(centred); the padded canvas is cut into ``crop x crop`` crops, row-major; the base image is
the whole image resized to the processor's size. ``pixel_values`` = ``[base, crop_1, ...]``
``[B, 1 + n_crops, 3, S, S]`` (each then resized/centre-cropped to ``size`` as the processor
does - identities for hub configs), rescaled and normalised; ``image_sizes`` = ``[[H, W]] * B``.
Every crop and the base image are slices/resizes of the one (masked) input, so a mask reaches
all of them. The model computes the number of image tokens from ``image_sizes``; the
processor expands the placeholders from the same rule, so the two agree for any size.

Where we differ from the Hugging Face processors:

- the output is differentiable in the pixels (8-bit rounding is straight-through);
- multi-image prompts (OneVision pads each image to a square instead) are not supported;
- ``load_processor`` builds the OneVision processor without its video processor when
  torchvision is missing (images only).

Hook points: **the base image's grid only**, ``(image_size / patch,) * 2``. The base image is
the whole image squashed to ``S x S`` (no crop), so :meth:`grid_to_pixels` is a plain resize;
:meth:`patch_tokens` keeps the base image's tokens (the first of each image's ``1 + n_crops``
encoder inputs, class token dropped for CLIP towers) and ignores the high-resolution crops.
For the internal-signal methods: Grad-CAM maps the base image's tokens; T-MM and IIA
refuse (the encoder runs ``1 + n_crops`` inputs per image, and rollout over the base image
alone would ignore the crops); raw attention refuses (the image tokens include the crops'
tokens and row newlines, which do not fit the base grid). The perturbation methods
(``igos++``, ``occlusion``, ``rise``) see every crop through the differentiable preprocessing.

Example::

    lens = vlm_focus.load("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", method="igos++")
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ModelError
from . import preprocess as P
from .base import Adapter
from .qwen2_vl import encode_answer_after_prompt, load_image_processor_only
from .registry import register_adapter

PROCESSORS = {"llava_onevision": "LlavaOnevisionProcessor", "llava_next": "LlavaNextProcessor"}


def select_best_resolution(height: int, width: int, pinpoints: list) -> tuple[int, int]:
    """The pinpoint ``(h, w)`` keeping the most image pixels, then wasting the fewest (HF's rule)."""
    best, best_eff, best_waste = None, 0, float("inf")
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        eff = min(int(width * scale) * int(height * scale), width * height)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (int(h), int(w)), eff, waste
    if best is None:
        raise ModelError("the processor has no image_grid_pinpoints")
    return best


def fit_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """Size of the image resized (aspect kept, ceil) to fit ``target`` (HF ``get_patch_output_size``)."""
    th, tw = target
    sw, sh = tw / width, th / height
    if sw < sh:
        return min(math.ceil(height * sw), th), tw
    return th, min(math.ceil(width * sh), tw)


@register_adapter("llava_onevision", model_types=("llava_onevision", "llava_next"))
class LlavaOnevisionAdapter(Adapter):
    family = "llava_onevision"

    def __init__(self, model, processor, name: str = "") -> None:
        super().__init__(model, processor, name)
        ip = self.image_processor()
        if not getattr(ip, "image_grid_pinpoints", None):
            raise ModelError(f"{self.name}: the processor has no any-resolution image processor")
        self.ip = ip
        size = P.size_dict(ip.size)
        side = size.get("shortest_edge")
        self.base_size = (side, side) if side else (size["height"], size["width"])
        crop = P.size_dict(ip.crop_size) if getattr(ip, "crop_size", None) else {}
        self.crop = int(crop.get("height") or size.get("height") or side or 0)
        self.vision_config: Any = model.config.vision_config
        # Number of encoder inputs per image (base + crops) of the last preprocessed image:
        # patch_tokens needs it to find the base images in the tower's [B * (1 + n), N, D].
        self._n_inputs: int | None = None

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        return load_image_processor_only(
            PROCESSORS.get(model_type, "LlavaOnevisionProcessor"), path, trust_remote_code
        )

    def encode_answer(self, answer: str) -> torch.Tensor:
        return encode_answer_after_prompt(self, answer)

    # ----- preprocessing -----------------------------------------------------------------
    def layout(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(best resolution, resized size inside it, (top, left) padding)`` for an image."""
        best = select_best_resolution(height, width, self.ip.image_grid_pinpoints)
        fit = fit_size(height, width, best)
        return best, fit, ((best[0] - fit[0]) // 2, (best[1] - fit[1]) // 2)

    def _per_crop(self, x: torch.Tensor) -> torch.Tensor:
        """The processor's per-crop resize and centre crop (identities when crops are ``S x S``)."""
        ip = self.ip
        resample = getattr(ip, "resample", P.PIL_BICUBIC)
        if getattr(ip, "do_resize", True):
            size = P.size_dict(ip.size)
            side = size.get("shortest_edge")
            h, w = x.shape[-2:]
            target = P.shortest_edge_size(h, w, side) if side else (size["height"], size["width"])
            x = P.resize(x, target, resample)
        if getattr(ip, "do_center_crop", False) and getattr(ip, "crop_size", None):
            crop = P.size_dict(ip.crop_size)
            x = P.center_crop(x, (crop["height"], crop["width"]))
        return x

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        B, _, H, W = pixels.shape
        resample = getattr(ip, "resample", P.PIL_BICUBIC)
        (bh, bw), (fh, fw), (top, left) = self.layout(H, W)
        canvas = F.pad(P.resize(pixels, (fh, fw), resample), (left, bw - fw - left, top, bh - fh - top))
        s = self.crop
        crops = [canvas[..., i : i + s, j : j + s] for i in range(0, bh, s) for j in range(0, bw, s)]
        inputs = [self._per_crop(c) for c in [P.resize(pixels, self.base_size, resample), *crops]]
        x = torch.stack(inputs, dim=1)  # [B, 1 + n, 3, S, S]
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x.flatten(0, 1), ip.image_mean, ip.image_std).unflatten(0, x.shape[:2])
        self._n_inputs = x.shape[1]
        sizes = torch.tensor([[H, W]] * B, dtype=torch.long, device=pixels.device)
        return {"pixel_values": x, "image_sizes": sizes}

    # ----- hook points (base image only) ---------------------------------------------------
    def _tower(self) -> Any:
        model: Any = self.model
        tower = model.model.vision_tower
        return getattr(tower, "vision_model", tower)

    def vision_layers(self) -> list[torch.nn.Module]:
        return list(self._tower().encoder.layers)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        cfg = self.vision_config
        return cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vision-layer output ``[B * (1 + n_crops), N, D]`` -> the base images' patch tokens
        ``[B, rows * cols, D]`` (class token dropped); a ``[1, N, D]`` input is taken as one
        base image. ``n_crops`` is that of the last preprocessed image."""
        rows, cols = self.vision_grid(hidden)
        n = self._n_inputs or 1
        if hidden.shape[0] > 1:
            if hidden.shape[0] % n:
                raise ModelError(
                    f"{self.name}: {hidden.shape[0]} encoder inputs, not a multiple of {n} per image"
                )
            hidden = hidden[::n]
        return hidden[:, hidden.shape[1] - rows * cols :]

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The base image is the whole image resized to ``S x S``: a plain resize back."""
        up = F.interpolate(
            grid_map[None, None].float(), size=(height, width), mode="bilinear", align_corners=False
        )
        return up[0, 0]
