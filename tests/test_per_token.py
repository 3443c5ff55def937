"""Per-token maps: one map per selected token, saved, loaded, drawn; TAM's from one pass."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vlm_focus
from vlm_focus import Explanation
from vlm_focus.methods import Method, Target

FAST = {"iterations": 1, "ig_iter": 2, "size": 8, "metric_steps": 5, "metric_grid": 8}


def scene() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8))


@pytest.mark.parametrize("method", ["igos++", "tam", "occlusion"])
def test_per_token_maps_round_trip_and_report(tiny_llava_dir, tmp_path, method):
    options = FAST if method == "igos++" else {"metric_steps": 5, "metric_grid": 8}
    lens = vlm_focus.load(
        str(tiny_llava_dir), method=method, device="cpu", alpha=-1e9, max_new_tokens=3, **options
    )
    ex = lens.explain(scene(), "What color is the circle?", per_token=True)
    assert sorted(ex.token_maps) == sorted(ex.selected) and len(ex.selected) >= 2
    for m in ex.token_maps.values():
        assert m.shape == (40, 56) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    assert "token_maps" in ex.timings and ex.args["per_token"] is True
    out = ex.save(tmp_path / "ex")
    assert json.loads((out / "explanation.json").read_text())["token_map_tokens"] == sorted(ex.selected)
    assert "Per-token maps" in (out / "report.html").read_text()
    back = Explanation.load(out)
    assert sorted(back.token_maps) == sorted(ex.token_maps)
    for t, m in ex.token_maps.items():
        assert np.array_equal(back.token_maps[t], m)
    assert "array(" not in repr(back) and "heatmap=56x40" in repr(back)  # sizes, never the arrays
    plain = lens.explain(scene(), "What color is the circle?")
    assert plain.token_maps == {} and not (plain.save(tmp_path / "plain") / "token_maps.npz").exists()


class Recording(Method):
    """Heat = the index of the one token it was asked to explain, to see what the default
    ``token_maps`` asks of ``explain``."""

    def explain(self, target, pixels, baseline):
        return torch.full(pixels.shape[-2:], float(target.selected[0]) / 10)


def test_default_token_maps_explain_each_token_alone(tiny_adapter, scene):
    pixels = torch.rand(3, 16, 16)
    ids = tiny_adapter.encode_answer("red blue")
    target = Target(tiny_adapter.scorer(pixels, "What?", ids), [2, 0], tiny_adapter)
    maps = Recording().token_maps(target, pixels, pixels)
    assert maps.shape == (2, 16, 16)
    assert torch.allclose(maps[0], torch.full((16, 16), 0.2)) and torch.allclose(maps[1], torch.zeros(16, 16))


def test_tam_token_maps_are_what_explain_averages(tiny_llava_dir):
    lens = vlm_focus.load(str(tiny_llava_dir), method="tam", device="cpu", alpha=-1e9, max_new_tokens=3)
    ex = lens.explain(scene(), "What color is the circle?", per_token=True)
    stacked = np.stack([ex.token_maps[t] for t in ex.selected]).mean(0)
    stacked = (stacked - stacked.min()) / (stacked.max() - stacked.min())
    assert np.corrcoef(stacked.ravel(), ex.heatmap.ravel())[0, 1] > 0.99


def test_cli_per_token(tiny_llava_dir, tmp_path, capsys):
    from vlm_focus.cli import main

    scene().save(tmp_path / "s.png")
    argv = ["explain", "--image", str(tmp_path / "s.png"), "--question", "What is it?", "--model"]
    argv += [str(tiny_llava_dir), "--method", "tam", "--alpha=-1e9", "--max-new-tokens", "2"]
    assert main([*argv, "--per-token", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "token_maps.npz").exists()
