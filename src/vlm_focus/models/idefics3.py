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

Hook points: **the global image's patch grid only**, ``(S // patch,) * 2`` (the vision
encoder's tokens before the pixel shuffle; no class token). The global image is the whole
image squashed to ``S x S``, so :meth:`Idefics3Adapter.grid_to_pixels` is a resize back - of
the part the patches cover (``S // patch * patch`` of ``S`` pixels: SmolVLM's 384-px frames
with patch 14 leave the last 6 rows/columns unseen; they get 0).
:meth:`Idefics3Adapter.patch_tokens` keeps the last frame of each image (the global one).
For the internal-signal methods: Grad-CAM maps the global image's tokens; T-MM and IIA
refuse when the image is split (the encoder runs ``rows * cols + 1`` frames per image; rollout
over one of them would ignore the crops); raw attention refuses (the image tokens are every
frame's pixel-shuffled tokens, which do not fit the global patch grid). The perturbation
methods (``igos++``, ``occlusion``, ``rise``) see every crop through the differentiable
preprocessing.

Example::

    lens = vlm_focus.load("HuggingFaceTB/SmolVLM-256M-Instruct", method="igos++")
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ModelError
from . import preprocess as P
from .base import Adapter
from .qwen2_vl import encode_answer_after_prompt, image_only
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
        # Frames per image (crops + global) of the last preprocessed image: patch_tokens
        # needs it to find the global images in the encoder's [B * n_frames, N, D].
        self._n_frames: int | None = None

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        from transformers import AutoProcessor
        from transformers.utils import is_torchvision_available

        try:
            if is_torchvision_available():
                return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
            return processor_class(model_type).from_pretrained(path)
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
        x = P.pil_resize(P.quantize(pixels), first, resample)
        x = P.pil_resize(x, second, resample)
        if not rows:
            return [x]
        s = self.side
        crops = [x[..., i * s : (i + 1) * s, j * s : (j + 1) * s] for i in range(rows) for j in range(cols)]
        return [*crops, P.pil_resize(x, (s, s), resample)]

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.ip
        x = torch.stack(self.frames(pixels), dim=1)  # [B, n, 3, S, S]
        if not getattr(ip, "do_rescale", True):  # the processor expects 0-255 input
            x = x * 255.0
        if getattr(ip, "do_normalize", True):
            x = P.normalize(x.flatten(0, 1), ip.image_mean, ip.image_std).unflatten(0, x.shape[:2])
        self._n_frames = x.shape[1]
        out = {"pixel_values": x}
        if getattr(ip, "do_pad", True):
            out["pixel_attention_mask"] = torch.ones(
                (*x.shape[:2], *x.shape[-2:]), dtype=torch.long, device=x.device
            )
        return out

    # ----- hook points (global image only) -------------------------------------------------
    def vision_layers(self) -> list[torch.nn.Module]:
        model: Any = self.model
        return list(model.model.vision_model.encoder.layers)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The global image's patch grid, ``(S // patch, S // patch)``."""
        return self.side // self.patch, self.side // self.patch

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vision-layer output ``[B * n_frames, N, D]`` -> the global images' patch tokens
        ``[B, N, D]`` (the last frame of each image); a ``[1, N, D]`` input is taken as one
        global image. ``n_frames`` is that of the last preprocessed image."""
        n = self._n_frames or 1
        if hidden.shape[0] > 1:
            if hidden.shape[0] % n:
                raise ModelError(
                    f"{self.name}: {hidden.shape[0]} encoder inputs, not a multiple of {n} per image"
                )
            hidden = hidden[n - 1 :: n]
        rows, cols = self.vision_grid(hidden)
        return hidden[:, hidden.shape[1] - rows * cols :]

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The global image is the whole image squashed to ``S x S``; its patches cover the
        top-left ``rows * patch`` pixels of it: a resize back onto that part, 0 beyond it."""
        rows, cols = grid_map.shape
        ys = (torch.arange(height, dtype=torch.float32) + 0.5) * self.side / height / (rows * self.patch)
        xs = (torch.arange(width, dtype=torch.float32) + 0.5) * self.side / width / (cols * self.patch)
        grid = torch.stack(torch.meshgrid(xs * 2 - 1, ys * 2 - 1, indexing="xy"), dim=-1)
        up = F.grid_sample(
            grid_map[None, None].float().cpu(),
            grid[None],
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )[0, 0]
        seen = (ys <= 1)[:, None] & (xs <= 1)[None, :]
        return (up * seen).to(grid_map.device)
