"""Every zoo training script runs end to end (a few steps) and saves a loadable hub-style model."""

import importlib
import json

import pytest
import torch
from transformers import AutoProcessor

import vlm_focus
from vlm_focus.models.processors import has_torchvision

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
    if has_torchvision():  # a standard checkpoint: plain AutoProcessor loads it
        AutoProcessor.from_pretrained(out)
    lens = vlm_focus.load(str(out), device="cpu")
    ids = lens.adapter.generate(torch.rand(3, 64, 64), "What color is the circle?", max_new_tokens=3)
    assert 1 <= len(ids) <= 3
    # --continue-from resumes the joint stage from the saved model
    main(["--out", str(tmp_path / "m2"), "--continue-from", str(out), "--threads", "1", *tiny_run])
    assert (tmp_path / "m2" / "model.safetensors").exists()


@pytest.mark.slow
def test_seed_changes_initialisation_and_scenes(tmp_path):
    """``--seed`` gives another training run (weights and scenes); 0 is the shipped one."""
    from safetensors.torch import load_file

    from common import scene_seed

    main = importlib.import_module("train_shapes_llava").main
    run = ["--vision-steps", "1", "--vision-batch", "2", "--steps", "1", "--batch", "2", "--eval-n", "0"]
    weights = {}
    for seed in (0, 1):
        main(["--out", str(tmp_path / str(seed)), "--threads", "1", "--seed", str(seed), *run])
        weights[seed] = load_file(tmp_path / str(seed) / "model.safetensors")
        assert json.loads((tmp_path / str(seed) / "training.json").read_text())["train_seed"] == seed
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert scene_seed(0) == 0 and len({scene_seed(s) + d for s in range(3) for d in (0, 1)}) == 6
