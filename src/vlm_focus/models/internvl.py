"""InternVL3 and InternVL3.5 in their transformers-native form: dynamic tiling, pixel shuffle, projector.

Built for ``OpenGVLab/InternVL3-1B-hf``, ``OpenGVLab/InternVL3-2B-hf``, ``OpenGVLab/InternVL3-8B-hf``
(and the other ``InternVL3-*-hf`` sizes), ``OpenGVLab/InternVL3_5-1B-HF``, ``OpenGVLab/InternVL3_5-2B-HF``,
``OpenGVLab/InternVL3_5-8B-HF`` (and the other ``InternVL3_5-*-HF`` checkpoints) - every
``InternVLForConditionalGeneration`` (``model_type`` ``internvl``) with the ``InternVLProcessor``
and its ``GotOcr2ImageProcessor``. The remote-code checkpoints without the ``-hf``/``-HF``
suffix (``model_type`` ``internvl_chat``) are not supported.

Preprocessing re-implemented in torch, as the processor does it for a single image
(``crop_to_patches``, which ``InternVLProcessor`` switches on whatever the image processor's
own setting): among the tile grids ``cols x rows`` with ``min_patches <= cols * rows <=
max_patches`` the one whose aspect ratio is closest to the image's is chosen (ties go to the
larger grid while the image's area exceeds half the grid's); the image is resized (PIL-like
bicubic with 8-bit rounding) to ``(rows * S, cols * S)`` and cut into ``S x S`` tiles,
row-major; when there is more than one tile the whole image resized to ``S x S`` is appended
as a thumbnail. The tiles are rescaled and normalised: ``pixel_values`` ``[B * n, 3, S, S]``,
the ``n`` inputs of each image consecutive (the model scatters the features of all its inputs
into the image placeholders in order). The processor writes ``image_seq_length * n`` context
tokens between ``<img>`` and ``</img>``; a batch of ``B`` images of one size fits the prompt
built for one. Without tiling (``crop_to_patches`` off or ``max_patches`` 1) the image is
resized to ``S x S``, one input.

Where we differ from the Hugging Face processor:

- the output is differentiable in the pixels (the 8-bit rounding is straight-through);
- multi-image prompts and videos are not supported;
- ``do_resize=False`` without tiling raises :class:`ModelError` (HF would pass an image of
  any size on to a vision tower that needs square ``S x S`` inputs);
- ``load_processor`` builds the processor without its video processor when torchvision is
  missing (images only).

Hook points: the vision layers are the InternViT encoder's; the vision grid is one input's
grid of image tokens, ``S / (patch * k)`` a side with ``k = 1 / downsample_ratio`` (2).
:meth:`InternVLAdapter.patch_tokens` drops the class token and averages each ``k x k``
window of patches (the units the pixel shuffle folds into one token), for every tile and the
thumbnail, in the language model's image-token order; :meth:`InternVLAdapter.patches_to_pixels`
stitches the tiles' grids row-major (the tiles cover the whole image, resized, no crop, no
padding), resizes them onto the image and adds the thumbnail's grid resized likewise. So
every internal-signal method maps every tile and the thumbnail: Grad-CAM and raw attention
directly, T-MM and IIA with one attention rollout per encoder input (the encoder attends
within each tile). The perturbation methods (``igos++``, ``occlusion``, ``rise``) see every
tile and the thumbnail through the differentiable preprocessing.

Example::

    lens = vlm_focus.load("OpenGVLab/InternVL3-1B-hf", method="igos++", dtype="bf16")
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ..errors import ModelError
from . import preprocess as P
from .base import Adapter, check_count
from .processors import load_processor
from .qwen2_vl import encode_answer_after_prompt
from .registry import register_adapter


class Tiling(NamedTuple):
    """How the processor cuts one image: a ``rows x cols`` grid of tiles, plus a thumbnail."""

    rows: int
    cols: int
    thumbnail: bool

    @property
    def n_tiles(self) -> int:
        return self.rows * self.cols

    @property
    def n_inputs(self) -> int:
        """Vision-encoder inputs per image: the tiles and the thumbnail."""
        return self.n_tiles + int(self.thumbnail)


def tile_arrangements(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    """Every ``(cols, rows)`` with ``min_tiles <= cols * rows <= max_tiles``, by tile count
    (stable: columns, then rows, ascending among equal counts), the processor's order."""
    pairs = [
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    ]
    return sorted(pairs, key=lambda p: p[0] * p[1])


def tile_grid(
    height: int, width: int, tile: tuple[int, int], min_tiles: int, max_tiles: int
) -> tuple[int, int]:
    """``(rows, cols)`` of the tile grid whose aspect ratio is closest to the image's; on a
    tie the later (larger) grid wins while the image's area exceeds half of the grid's
    (``get_optimal_tiled_canvas`` of the GOT-OCR2 image processor)."""
    aspect, area = width / height, width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in tile_arrangements(min_tiles, max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (rows, cols), diff
        elif diff == best_diff and area > 0.5 * tile[0] * tile[1] * cols * rows:
            best = (rows, cols)
    return best


def image_options(processor: Any) -> dict[str, Any]:
    """The image processor's settings as the processor calls it: the image processor's
    attributes, overridden by the processor's image defaults (``InternVLProcessor`` passes
    ``crop_to_patches=True``)."""
    ip = processor.image_processor
    keys = (
        "crop_to_patches",
        "min_patches",
        "max_patches",
        "size",
        "resample",
        "do_resize",
        "do_rescale",
        "do_normalize",
        "image_mean",
        "image_std",
    )
    options = {k: getattr(ip, k, None) for k in keys}
    overrides = getattr(processor, "images_kwargs", None) or {}
    options.update({k: v for k, v in overrides.items() if k in keys})
    return options


@register_adapter("internvl", model_types=("internvl",))
class InternVLAdapter(Adapter):
    family = "internvl"

    def __init__(self, model, processor, name: str = "") -> None:
        super().__init__(model, processor, name)
        self.ip = self.image_processor()
        self.options = image_options(processor)
        size = P.size_dict(self.options["size"])
        if "height" not in size or "width" not in size:
            raise ModelError(f"{self.name}: the image processor's size {size} is not a tile height/width")
        self.tile = (int(size["height"]), int(size["width"]))
        self.vision_config: Any = model.config.vision_config
        self.patch_grid = self._patch_grid()
        self.merge = self._merge()
        self.unit_grid = (self.patch_grid[0] // self.merge, self.patch_grid[1] // self.merge)
        self._check_tokens_per_tile()

    @classmethod
    def load_processor(cls, path: str, model_type: str, trust_remote_code: bool = False) -> Any:
        """The model's processor (image-only when torchvision is missing)."""
        return load_processor(path, "InternVLProcessor", trust_remote_code)

    def encode_answer(self, answer: str) -> torch.Tensor:
        return encode_answer_after_prompt(self, answer)

    # ----- configuration checks ----------------------------------------------------------
    def _patch_grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of patches of one ``S x S`` tile."""
        patch = self.vision_config.patch_size
        ph, pw = (patch, patch) if isinstance(patch, int) else patch
        return self.tile[0] // ph, self.tile[1] // pw

    def _merge(self) -> int:
        """``k = 1 / downsample_ratio``: the pixel shuffle folds ``k x k`` patches into a token."""
        ratio = float(self.model.config.downsample_ratio)
        k = round(1 / ratio)
        gh, gw = self.patch_grid
        if k < 1 or abs(k * ratio - 1) > 1e-6 or gh % k or gw % k:
            raise ModelError(
                f"{self.name}: downsample_ratio {ratio} does not divide the {gh}x{gw} patch grid of a tile"
            )
        return k

    def _check_tokens_per_tile(self) -> None:
        expected = self.unit_grid[0] * self.unit_grid[1]
        seq = getattr(self.processor, "image_seq_length", expected)
        if seq != expected:
            raise ModelError(
                f"{self.name}: the processor writes {seq} image tokens per tile, the model makes {expected}"
            )

    # ----- preprocessing -----------------------------------------------------------------
    def tiled(self) -> bool:
        """Whether the processor cuts images into tiles (``crop_to_patches`` and more than one allowed)."""
        o = self.options
        return bool(o["crop_to_patches"]) and int(o["max_patches"]) > 1

    def tiling(self, height: int, width: int) -> Tiling:
        """The tile grid of an image of this size, and whether a thumbnail follows the tiles."""
        if not self.tiled():
            return Tiling(1, 1, False)
        o = self.options
        rows, cols = tile_grid(height, width, self.tile, int(o["min_patches"]), int(o["max_patches"]))
        return Tiling(rows, cols, rows * cols > 1)

    def views(self, pixels: torch.Tensor, tiling: Tiling) -> list[torch.Tensor]:
        """The encoder inputs of each image, each ``[B, 3, S, S]`` in [0, 1]: the tiles
        row-major, then the thumbnail (or the one resized image without tiling)."""
        resample = self.options["resample"]
        resample = P.PIL_BICUBIC if resample is None else int(resample)
        th, tw = self.tile
        if not self.tiled():
            if not self.options["do_resize"]:
                raise ModelError(f"{self.name}: do_resize=False without tiling is not supported")
            return [P.resize(pixels, self.tile, resample, fast=self.fast)]
        canvas = P.resize(pixels, (tiling.rows * th, tiling.cols * tw), resample, fast=self.fast)
        tiles = [
            canvas[..., i * th : (i + 1) * th, j * tw : (j + 1) * tw]
            for i in range(tiling.rows)
            for j in range(tiling.cols)
        ]
        if tiling.thumbnail:
            tiles.append(P.resize(pixels, self.tile, resample, fast=self.fast))
        return tiles

    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        tiling = self.tiling(*pixels.shape[-2:])
        x = torch.stack(self.views(pixels, tiling), dim=1).flatten(0, 1)  # [B * n, 3, S, S]
        if not o["do_rescale"]:  # the processor expects 0-255 input
            x = x * 255.0
        if o["do_normalize"]:
            x = P.normalize(x, o["image_mean"], o["image_std"])
        self.remember_layout(tiling)  # patch_tokens finds each image's tiles by it
        return {"pixel_values": x}

    # ----- hook points (every tile and the thumbnail) ----------------------------------------
    def vision_layers(self) -> list[torch.nn.Module]:
        model: Any = self.model
        return list(model.model.vision_tower.encoder.layer)

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """One input's (a tile's or the thumbnail's) grid of image tokens, ``S / (patch * k)`` a side."""
        return self.unit_grid

    def patch_tokens(self, hidden: torch.Tensor, layout: Tiling | None = None) -> torch.Tensor:
        """Vision-layer output ``[B * n_inputs, 1 + gh * gw, D]`` -> ``[B, n_inputs * uh * uw, D]``,
        the language model's image-token order: tiles row-major, then the thumbnail, each on
        its token grid (class token dropped, the ``k x k`` patches the pixel shuffle folds into
        one token averaged). ``layout``: the tiling; by default that of the image this thread
        preprocessed last (one input when none was preprocessed yet)."""
        tiling = layout or self.recalled_layout() or Tiling(1, 1, False)
        n, (gh, gw), k = tiling.n_inputs, self.patch_grid, self.merge
        if hidden.shape[0] % n:
            raise ModelError(
                f"{self.name}: {hidden.shape[0]} encoder inputs, not a multiple of {n} per image"
            )
        if hidden.shape[1] < gh * gw:
            raise ModelError(f"{self.name}: {hidden.shape[1]} vision tokens per tile, expected {gh}x{gw}")
        x = hidden[:, hidden.shape[1] - gh * gw :]
        units = x.reshape(x.shape[0], gh // k, k, gw // k, k, x.shape[-1]).mean((2, 4))
        return units.reshape(x.shape[0] // n, n * (gh // k) * (gw // k), x.shape[-1])

    def patches_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The tiles' grids stitched row-major (the tiles cut the whole image, resized, without
        crop or padding) and the thumbnail's grid (the whole image), each resized onto the
        image, added."""
        H, W = pixels.shape[-2:]
        tiling = self.tiling(H, W)
        uh, uw = self.unit_grid
        per = uh * uw
        check_count(values, tiling.n_inputs * per, f"the {uh}x{uw} grids of {tiling.n_inputs} inputs")
        tiles = values[: tiling.n_tiles * per].reshape(tiling.rows, tiling.cols, uh, uw).permute(0, 2, 1, 3)
        heat = self.grid_to_pixels(tiles.reshape(tiling.rows * uh, tiling.cols * uw), H, W)
        if tiling.thumbnail:
            heat = heat + self.grid_to_pixels(values[-per:].reshape(uh, uw), H, W)
        return heat
