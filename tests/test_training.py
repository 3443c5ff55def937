"""The zoo training script runs end to end (a few steps) and saves a loadable hub-style model."""

import pytest
import torch

import vlm_focus


@pytest.mark.slow
def test_training_script_end_to_end(tmp_path):
    from train_shapes_llava import main

    out = tmp_path / "m"
    main(
        [
            "--out",
            str(out),
            "--vision-steps",
            "3",
            "--vision-batch",
            "4",
            "--steps",
            "3",
            "--batch",
            "4",
            "--eval-n",
            "2",
        ]
    )
    for name in ("model.safetensors", "config.json", "processor_config.json", "training.json"):
        assert (out / name).exists(), name
    lens = vlm_focus.load(str(out), device="cpu")
    ids = lens.adapter.generate(torch.rand(3, 64, 64), "What color is the circle?", max_new_tokens=3)
    assert 1 <= len(ids) <= 3
