"""Property-based fuzzing of everything that reads outside data: the image loader, the saved
explanation loader and every dataset loader, on truncated, oversized, malformed, re-encoded
and mistyped files. The property: the call returns a valid result or raises one of our own
errors (:class:`~vlm_focus.errors.VlmFocusError`) - never another exception, never a hang
(each example runs under a 20 s alarm).

A bounded number of examples runs by default (about 30 s in all); ``VLM_FOCUS_FUZZ=slow``
selects the ``slow`` hypothesis profile (20x as many), e.g.
``VLM_FOCUS_FUZZ=slow pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import GENERATED, OPTIONS, PARQUET_WRITERS, WRITERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vlm_focus.data import get_dataset
from vlm_focus.errors import VlmFocusError
from vlm_focus.explanation import Explanation
from vlm_focus.images import MIN_SIDE, load_image

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "slow", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("VLM_FOCUS_FUZZ", "ci")
settings.load_profile(PROFILE)
SCALE = 20 if PROFILE == "slow" else 1
ALARM_S = 20


@contextlib.contextmanager
def no_hang(seconds: int = ALARM_S):
    """Fail (TimeoutError) instead of hanging when the block runs longer than ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def only_our_errors(fn, *args, **kwargs):
    """``fn(*args)``; our errors are an accepted answer (returned as None), anything else fails."""
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except VlmFocusError:
            return None


# ----- mutations of files -------------------------------------------------------------------
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.just("../../../etc/passwd"),
    st.just("/etc/hostname"),
    st.just("x" * 100_000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
ENCODINGS = ["utf-16", "utf-16-le", "utf-8-sig", "latin-1", "cp1252", "utf-32"]


def replace_json_value(data, path: list[int], value):
    """``data`` with the value at a pseudo-random position (chosen by ``path``) replaced."""
    if not path or not isinstance(data, (dict, list)) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[path[0] % len(keys)]
    new = dict(data) if isinstance(data, dict) else list(data)
    new[key] = replace_json_value(data[key], path[1:], value)
    return new


@st.composite
def mutation(draw):
    """A function ``bytes, name -> bytes | None`` (None: delete the file)."""
    kind = draw(
        st.sampled_from(
            ["truncate", "garbage", "flip", "insert", "encode", "json", "oversize", "empty", "delete"]
        )
    )
    if kind == "truncate":
        frac = draw(st.floats(0, 1, exclude_max=True))
        return kind, lambda b, n: b[: int(len(b) * frac)]
    if kind == "garbage":
        junk = draw(st.binary(max_size=512))
        return kind, lambda b, n: junk
    if kind == "flip":
        spots = draw(
            st.lists(
                st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
            )
        )

        def flip(b, n):
            a = bytearray(b)
            for where, value in spots:
                if a:
                    a[int(len(a) * where)] = value
            return bytes(a)

        return kind, flip
    if kind == "insert":
        where, junk = draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=64))
        return kind, lambda b, n: b[: int(len(b) * where)] + junk + b[int(len(b) * where) :]
    if kind == "encode":
        enc = draw(st.sampled_from(ENCODINGS))
        return f"encode-{enc}", lambda b, n: b.decode("utf-8", "replace").encode(enc, "replace")
    if kind == "json":
        path, value = draw(st.lists(st.integers(0, 50), max_size=4)), draw(ODD_VALUES)
        line = draw(st.integers(0, 50))

        def mutate_json(b, n):
            text = b.decode("utf-8", "replace")
            if n.endswith(".jsonl"):
                lines = text.splitlines()
                if not lines:
                    return b
                i = line % len(lines)
                try:
                    lines[i] = json.dumps(replace_json_value(json.loads(lines[i]), path, value))
                except ValueError:
                    return b
                return "\n".join(lines).encode()
            try:
                return json.dumps(replace_json_value(json.loads(text), path, value)).encode()
            except ValueError:
                return b

        return kind, mutate_json
    if kind == "oversize":
        size = draw(st.sampled_from([2**16, 2**20, 2**22]))
        filler = draw(st.sampled_from([b"a", b"\n", b"{", b"\x00", b"\xff"]))
        return kind, lambda b, n: b + filler * size
    if kind == "empty":
        return kind, lambda b, n: b""
    return kind, lambda b, n: None


def mutate_tree(root: Path, files: list[Path], choice: int, fn) -> None:
    path = root / files[choice % len(files)]
    new = fn(path.read_bytes(), path.name)
    if new is None:
        path.unlink()
    else:
        path.write_bytes(new)


# ----- the image loader ---------------------------------------------------------------------
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO"]
MODES = ["RGB", "L", "P", "RGBA", "1", "I;16", "CMYK", "LA", "I", "F"]


def encoded_image(mode: str, size: tuple[int, int], fmt: str, seed: int) -> bytes | None:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # this format cannot store this mode
        return None
    return buf.getvalue()


def check_image(img) -> None:
    if img is not None:
        assert isinstance(img, Image.Image) and img.mode == "RGB" and min(img.size) >= MIN_SIDE


@settings(max_examples=60 * SCALE)
@given(
    mode=st.sampled_from(MODES),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    fmt=st.sampled_from(FORMATS),
    seed=st.integers(0, 2**16),
    mutate=mutation(),
    intact=st.booleans(),
)
def test_image_files(mode, size, fmt, seed, mutate, intact):
    data = encoded_image(mode, size, fmt, seed)
    if data is None:
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"image.{fmt.lower()}"
        new = data if intact else mutate[1](data, path.name)
        if new is None:
            return
        path.write_bytes(new)
        check_image(only_our_errors(load_image, path))
        check_image(only_our_errors(load_image, str(path), max_pixels=100))


@settings(max_examples=40 * SCALE)
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".tif", ".webp", ""]))
def test_random_bytes_as_image(data, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{suffix}"
        path.write_bytes(data)
        check_image(only_our_errors(load_image, path))


ARRAY_DTYPES = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int8,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
    ]
)


@settings(max_examples=60 * SCALE)
@given(
    arr=hnp.arrays(
        ARRAY_DTYPES,
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=24),
        elements=None,
    ),
    as_tensor=st.booleans(),
)
def test_arrays_and_tensors(arr, as_tensor):
    image = arr
    if as_tensor:
        if arr.dtype in (np.uint16, np.complex64):
            return  # torch has no such tensors to build from numpy here
        image = torch.from_numpy(np.ascontiguousarray(arr))
    check_image(only_our_errors(load_image, image))


# ----- the saved-explanation loader -----------------------------------------------------------
@pytest.fixture(scope="module")
def saved_explanation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved")
    img = Image.fromarray(np.full((16, 20, 3), 120, np.uint8))
    ex = Explanation(
        model="m",
        method="igos++",
        question="What is it?",
        answer="A cat.",
        tokens=["A", " cat", "."],
        token_ids=[1, 2, 3],
        logprob=[-0.1, -0.2, -0.3],
        logprob_baseline=[-1.0, -5.0, -1.0],
        llr=[0.9, 4.8, 0.7],
        selected=[1],
        alpha=1.0,
        heatmap=np.random.default_rng(0).random((16, 20)).astype(np.float32),
        image=img,
        scores={"deletion": 0.2, "insertion": 0.8},
        token_maps={1: np.zeros((16, 20), np.float32)},
    )
    ex.save(out, figures=False)
    return out


ARRAYS = st.one_of(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]), hnp.array_shapes(max_dims=3)
    ),
    st.just(np.array([], dtype=np.float32)),
    st.just(np.array(["text"])),
)


@settings(
    max_examples=80 * SCALE, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(choice=st.integers(0, 10), mutate=mutation(), array=st.none() | ARRAYS)
def test_saved_explanation(saved_explanation, choice, mutate, array):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ex"
        shutil.copytree(saved_explanation, root)
        files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        if array is not None:  # a valid .npy of another shape or dtype
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            (root / "heatmap.npy").write_bytes(buf.getvalue())
        else:
            mutate_tree(root, files, choice, mutate[1])
        ex = only_our_errors(Explanation.load, root)
        if ex is not None:
            assert ex.heatmap is None or ex.heatmap.ndim == 2
            assert isinstance(ex.tokens, list) and isinstance(ex.selected, list)


# ----- every dataset loader -------------------------------------------------------------------
LAYOUTS = {name: writer for name, writer in WRITERS.items() if name not in GENERATED}
LAYOUTS.update({f"{name}-parquet": writer for name, writer in PARQUET_WRITERS.items()})


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, tuple[str, Path, list[Path]]]:
    out = {}
    for layout, writer in LAYOUTS.items():
        root = tmp_path_factory.mktemp(layout)
        data_dir = writer(root)
        files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        out[layout] = (layout.removesuffix("-parquet"), root, data_dir.relative_to(root), files)
    return out


def read_every_sample(name: str, data_dir: Path) -> int:
    ds = get_dataset(name, data_dir, **OPTIONS.get(name, {}))
    n = 0
    for sid in ds.ids():
        try:
            sample = ds.get(sid)
            img = sample.load_image()
        except VlmFocusError:
            continue
        assert isinstance(sample.question, str)
        check_image(img)
        n += 1
    return n


def test_every_dataset_loader_is_fuzzed():
    """Each registered dataset (but the generated ones: no files) has a layout above."""
    from vlm_focus.data import list_datasets

    assert {n.removesuffix("-parquet") for n in LAYOUTS} | GENERATED == set(list_datasets())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_dataset_files(layouts, layout):
    name, template, rel, files = layouts[layout]

    @settings(max_examples=12 * SCALE, suppress_health_check=[HealthCheck.too_slow])
    @given(choice=st.integers(0, 1000), mutate=mutation(), second=st.none() | mutation())
    def fuzz(choice, mutate, second):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d) / "data"
            shutil.copytree(template, root)
            # Text and table files first: they are where the structure is.
            index = [f for f in files if f.suffix in (".json", ".jsonl", ".csv", ".parquet")] or files
            mutate_tree(root, index, choice, mutate[1])
            if second is not None:
                present = [f for f in files if (root / f).exists()]
                if present:
                    mutate_tree(root, present, choice // 7, second[1])
            only_our_errors(read_every_sample, name, root / rel)

    fuzz()
