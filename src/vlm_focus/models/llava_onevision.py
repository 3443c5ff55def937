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

Hook points: every encoder input's patch grid, ``(image_size / patch,) * 2`` each.
:meth:`patch_tokens` keeps all of an image's ``1 + n_crops`` inputs (class token dropped for
CLIP towers); :meth:`patches_to_pixels` resizes the base image's grid onto the image (it is the
whole image squashed to ``S x S``), stitches the crops' grids into the padded canvas they were
cut from, drops the padding and resizes that onto the image, and adds the two. The language
model's image tokens (base grid, then the crops' grid with padding rows/columns removed,
shrunk by OneVision's ``anyres_max_N`` rule, a row-end token per row) are mapped the same way
by :meth:`image_tokens_to_pixels`. So every internal-signal method maps every crop and the
base image: Grad-CAM and raw attention directly, T-MM and IIA with one attention rollout per
encoder input (the encoder attends within each crop). The perturbation methods
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
from .base import Adapter, check_count, resize_map
from .processors import load_processor
from .qwen2_vl import encode_answer_after_prompt
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

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        return load_processor(path, PROCESSORS.get(model_type, "LlavaOnevisionProcessor"), trust_remote_code)

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
            x = P.resize(x, target, resample, fast=self.fast)
        if getattr(ip, "do_center_crop", False) and getattr(ip, "crop_size", None):
            crop = P.size_dict(ip.crop_size)
            x = P.center_crop(x, (crop["height"], crop["width"]))
        return x

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        B, _, H, W = pixels.shape
        resample = getattr(ip, "resample", P.PIL_BICUBIC)
        (bh, bw), (fh, fw), (top, left) = self.layout(H, W)
        canvas = F.pad(
            P.resize(pixels, (fh, fw), resample, fast=self.fast), (left, bw - fw - left, top, bh - fh - top)
        )
        s = self.crop
        crops = [canvas[..., i : i + s, j : j + s] for i in range(0, bh, s) for j in range(0, bw, s)]
        inputs = [
            self._per_crop(c) for c in [P.resize(pixels, self.base_size, resample, fast=self.fast), *crops]
        ]
        x = torch.stack(inputs, dim=1)  # [B, 1 + n, 3, S, S]
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x.flatten(0, 1), ip.image_mean, ip.image_std).unflatten(0, x.shape[:2])
        # Encoder inputs per image (base + crops): patch_tokens finds the images by it.
        self.remember_layout(int(x.shape[1]))
        sizes = torch.tensor([[H, W]] * B, dtype=torch.long, device=pixels.device)
        return {"pixel_values": x, "image_sizes": sizes}

    # ----- hook points (base image and every crop) -------------------------------------------
    def _tower(self) -> Any:
        model: Any = self.model
        tower = model.model.vision_tower
        return getattr(tower, "vision_model", tower)

    def vision_layers(self) -> list[torch.nn.Module]:
        return list(self._tower().encoder.layers)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The patch grid of one encoder input (the base image or one crop)."""
        cfg = self.vision_config
        return cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size

    def patch_tokens(self, hidden: torch.Tensor, layout: int | None = None) -> torch.Tensor:
        """Vision-layer output ``[B * (1 + n_crops), N, D]`` -> ``[B, (1 + n_crops) * rows * cols, D]``:
        each image's base image then crops, each row-major on its grid (class token dropped).
        ``layout``: inputs per image, ``1 + n_crops``; by default that of the image this
        thread preprocessed last. A ``[1, N, D]`` input is one input."""
        rows, cols = self.vision_grid(hidden)
        n_inputs = layout if layout is not None else self.recalled_layout()
        n = (n_inputs or 1) if hidden.shape[0] > 1 else 1
        if hidden.shape[0] % n:
            raise ModelError(
                f"{self.name}: {hidden.shape[0]} encoder inputs, not a multiple of {n} per image"
            )
        x = hidden[:, hidden.shape[1] - rows * cols :]
        return x.reshape(hidden.shape[0] // n, n * rows * cols, hidden.shape[-1])

    def patches_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The base image's grid resized onto the image, plus the crops' grids stitched into
        the padded canvas they were cut from, its padding dropped, resized onto the image."""
        H, W = pixels.shape[-2:]
        rows, cols = self.vision_grid(pixels)
        (bh, bw), (fh, fw), (top, left) = self.layout(H, W)
        nr, nc = bh // self.crop, bw // self.crop
        per = rows * cols
        check_count(
            values, per * (1 + nr * nc), f"the {rows}x{cols} grids of the base image and {nr * nc} crops"
        )
        base = self.grid_to_pixels(values[:per].reshape(rows, cols), H, W)
        mosaic = values[per:].reshape(nr, nc, rows, cols).permute(0, 2, 1, 3).reshape(nr * rows, nc * cols)
        canvas = resize_map(mosaic, bh, bw)[top : top + fh, left : left + fw]
        return base + resize_map(canvas, H, W)

    def image_tokens_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The language model's image tokens, packed as the model packs them: the base image's
        grid, then the crops' stitched grid with its padding rows/columns removed (to within a
        patch of the image's own area), shrunk by OneVision's ``anyres_max_N`` rule when too
        large, a row-end token after each row. Mapped: base grid and stitched grid (row ends
        dropped) each resized onto the image, added."""
        H, W = pixels.shape[-2:]
        rows, cols = self.vision_grid(pixels)
        (bh, bw), _, _ = self.layout(H, W)
        uh, uw = unpadded_grid(bh // self.crop * rows, bw // self.crop * cols, H, W)
        max_crops = getattr(self.model.config, "vision_aspect_ratio", None)
        if max_crops:  # OneVision shrinks large grids to about anyres_max_N crops' worth
            ratio = math.sqrt(uh * uw / (int(max_crops.removeprefix("anyres_max_")) * rows * rows))
            if ratio > 1.1:
                uh, uw = int(uh // ratio), int(uw // ratio)
        per = rows * cols
        check_count(
            values, per + uh * (uw + 1), f"the base image's {rows}x{cols} grid and a {uh}x{uw} crop grid"
        )
        base = self.grid_to_pixels(values[:per].reshape(rows, cols), H, W)
        crops = values[per:].reshape(uh, uw + 1)[:, :uw]
        return base + resize_map(crops, H, W)


def unpadded_grid(height: int, width: int, image_h: int, image_w: int) -> tuple[int, int]:
    """Rows and columns of a ``height x width`` token grid of the padded canvas that the model
    keeps for an ``image_h x image_w`` image (HF ``unpad_image``: equal padding cut from both ends)."""
    if image_w / image_h > width / height:
        pad = (height - int(round(image_h * (width / image_w), 7))) // 2
        return height - 2 * pad, width
    pad = (width - int(round(image_w * (height / image_h), 7))) // 2
    return height, width - 2 * pad
