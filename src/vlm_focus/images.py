"""Loading and validating images; conversion to the working pixel tensor.

Pixels inside vlm-focus are float tensors ``[3, H, W]`` in ``[0, 1]`` on the image's own
grid (optionally downscaled to a working size). Everything else - baselines, masks,
heatmaps - lives on that grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

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


def _open(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a directory: {path}")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return img.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: too many pixels for the decompression-bomb guard ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file, or a format PIL cannot read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16/32-bit scaled by their range, alpha on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"expected an array of shape [H, W, 3], got {list(arr.shape)}")
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all():
            raise ImageError("image array holds NaN or inf")
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr[:, :, :3])


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` in ``[0, 1]`` to an RGB PIL image."""
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ImageError(f"expected a tensor of shape [3, H, W], got {list(pixels.shape)}")
    if not torch.isfinite(pixels).all():
        raise ImageError("image tensor holds NaN or inf")
    arr = (pixels.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


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
