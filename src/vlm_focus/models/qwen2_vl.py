"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: native-resolution vision encoders with 2x2 token merging.

Built for ``Qwen/Qwen2-VL-2B-Instruct``, ``Qwen/Qwen2-VL-7B-Instruct``,
``Qwen/Qwen2.5-VL-3B-Instruct``, ``Qwen/Qwen2.5-VL-7B-Instruct``, ``Qwen/Qwen2.5-VL-72B-Instruct``,
``Qwen/Qwen3-VL-2B-Instruct``, ``Qwen/Qwen3-VL-4B-Instruct`` and ``Qwen/Qwen3-VL-8B-Instruct``
(``model_type`` ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``; all three use the
``Qwen2VLImageProcessor`` rules).

Preprocessing re-implemented in torch, as the processor does it: ``smart_resize`` (both sides
multiples of ``patch_size * merge_size``, pixel count within ``[min_pixels, max_pixels]``),
PIL-like bicubic resize with 8-bit rounding, rescale, normalise, then patchify into the flat
``pixel_values`` ``[grid_h * grid_w, C * temporal_patch * patch * patch]`` in the processor's
order (merge windows of ``merge x merge`` patches, row-major; each patch repeated over the
temporal axis, as for a still image) with ``image_grid_thw = [[1, grid_h, grid_w]]``.
A batch ``[B, 3, H, W]`` is concatenated along dim 0 with ``image_grid_thw`` repeated.

Where we differ from the Hugging Face processor:

- the output is differentiable in the pixels (the 8-bit rounding is straight-through);
- images with an aspect ratio above 200 raise :class:`ModelError` (HF: ``ValueError``);
- ``load_processor`` builds the processor without its video processor when torchvision is
  missing (transformers 5.x cannot build Qwen video processors without it; images only).

Hook points (Grad-CAM, T-MM, IIA, raw attention): the vision grid is the *merged* token grid
``(grid_h / merge, grid_w / merge)`` - the units the language model sees, one image token
each. The vision blocks run on a flat ``[B * N, D]`` sequence in merge-window order (and, in
Qwen2.5-VL, permuted into attention windows); :meth:`Qwen2VLAdapter.patch_tokens` undoes the
window permutation and averages the ``merge x merge`` patches of each unit, giving row-major
``[B, rows * cols, D]``. The blocks' outputs have no batch axis (``[B * N, D]``): a method
must map them with ``patch_tokens`` before checking for one image. The vision attention
modules discard their attention weights; for T-MM and IIA the attention function is swapped
for a recording eager one (``methods.hooks.recorded_attention``), whose per-window
probabilities (Qwen2.5-VL's window blocks, whole images in the full-attention blocks) are
placed on the block diagonal of the sequence's ``N x N`` attention. There is no class token:
T-MM's ``rows="cls"`` reads the mean row.

Example::

    lens = vlm_focus.load("Qwen/Qwen2.5-VL-3B-Instruct", method="igos++", dtype="bf16")
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError, ModelError
from . import preprocess as P
from .base import Adapter
from .processors import load_processor
from .registry import register_adapter

PROCESSORS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
}


def encode_answer_after_prompt(adapter: Adapter, answer: str) -> torch.Tensor:
    """Answer ids ``[T]`` as they follow the chat template's generation prompt: without the
    leading space the base class adds when the prompt ends in whitespace (ChatML templates
    end with ``"assistant\\n"``), so that a given answer tokenizes as a generated one would."""
    if not answer or not answer.strip():
        raise InputError("the answer is empty")
    if not adapter.prompt("?")[-1:].isspace():
        return Adapter.encode_answer(adapter, answer)
    ids = adapter.tokenizer(answer.strip(), add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if len(ids) == 0:
        raise InputError("the answer is empty")
    return ids


def merge_order(
    grid_h: int, grid_w: int, merge: int, window_index: torch.Tensor | None = None
) -> torch.Tensor:
    """For each merged unit in row-major order, its index in the vision blocks' sequence
    of units (identity for Qwen2-VL/Qwen3-VL; the inverse window permutation for Qwen2.5-VL)."""
    n = (grid_h // merge) * (grid_w // merge)
    if window_index is None:
        return torch.arange(n)
    return torch.argsort(window_index.cpu())


@register_adapter("qwen2_vl", model_types=("qwen2_vl", "qwen2_5_vl", "qwen3_vl"))
class Qwen2VLAdapter(Adapter):
    family = "qwen2_vl"

    def __init__(self, model, processor, name: str = "") -> None:
        super().__init__(model, processor, name)
        self.ip = ip = self.image_processor()
        self.merge = int(getattr(ip, "merge_size", 2))
        self.patch = int(getattr(ip, "patch_size", 14))
        self.temporal = int(getattr(ip, "temporal_patch_size", 2))
        self.vision_config: Any = model.config.vision_config
        vcfg = self.vision_config
        if (vcfg.patch_size, vcfg.spatial_merge_size) != (self.patch, self.merge):
            raise ModelError(
                f"{self.name}: processor patch/merge {self.patch}/{self.merge} differ from the vision "
                f"config's {vcfg.patch_size}/{vcfg.spatial_merge_size}"
            )

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        return load_processor(path, PROCESSORS.get(model_type, "Qwen2VLProcessor"), trust_remote_code)

    # ----- preprocessing -----------------------------------------------------------------
    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """``smart_resize``: the processor's output size for an image of this size."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        if not getattr(self.ip, "do_resize", True):
            return height, width
        size = P.size_dict(self.ip.size)
        if max(height, width) / min(height, width) > 200:
            raise ModelError(f"{self.name}: aspect ratio of a {height}x{width} image exceeds 200")
        return smart_resize(
            height,
            width,
            factor=self.patch * self.merge,
            min_pixels=size["shortest_edge"],
            max_pixels=size["longest_edge"],
        )

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """``(grid_h, grid_w)``: patches (before merging) for an image of this size."""
        h, w = self.resized_size(height, width)
        return h // self.patch, w // self.patch

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        B, C, H, W = pixels.shape
        h, w = self.resized_size(H, W)
        x = P.resize(pixels, (h, w), getattr(ip, "resample", P.PIL_BICUBIC), fast=self.fast)
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x, ip.image_mean, ip.image_std)
        p, m = self.patch, self.merge
        gh, gw = h // p, w // p
        # [B, C, gh/m, m, p, gw/m, m, p] -> [B, gh/m, gw/m, m, m, C, p, p], as the processor
        x = x.reshape(B, C, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(*x.shape[:6], self.temporal, p, p)  # a still image: repeat in time
        values = x.reshape(B * gh * gw, C * self.temporal * p * p)
        grid = torch.tensor([[1, gh, gw]] * B, dtype=torch.long, device=pixels.device)
        self.remember_layout((gh, gw))  # patch_tokens splits the flat [B * N, D] by it
        return {"pixel_values": values, "image_grid_thw": grid}

    # ----- text-side inputs ----------------------------------------------------------------
    def encode_answer(self, answer: str) -> torch.Tensor:
        return encode_answer_after_prompt(self, answer)

    def extra_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mm_token_type_ids`` (1 at image placeholders): the model builds its 3-D rotary
        positions (M-RoPE) from them and ``image_grid_thw``, and refuses images without them."""
        return {"mm_token_type_ids": self.image_token_mask(input_ids).to(torch.int)}

    # ----- hook points ---------------------------------------------------------------------
    class_token = False  # patch tokens only (merged into units after the encoder)

    def vision_layers(self) -> list[torch.nn.Module]:
        model: Any = self.model
        return list(model.model.visual.blocks)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The merged token grid ``(grid_h / merge, grid_w / merge)``."""
        gh, gw = self.patch_grid(*pixels.shape[-2:])
        return gh // self.merge, gw // self.merge

    def _unit_order(self, gh: int, gw: int, device: torch.device) -> torch.Tensor:
        vcfg = self.vision_config
        window_index = None
        if getattr(vcfg, "window_size", None) and getattr(vcfg, "fullatt_block_indexes", None) is not None:
            from transformers.vision_utils import get_vision_window_index

            window_index, _ = get_vision_window_index(
                torch.tensor([[1, gh, gw]]),
                spatial_merge_size=self.merge,
                window_size=vcfg.window_size,
                patch_size=self.patch,
            )
        return merge_order(gh, gw, self.merge, window_index).to(device)

    def patch_tokens(self, hidden: torch.Tensor, layout: tuple[int, int] | None = None) -> torch.Tensor:
        """Vision-block output ``[B * N, D]`` (or ``[B, N, D]``), ``N = grid_h * grid_w`` in the
        blocks' order -> ``[B, rows * cols, D]`` row-major on the merged grid (each unit the mean
        of its ``merge x merge`` patches). ``layout``: the patch grid ``(grid_h, grid_w)``;
        by default that of the image this thread preprocessed last."""
        grid = layout if layout is not None else self.recalled_layout()
        if grid is None:
            raise ModelError(
                f"{self.name}: patch_tokens needs a forward pass first (no image preprocessed yet)"
            )
        gh, gw = grid
        n, unit = gh * gw, self.merge**2
        x = hidden if hidden.ndim == 3 else hidden.reshape(-1, n, hidden.shape[-1])
        if x.shape[1] != n:
            raise ModelError(f"{self.name}: {x.shape[1]} vision tokens per image, expected {gh}x{gw} = {n}")
        x = x.reshape(x.shape[0], n // unit, unit, x.shape[-1]).mean(2)
        return x[:, self._unit_order(gh, gw, x.device)]
