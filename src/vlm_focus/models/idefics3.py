"""Idefics3 and SmolVLM: the image split into square crops plus a downscaled global image.

Built for ``HuggingFaceM4/Idefics3-8B-Llama3`` (``model_type`` ``idefics3``) and
``HuggingFaceTB/SmolVLM-256M-Instruct``, ``HuggingFaceTB/SmolVLM-500M-Instruct``,
``HuggingFaceTB/SmolVLM-Instruct``, ``HuggingFaceTB/SmolVLM2-256M-Video-Instruct``,
``HuggingFaceTB/SmolVLM2-500M-Video-Instruct`` and ``HuggingFaceTB/SmolVLM2-2.2B-Instruct``
(``smolvlm``). Both use the same image-processing rules.

Preprocessing re-implemented in torch, as the processors do it for a single image (``S`` =
``max_image_size["longest_edge"]``, the vision encoder's input side):

1. resize (aspect kept) so that the longest edge is ``size["longest_edge"]`` - up- or
   downscaling; the other side rounded down, then up to an even number;
2. resize again so that both sides are multiples of ``S`` (each rounded up);
3. if that image is larger than ``S x S``: cut it into ``rows x cols`` crops of ``S x S``,
   row-major, and append the *global image*, the step-2 image resized to ``S x S``; else the
   step-2 image (``S x S``) is the only frame. Without image splitting, step 2-3 is one resize
   to ``S x S``;
4. rescale and normalise: ``pixel_values`` ``[B, n_frames, 3, S, S]``, ``n_frames = rows * cols
   + 1`` (1 when unsplit), and ``pixel_attention_mask`` ``[B, n_frames, S, S]`` (all ones:
   one image, no padding).

Every resize is Pillow's (Lanczos for the hub configs), rounded to 8 bits after each pass as
on the processor's 8-bit images: :func:`pil_resize` builds Pillow's filter coefficients as
matrices. The crops and the global image are slices/resizes of the one (masked) input, so a
mask reaches every frame. The prompt (:meth:`Adapter.prompt_ids`, the processor on the image's
PIL version) expands ``<image>`` into ``<fake_token_around_image><row_i_col_j>`` followed by
``image_seq_len`` image tokens per crop, a newline per row, then the global image's tokens
after ``<global-img>``; the frame count is a function of the image size only, so prompt and
``pixel_values`` always agree.

Where we differ from the Hugging Face processors:

- the output is differentiable in the pixels (8-bit rounding is straight-through); the input
  is rounded to 8 bits too (straight-through), as the processor gets an 8-bit image;
- multi-image prompts are not supported;
- ``load_processor`` builds the processor without its video processor when torchvision is
  missing (images only); the image-only SmolVLM processor renders chat templates without the
  video defaults (it has no video processor to read them from);
- Lanczos is Pillow's, as the models were trained with, also where transformers' torchvision
  image processor (torchvision < 0.27, or not on the CPU) falls back to bicubic;
- nearest, box and Hamming resampling raise :class:`ModelError` (no hub config uses them);
- SmolVLM's processor needs ``num2words`` (a transformers requirement): without it,
  ``load_processor`` raises :class:`ModelError`.

Hook points: every frame's patch grid, ``(S // patch,) * 2`` each (the vision encoder's
tokens before the pixel shuffle; no class token). :meth:`Idefics3Adapter.patch_tokens` keeps
all frames of an image; :meth:`Idefics3Adapter.patches_to_pixels` resizes the global image's
grid onto the image (it is the whole image squashed to ``S x S``), puts the crops' grids back
side by side (the split image is the whole image resized), resizes that onto the image, and
adds the two. Within a frame the patches cover its top-left ``S // patch * patch`` pixels
(SmolVLM's 384-px frames with patch 14 leave the last 6 rows/columns unseen; they get 0).
The language model's image tokens are each frame's ``k x k`` patch blocks (the pixel
shuffle), mapped by :meth:`Idefics3Adapter.image_tokens_to_pixels`. So every internal-signal
method maps every crop and the global image: Grad-CAM and raw attention directly, T-MM and
IIA with one attention rollout per frame (the encoder attends within each). The perturbation
methods (``igos++``, ``occlusion``, ``rise``) see every crop through the differentiable
preprocessing.

Example::

    lens = vlm_focus.load("HuggingFaceTB/SmolVLM-256M-Instruct", method="igos++")
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ModelError
from . import preprocess as P
from .base import Adapter, check_count
from .processors import image_only, load_processor
from .qwen2_vl import encode_answer_after_prompt
from .registry import register_adapter

PROCESSORS = {"idefics3": "Idefics3Processor", "smolvlm": "SmolVLMProcessor"}
MAX_SIDE = 4096  # the processors' upper bound on the resized image's longest edge


# ----- the processor's size rules -------------------------------------------------------------
def longest_edge_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """Step 1: the longest edge to ``longest``, aspect kept, the other side made even, then
    both within ``MAX_SIDE`` (HF ``get_resize_output_image_size``)."""
    aspect = width / height
    if width >= height:
        w, h = longest, int(longest / aspect)
        h += h % 2
    else:
        h, w = longest, int(longest * aspect)
        w += w % 2
    h, w = max(h, 1), max(w, 1)
    aspect = w / h
    if w >= h and w > MAX_SIDE:
        w, h = MAX_SIDE, int(MAX_SIDE / aspect)
    elif h > w and h > MAX_SIDE:
        h, w = MAX_SIDE, int(MAX_SIDE * aspect)
    return max(h, 1), max(w, 1)


def multiple_size(height: int, width: int, side: int) -> tuple[int, int]:
    """Step 2: both sides rounded up to multiples of ``side`` (HF ``resize_for_vision_encoder``)."""
    aspect = width / height
    if width >= height:
        w = math.ceil(width / side) * side
        h = math.ceil(int(w / aspect) / side) * side
    else:
        h = math.ceil(height / side) * side
        w = math.ceil(int(h * aspect) / side) * side
    return h, w


def processor_class(model_type: str) -> Any:
    """The family's processor class without a video processor (transformers needs torchvision
    to build SmolVLM's); for SmolVLM, one that needs none to render a chat template."""
    import transformers

    cls = image_only(getattr(transformers, PROCESSORS.get(model_type, "Idefics3Processor")))
    return without_video_defaults(cls) if model_type == "smolvlm" else cls


def without_video_defaults(processor_cls: type) -> Any:
    """SmolVLM's image-only processor: its video processor optional, and its chat template
    rendered without the frame defaults SmolVLM reads from the video processor."""
    from transformers.processing_utils import ProcessorMixin

    class SmolVLMImageOnly(processor_cls):
        # from_pretrained passes (and save_pretrained writes) only the arguments named here.
        def __init__(
            self,
            image_processor: Any,
            tokenizer: Any,
            video_processor: Any = None,
            image_seq_len: int = 169,
            chat_template: str | None = None,
            **kwargs: Any,
        ):
            super().__init__(
                image_processor, tokenizer, video_processor, image_seq_len, chat_template, **kwargs
            )

        def apply_chat_template(
            self, conversation: Any, chat_template: str | None = None, **kwargs: Any
        ) -> Any:
            return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)

    SmolVLMImageOnly.__name__ = SmolVLMImageOnly.__qualname__ = processor_cls.__name__
    return SmolVLMImageOnly


@register_adapter("idefics3", model_types=("idefics3", "smolvlm"))
class Idefics3Adapter(Adapter):
    family = "idefics3"

    def __init__(self, model: Any, processor: Any, name: str = "") -> None:
        super().__init__(model, processor, name)
        self.ip = ip = self.image_processor()
        if not getattr(ip, "max_image_size", None):
            raise ModelError(f"{self.name}: the processor has no Idefics3 image processor (max_image_size)")
        self.side = int(P.size_dict(ip.max_image_size)["longest_edge"])
        vcfg: Any = model.config.vision_config
        self.patch = int(vcfg.patch_size)
        if int(vcfg.image_size) != self.side:
            raise ModelError(
                f"{self.name}: the processor's crops are {self.side} px, the vision encoder takes {vcfg.image_size}"
            )
        tokens = (self.side // self.patch) ** 2 // int(model.config.scale_factor) ** 2
        if int(getattr(processor, "image_seq_len", tokens)) != tokens:
            raise ModelError(
                f"{self.name}: the processor writes {processor.image_seq_len} image tokens per frame, "
                f"the model makes {tokens}"
            )

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        try:
            return load_processor(path, "", trust_remote_code, fallback=processor_class(model_type))
        except ImportError as e:  # SmolVLM's processor needs num2words
            raise ModelError(f"cannot build the {model_type} processor: {e}") from None

    def encode_answer(self, answer: str) -> torch.Tensor:
        return encode_answer_after_prompt(self, answer)

    # ----- preprocessing -----------------------------------------------------------------
    def layout(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int], int, int]:
        """``(step-1 size, step-2 size, rows, cols)`` for an image; ``rows = cols = 0`` when it
        is not split (one ``S x S`` frame)."""
        ip, s = self.ip, self.side
        size = (height, width)
        if getattr(ip, "do_resize", True):
            size = longest_edge_size(height, width, int(P.size_dict(ip.size)["longest_edge"]))
        if not getattr(ip, "do_image_splitting", True):
            return size, (s, s), 0, 0
        h, w = multiple_size(*size, s)
        if h <= s and w <= s:
            return size, (h, w), 0, 0
        return size, (h, w), h // s, w // s

    def n_frames(self, height: int, width: int) -> int:
        """Encoder inputs for an image of this size: ``rows * cols`` crops + the global image."""
        _, _, rows, cols = self.layout(height, width)
        return rows * cols + 1 if rows else 1

    def frames(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The processor's frames ``[B, 3, S, S]`` in [0, 1] (crops row-major, then global)."""
        resample = int(getattr(self.ip, "resample", P.PIL_LANCZOS))
        first, second, rows, cols = self.layout(*pixels.shape[-2:])
        x = P.pil_resize(P.quantize(pixels), first, resample, fast=self.fast)
        x = P.pil_resize(x, second, resample, fast=self.fast)
        if not rows:
            return [x]
        s = self.side
        crops = [x[..., i * s : (i + 1) * s, j * s : (j + 1) * s] for i in range(rows) for j in range(cols)]
        return [*crops, P.pil_resize(x, (s, s), resample, fast=self.fast)]

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        x = torch.stack(self.frames(pixels), dim=1)  # [B, n, 3, S, S]
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x.flatten(0, 1), ip.image_mean, ip.image_std).unflatten(0, x.shape[:2])
        # Frames per image (crops + global): patch_tokens finds the images by it.
        self.remember_layout(int(x.shape[1]))
        out = {"pixel_values": x}
        if getattr(ip, "do_pad", True):
            out["pixel_attention_mask"] = torch.ones(
                (*x.shape[:2], *x.shape[-2:]), dtype=torch.long, device=x.device
            )
        return out

    # ----- hook points (every crop and the global image) ------------------------------------
    def vision_layers(self) -> list[torch.nn.Module]:
        model: Any = self.model
        return list(model.model.vision_model.encoder.layers)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The patch grid of one frame (a crop or the global image), ``(S // patch, S // patch)``."""
        return self.side // self.patch, self.side // self.patch

    def patch_tokens(self, hidden: torch.Tensor, layout: int | None = None) -> torch.Tensor:
        """Vision-layer output ``[B * n_frames, N, D]`` -> ``[B, n_frames * N, D]``: each image's
        frames in the processor's order (crops row-major, then the global image), patches
        row-major. ``layout``: frames per image; by default that of the image this thread
        preprocessed last. A ``[1, N, D]`` input is one frame."""
        n_frames = layout if layout is not None else self.recalled_layout()
        n = (n_frames or 1) if hidden.shape[0] > 1 else 1
        if hidden.shape[0] % n:
            raise ModelError(
                f"{self.name}: {hidden.shape[0]} encoder inputs, not a multiple of {n} per image"
            )
        rows, cols = self.vision_grid(hidden)
        x = hidden[:, hidden.shape[1] - rows * cols :]
        return x.reshape(hidden.shape[0] // n, n * rows * cols, hidden.shape[-1])

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """One frame's grid on the image it shows whole (the global image): a resize back."""
        return self._frames_to_pixels(grid_map, 1, 1, height, width)

    def _frames_to_pixels(
        self, mosaic: torch.Tensor, nr: int, nc: int, height: int, width: int
    ) -> torch.Tensor:
        """``nr x nc`` frames' grids side by side ``[nr * rows, nc * cols]`` -> ``[height, width]``:
        bilinear within each frame, never across frames (the frames tile the resized image)."""
        rows, cols = mosaic.shape[0] // nr, mosaic.shape[1] // nc
        ys = frame_weights(height, nr, self.side, rows, self.patch).to(mosaic.device)
        xs = frame_weights(width, nc, self.side, cols, self.patch).to(mosaic.device)
        return ys @ mosaic.float() @ xs.T

    def patches_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The global image's grid resized onto the image, plus the crops' grids put back side
        by side (the split image, itself the whole image resized) and resized onto it."""
        H, W = pixels.shape[-2:]
        rows, cols = self.vision_grid(pixels)
        _, _, nr, nc = self.layout(H, W)
        per = rows * cols
        check_count(
            values, per * (nr * nc + 1), f"the {rows}x{cols} grids of {nr * nc} crops and the global image"
        )
        heat = self.grid_to_pixels(values[-per:].reshape(rows, cols), H, W)
        if nr:
            mosaic = (
                values[:-per].reshape(nr, nc, rows, cols).permute(0, 2, 1, 3).reshape(nr * rows, nc * cols)
            )
            heat = heat + self._frames_to_pixels(mosaic, nr, nc, H, W)
        return heat

    def image_tokens_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The language model's image tokens: per frame, the pixel shuffle's ``k x k`` patch
        blocks row-major (``k`` = ``scale_factor``); each token's value goes to its patches."""
        rows, cols = self.vision_grid(pixels)
        k = int(self.model.config.scale_factor)
        n = self.n_frames(*pixels.shape[-2:])
        check_count(
            values, n * (rows // k) * (cols // k), f"{n} frames of {rows // k}x{cols // k} image tokens"
        )
        blocks = values.reshape(n, rows // k, 1, cols // k, 1).expand(n, rows // k, k, cols // k, k)
        return self.patches_to_pixels(blocks.reshape(-1), pixels)


def frame_weights(pixels: int, frames: int, side: int, cells: int, patch: int) -> torch.Tensor:
    """``[pixels, frames * cells]``: bilinear interpolation (pixel centres, edge values held)
    along one axis of ``frames`` frames of ``side`` px laid end to end over ``pixels`` image
    pixels, each frame's ``cells`` patches of ``patch`` px covering its first ``cells * patch``
    px; pixels past that in a frame are never seen (a zero row)."""
    pos = (torch.arange(pixels, dtype=torch.float64) + 0.5) * frames * side / pixels
    frame = (pos // side).clamp(max=frames - 1)
    inside = pos - frame * side
    p = (inside / patch - 0.5).clamp(0, cells - 1)
    lo = p.floor()
    frac = p - lo
    hi = (lo + 1).clamp(max=cells - 1)
    seen = (inside <= cells * patch).double()
    w = torch.zeros(pixels, frames * cells, dtype=torch.float64)
    at = torch.arange(pixels)
    w.index_put_((at, (frame * cells + lo).long()), (1 - frac) * seen, accumulate=True)
    w.index_put_((at, (frame * cells + hi).long()), frac * seen, accumulate=True)
    return w.float()
