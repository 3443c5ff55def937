import io

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_focus.errors import ImageError
from vlm_focus.images import load_image, to_tensor


def _save(img: Image.Image, path, fmt="PNG"):
    img.save(path, format=fmt)
    return path


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"this is text, not a png")
    with pytest.raises(ImageError, match="not an image"):
        load_image(p)


def test_truncated_image(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(p)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16", "LA", "1"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.new("RGB", (20, 10), (200, 100, 50))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(np.full((10, 20), 65535, np.uint16))
    fmt = "TIFF" if mode in ("CMYK",) else "PNG"
    out = load_image(_save(img, tmp_path / f"x.{fmt.lower()}", fmt))
    assert out.mode == "RGB" and out.size == (20, 10)
    if mode == "I;16":
        assert np.asarray(out).min() == 255  # full-scale 16-bit maps to white


def test_alpha_composited_on_white():
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert np.asarray(load_image(img))[0, 0].tolist() == [255, 255, 255]


def test_tiny_and_huge(tmp_path):
    with pytest.raises(ImageError, match="at least"):
        load_image(Image.new("RGB", (1, 1)))
    p = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="decompression"):
        load_image(p, max_pixels=1000)


def test_arrays_and_tensors():
    arr = np.zeros((12, 16, 3), np.float32)
    arr[..., 0] = 1.0
    assert np.asarray(load_image(arr))[0, 0].tolist() == [255, 0, 0]
    t = torch.zeros(3, 12, 16)
    assert load_image(t).size == (16, 12)
    with pytest.raises(ImageError):
        load_image(torch.full((3, 12, 16), float("nan")))
    with pytest.raises(ImageError):
        load_image(42)


def test_to_tensor_working_size():
    img = Image.new("RGB", (800, 400), (255, 0, 0))
    t = to_tensor(img, max_side=200)
    assert t.shape == (3, 100, 200) and float(t[0].mean()) == pytest.approx(1.0)
