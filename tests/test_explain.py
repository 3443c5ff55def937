"""The pipeline end to end on a tiny random LLaVA: outputs, round trip, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vlm_focus
from vlm_focus import Explanation
from vlm_focus.errors import ImageError, InputError, MethodError
from vlm_focus.explain import Lens

FAST = {"iterations": 1, "ig_iter": 2, "size": 8, "metric_steps": 5, "metric_grid": 8}


@pytest.fixture(scope="module")
def lens(tiny_llava_dir):
    # alpha far below any LLR: a random model's answer "depends" on the image everywhere.
    return vlm_focus.load(str(tiny_llava_dir), device="cpu", alpha=-1e9, max_new_tokens=4, **FAST)


def test_explain_outputs_and_round_trip(lens, tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8))
    ex = lens.explain(img, "What color is the circle?")
    assert ex.depends_on_image and ex.selected == list(range(len(ex.tokens)))
    assert ex.heatmap.shape == (40, 70) and ex.heatmap.dtype == np.float32
    assert 0 <= ex.heatmap.min() and ex.heatmap.max() <= 1
    assert set(ex.scores) >= {"deletion", "insertion", "baseline_prob"}
    assert len(ex.llr) == len(ex.tokens) == len(ex.logprob) == len(ex.logprob_baseline)
    assert np.allclose(np.array(ex.logprob) - np.array(ex.logprob_baseline), ex.llr, atol=1e-5)
    out = ex.save(tmp_path / "ex")
    for name in ("explanation.json", "heatmap.npy", "overlay.png", "report.html", "image.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "explanation.json").read_text())
    for key in (
        "model",
        "method",
        "question",
        "answer",
        "tokens",
        "logprob",
        "logprob_baseline",
        "llr",
        "selected",
        "scores",
        "timings",
        "args",
        "heatmap",
    ):
        assert key in data
    assert data["heatmap"] == "heatmap.npy" and data["args"]["method_options"]["iterations"] == 1
    back = Explanation.load(out)
    assert back.answer == ex.answer and back.selected == ex.selected
    assert np.array_equal(back.heatmap, ex.heatmap) and back.image.size == (70, 40)


def test_no_image_dependent_token(tiny_llava_dir, tmp_path):
    lens = vlm_focus.load(str(tiny_llava_dir), device="cpu", alpha=1e9, max_new_tokens=3, **FAST)
    ex = lens.explain(Image.new("RGB", (32, 32), (200, 10, 10)), "What color is it?")
    assert not ex.depends_on_image and ex.heatmap is None
    assert "does not depend on the image" in ex.warnings[0]
    data = json.loads((ex.save(tmp_path) / "explanation.json").read_text())
    assert data["heatmap"] is None and data["depends_on_image"] is False
    assert not (tmp_path / "heatmap.npy").exists()


def test_given_answer_is_explained(lens):
    ex = lens.explain(Image.new("RGB", (32, 32)), "What color is the circle?", answer="The circle is red.")
    assert ex.answer == "The circle is red." and [t.strip() for t in ex.tokens][:2] == ["The", "circle"]


def test_bad_inputs(lens, tmp_path):
    with pytest.raises(InputError, match="empty"):
        lens.explain(Image.new("RGB", (32, 32)), "  ")
    with pytest.raises(ImageError, match="not found"):
        lens.explain(tmp_path / "missing.jpg", "What?")
    with pytest.raises(InputError, match="unknown method"):
        Lens(lens.adapter, method="nope")


def test_nan_in_optimisation_is_reported(lens, monkeypatch):
    from vlm_focus.methods.base import Target

    monkeypatch.setattr(Target, "f", lambda self, x: x.sum(dim=(1, 2, 3)) * float("nan"))
    with pytest.raises(MethodError, match="non-finite"):
        lens.explain(Image.new("RGB", (32, 32), (10, 200, 10)), "What color is the circle?")


def test_cli_explain_and_errors(tiny_llava_dir, tmp_path, capsys):
    from vlm_focus.cli import main

    img = tmp_path / "x.png"
    Image.new("RGB", (48, 32), (20, 60, 200)).save(img)
    args = [
        "explain",
        "--image",
        str(img),
        "--question",
        "What color is the square?",
        "--model",
        str(tiny_llava_dir),
        "--alpha=-1e9",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "o"),
        "-O",
        "iterations=1",
        "-O",
        "ig_iter=2",
        "-O",
        "size=8",
        "--max-new-tokens",
        "3",
    ]
    assert main(args) == 0
    assert np.load(tmp_path / "o" / "heatmap.npy").shape == (32, 48)
    bad = list(args)
    bad[2] = str(tmp_path / "nope.png")
    assert main(bad) == 2
    assert "image file not found" in capsys.readouterr().err
    assert main(["list"]) == 0
    assert "igos++" in capsys.readouterr().out


def test_gradient_checkpointing_option(tiny_llava_dir):
    lens = vlm_focus.load(
        str(tiny_llava_dir), device="cpu", gradient_checkpointing=True, alpha=-1e9, max_new_tokens=2, **FAST
    )
    ex = lens.explain(Image.new("RGB", (32, 32), (10, 10, 200)), "What color is the square?")
    assert ex.heatmap is not None and np.isfinite(ex.heatmap).all()
    assert not any(p.requires_grad for p in lens.adapter.model.parameters())
    torch.manual_seed(0)
