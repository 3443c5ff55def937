"""Loading and validating images; conversion to the working pixel tensor.

Pixels inside vlm-focus are float tensors ``[3, H, W]`` in ``[0, 1]`` on the image's own
grid (optionally downscaled to a working size). Everything else - baselines, masks,
heatmaps - lives on that grid.
"""

from __future__ import annotations

import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError

MIN_SIDE = 8
DEFAULT_MAX_PIXELS = 64_000_000  # decompression-bomb guard (PIL's default is ~89 M)

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


def load_image(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and validate an image, returning an RGB PIL image.

    Accepts a path, a PIL image, a ``uint8``/float ``[H, W, 3]`` array or a ``[3, H, W]``
    tensor in ``[0, 1]``. Grey, palette, CMYK, 16-bit and alpha images are converted to RGB
    (alpha is composited on white). Raises :class:`ImageError` with the reason otherwise.
    """
    if isinstance(image, (str, Path)):
        img = _open(Path(image), max_pixels)
    elif isinstance(image, Image.Image):
        img = image
        _check_pixels(img, max_pixels)
        try:
            img.load()
        except (ValueError, OSError) as e:
            raise ImageError(f"cannot use this PIL image: {e}") from None
        img = ImageOps.exif_transpose(img)
    elif isinstance(image, torch.Tensor):
        img = tensor_to_pil(image)
    elif isinstance(image, np.ndarray):
        img = _array_to_pil(image)
    else:
        raise ImageError(f"cannot use an object of type {type(image).__name__} as an image")
    if img.width * img.height > max_pixels:
        raise ImageError(
            f"image is {img.width}x{img.height} = {img.width * img.height:,} px, over the limit of "
            f"{max_pixels:,} (a guard against decompression bombs); pass max_pixels to allow it"
        )
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"image is {img.width}x{img.height} px; each side needs at least {MIN_SIDE} px")
    return to_rgb(img)


# PIL's pixel limit and the warning filters are process-wide: decode one file at a time so
# that threads never see each other's settings (or leave PIL's limit changed).
_DECODE_LOCK = threading.Lock()


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        st = os.stat(path)
    except OSError:
        raise ImageError(f"image file not found: {path}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"expected an image file, got a directory: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path}: not a regular file (a FIFO, socket or device cannot be an image)")
    with _DECODE_LOCK:
        return _decode(path, max_pixels)


def _decode(path: Path, max_pixels: int) -> Image.Image:
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_pixels(img, max_pixels)  # before decoding: the header's size and mode
                img.load()
                return ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: too many pixels for the decompression-bomb guard ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file, or a format PIL cannot read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    """Refuse, from the header alone, an image whose decoded RGB copy would be too large."""
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            f"image is {w}x{h} = {w * h:,} px, over the limit of {max_pixels:,} "
            "(a guard against decompression bombs); pass max_pixels to allow it"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16/32-bit scaled by their range, alpha on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.size == 0:
        raise ImageError(f"the image array is empty (shape {list(arr.shape)})")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"expected an array of shape [H, W, 3], got {list(arr.shape)}")
    return Image.fromarray(_to_uint8(arr[:, :, :3], "array"))


def _to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """Pixel values of any numeric dtype to ``uint8``, by the dtype's value range:
    ``uint8`` as is, ``uint16`` scaled by 65535, bool as 0/255, other ints as 0-255, floats
    as [0, 1] unless their maximum exceeds 1.5 (then 0-255, with a warning)."""
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(f"image {what} of dtype {arr.dtype} holds no pixel values; use uint8 or float")
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float32) / 65535.0 * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(arr, 0, 255).astype(np.uint8)
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise ImageError(f"image {what} holds NaN or inf")
    if float(x.max()) > 1.5:
        warnings.warn(
            f"float image {what} has values up to {float(x.max()):.4g}: read as 0-255, not 0-1",
            UserWarning,
            stacklevel=4,
        )
    else:
        x = x * 255.0
    return np.clip(x, 0, 255).round().astype(np.uint8)


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` tensor to an RGB PIL image: ``uint8`` (0-255) or float in ``[0, 1]``
    (float values above 1.5 are read as 0-255, with a warning)."""
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ImageError(f"expected a tensor of shape [3, H, W], got {list(pixels.shape)}")
    if pixels.numel() == 0:
        raise ImageError(f"the image tensor is empty (shape {list(pixels.shape)})")
    if pixels.is_complex():
        raise ImageError(f"image tensor of dtype {pixels.dtype} holds no pixel values")
    t = pixels.detach().cpu()
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        t = t.float()
    arr = t.permute(1, 2, 0).numpy()
    return Image.fromarray(_to_uint8(arr, "tensor"))


def to_tensor(img: Image.Image, max_side: int | None = None) -> torch.Tensor:
    """RGB PIL image to ``[3, H, W]`` float32 in ``[0, 1]``, downscaled so that its longer
    side is at most ``max_side`` (the working resolution) when given."""
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


ImageFile.LOAD_TRUNCATED_IMAGES = False
