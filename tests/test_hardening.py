"""Regression tests of the hardening issue: safe saving/loading, silent wrong results,
denial of service, and our own errors instead of tracebacks."""

import io
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_focus import Explanation
from vlm_focus.errors import ImageError, InputError, ModelError
from vlm_focus.explain import Lens, _selected_indices
from vlm_focus.images import load_image
from vlm_focus.methods import get_method
from vlm_focus.models.loading import check_device


def _explanation() -> Explanation:
    return Explanation(
        model="m",
        method="occlusion",
        question="q?",
        answer="a",
        tokens=["a"],
        token_ids=[1],
        logprob=[-1.0],
        logprob_baseline=[-2.0],
        llr=[1.0],
        selected=[0],
        alpha=1.0,
        heatmap=np.zeros((8, 8), np.float32),
        image=Image.new("RGB", (8, 8)),
    )


class _Tok:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


class _Adapter:
    """Just enough of an adapter for the Lens constructor and the question checks."""

    name = "fake"
    device = torch.device("cpu")
    tokenizer = _Tok()

    class model:  # noqa: N801
        class config:  # noqa: N801
            max_position_embeddings = 10


def _lens(**kw):
    return Lens(_Adapter(), method="occlusion", **kw)  # type: ignore[arg-type]


# ----- 1. save / load -----------------------------------------------------------------------
def test_save_does_not_write_through_symlinks(tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("explanation.json", "heatmap.npy", "image.png"):
        os.symlink(outside, out / name)
    _explanation().save(out, figures=False)
    assert outside.read_text() == "keep"
    for name in ("explanation.json", "heatmap.npy", "image.png"):
        assert not (out / name).is_symlink() and (out / name).is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("field", ["heatmap", "image", "token_maps"])
@pytest.mark.parametrize("name", ["../x.npy", "/etc/passwd", "sub/x.npy"])
def test_load_refuses_paths_outside_the_folder(tmp_path, field, name):
    out = _explanation().save(tmp_path / "ex", figures=False)
    data = json.loads((out / "explanation.json").read_text())
    data[field] = name
    (out / "explanation.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="plain file name"):
        Explanation.load(out)


def test_load_refuses_symlinked_member(tmp_path):
    out = _explanation().save(tmp_path / "ex", figures=False)
    np.save(tmp_path / "secret.npy", np.ones((2, 2)))
    (out / "heatmap.npy").unlink()
    os.symlink(tmp_path / "secret.npy", out / "heatmap.npy")
    with pytest.raises(InputError, match="symbolic link"):
        Explanation.load(out)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "explanation.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "explanation.json").write_text("[1, 2]"), "JSON object"),
        (lambda d: (d / "heatmap.npy").unlink(), "missing"),
        (lambda d: ((d / "heatmap.npy").unlink(), (d / "heatmap.npy").mkdir()), "not a regular file"),
        (lambda d: (d / "heatmap.npy").write_bytes(b"garbage"), "npy"),
        (lambda d: (d / "image.png").write_bytes(b"garbage"), "image"),
        (lambda d: _edit(d, selected="0"), "selected"),
        (lambda d: _edit(d, model=None), "model"),
        (lambda d: _edit(d, heatmap=3), "heatmap"),
    ],
)
def test_load_bad_folder_raises_input_error(tmp_path, damage, match):
    out = _explanation().save(tmp_path / "ex", figures=False)
    damage(out)
    with pytest.raises(InputError, match=match):
        Explanation.load(out)


def _edit(d, **changes):
    data = json.loads((d / "explanation.json").read_text())
    data.update(changes)
    (d / "explanation.json").write_text(json.dumps(data))


def test_save_round_trip_still_works(tmp_path):
    out = _explanation().save(tmp_path / "ex", figures=False)
    back = Explanation.load(out)
    assert back.selected == [0] and back.heatmap.shape == (8, 8)


def test_save_long_name_raises_input_error(tmp_path):
    with pytest.raises(InputError):
        _explanation().save(tmp_path / ("x" * 300), figures=False)


# ----- 2. silently wrong results ------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    path = tmp_path / "r.jpg"
    img.save(path, exif=exif.tobytes())
    assert load_image(path).size == (20, 40)


def test_uint8_tensor_is_not_clamped_to_white():
    t = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    assert np.asarray(load_image(t))[0, 0, 0] == 100


def test_float_tensor_0_255_is_read_as_0_255_with_warning():
    t = torch.full((3, 16, 16), 100.0)
    with pytest.warns(UserWarning, match="0-255"):
        img = load_image(t)
    assert np.asarray(img)[0, 0, 0] == 100


def test_float_tensor_0_1_unchanged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = load_image(torch.full((3, 16, 16), 0.5))
    assert np.asarray(img)[0, 0, 0] == 128


def test_uint16_array_is_scaled_by_65535():
    a = np.full((16, 16, 3), 32768, dtype=np.uint16)
    assert np.asarray(load_image(a))[0, 0, 0] == 128


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), None, "1"])
def test_non_finite_alpha_refused(alpha):
    with pytest.raises(InputError, match="alpha"):
        _lens(alpha=alpha)


@pytest.mark.parametrize("size", [1, 8, 15, 0, -3, 2.5])
def test_tiny_working_size_refused(size):
    with pytest.raises(InputError, match="working_size.*16"):
        _lens(working_size=size)


@pytest.mark.parametrize("selected", [[0.9], [1, 1, 1], ["0"], [True]])
def test_selected_must_be_distinct_ints(selected):
    with pytest.raises(InputError, match="selected"):
        _selected_indices(selected)


def test_selected_accepts_numpy_ints():
    assert _selected_indices([np.int64(2), 0]) == [2, 0]


# ----- 3. denial of service -----------------------------------------------------------------
def test_question_over_char_limit_refused():
    lens = _lens()
    lens.max_question_chars = 20
    with pytest.raises(InputError, match="max_question_chars"):
        lens.explain(Image.new("RGB", (16, 16)), "x" * 21)


def test_question_over_model_context_refused():
    lens = _lens()
    with pytest.raises(InputError, match="context"):
        lens.explain(Image.new("RGB", (16, 16)), " ".join(["w"] * 11))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_image_does_not_hang(tmp_path):
    from vlm_focus.cli.common import check_image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="regular file"):
        load_image(fifo)
    with pytest.raises(ImageError, match="regular file"):
        check_image(fifo)


def test_pixel_limit_checked_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("1", (200, 200)).save(path)
    decoded = []
    orig = Image.Image.load

    def spy(self):
        decoded.append(self.size)
        return orig(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    with pytest.raises(ImageError, match="limit"):
        load_image(path, max_pixels=30_000)
    assert (200, 200) not in decoded


# ----- 4. our errors instead of tracebacks --------------------------------------------------
@pytest.mark.parametrize("option", ["batch_size", "max_new_tokens", "metric_steps", "metric_grid"])
def test_zero_counts_refused(option):
    with pytest.raises(InputError, match=option):
        _lens(**{option: 0})


def test_lone_surrogate_question_refused():
    with pytest.raises(InputError, match="Unicode"):
        _lens().explain(Image.new("RGB", (16, 16)), "what is \ud800?")


@pytest.mark.parametrize("device", ["quantum", "cuda:x", "tpu"])
def test_unknown_device_refused(device):
    with pytest.raises(ModelError, match="device"):
        check_device(device)


def test_cuda_unavailable_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        check_device("cuda")


def test_closed_pil_image_refused():
    img = Image.open(io.BytesIO(_png_bytes()))
    img.close()
    with pytest.raises(ImageError):
        load_image(img)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "arr", [np.zeros((0, 0, 3), np.uint8), np.empty((16, 16, 3), dtype=object), np.zeros((0,))]
)
def test_empty_or_object_array_refused(arr):
    with pytest.raises(ImageError):
        load_image(arr)


@pytest.mark.parametrize(
    "method, options, match",
    [
        ("occlusion", {"window": "abc"}, "window"),
        ("rise", {"p": "abc"}, "p must"),
        ("rise", {"n_masks": 0}, "n_masks"),
        ("rise", {"grid": 2.5}, "grid"),
        ("igos++", {"iterations": "abc"}, "iterations"),
        ("igos++", {"size": 0}, "size"),
        ("igos++", {"lr": float("nan")}, "lr"),
        ("occlusion", {"batch_size": 0}, "batch_size"),
    ],
)
def test_method_option_types_checked(method, options, match):
    with pytest.raises(InputError, match=match):
        get_method(method, **options)


def test_method_option_exceptions_still_allowed():
    get_method("tam", filter_size=0)
    get_method("igos++", seed=0, lr=1)
