"""Every zoo training script runs end to end (a few steps) and saves a loadable hub-style model."""

import importlib

import pytest
import torch

import vlm_focus

SCRIPTS = ["train_shapes_llava", "train_shapes_qwen", "train_shapes_onevision", "train_shapes_multi_encoder"]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_training_script_end_to_end(tmp_path, script):
    main = importlib.import_module(script).main
    out = tmp_path / "m"
    tiny_run = ["--vision-steps", "2", "--vision-batch", "4", "--steps", "2", "--batch", "4", "--eval-n", "2"]
    main(["--out", str(out), "--threads", "1", *tiny_run])
    for name in ("model.safetensors", "config.json", "processor_config.json", "training.json"):
        assert (out / name).exists(), name
    lens = vlm_focus.load(str(out), device="cpu")
    ids = lens.adapter.generate(torch.rand(3, 64, 64), "What color is the circle?", max_new_tokens=3)
    assert 1 <= len(ids) <= 3
    # --continue-from resumes the joint stage from the saved model
    main(["--out", str(tmp_path / "m2"), "--continue-from", str(out), "--threads", "1", *tiny_run])
    assert (tmp_path / "m2" / "model.safetensors").exists()
