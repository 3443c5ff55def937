"""Processors with and without torchvision: the fast (torchvision-backed) image processors and
video processors where it is installed, the PIL image processors alone where not, and
checkpoints saved either way load either way. `.ci/run` runs this file in both settings."""

import pytest
import torch

import vlm_focus
from vlm_focus.images import to_tensor
from vlm_focus.models import load_adapter
from vlm_focus.models.processors import has_torchvision, image_only


@pytest.mark.parametrize("name", ["shapes-qwen2.5-vl", "shapes-onevision", "shapes-llava"])
def test_image_processor_backend_follows_torchvision(name):
    adapter = vlm_focus.load(name, device="cpu").adapter
    backend = type(adapter.processor.image_processor).__name__
    assert adapter.fast == has_torchvision()
    assert backend.endswith("Pil") != has_torchvision(), backend
    assert hasattr(adapter.processor, "video_processor") == (has_torchvision() and name != "shapes-llava")


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_onevision", "internvl"])
def test_checkpoint_saved_without_video_processor_loads(tiny, tmp_path, family, scene):
    """A checkpoint saved image-only (as on a machine without torchvision) loads everywhere,
    and its adapter's preprocessing still matches its processor."""
    import transformers

    adapter = tiny(family)[1]
    processor = adapter.processor
    stripped = image_only(getattr(transformers, type(processor).__name__))
    kwargs = {a: getattr(processor, a) for a in stripped.get_attributes()}
    saved = stripped(**kwargs, chat_template=processor.chat_template, **_extra(processor))
    adapter.model.save_pretrained(tmp_path)
    saved.save_pretrained(tmp_path)
    assert "video_processor" not in (tmp_path / "processor_config.json").read_text()
    loaded = load_adapter(str(tmp_path), device="cpu")
    assert not hasattr(loaded.processor, "video_processor")
    pixels = to_tensor(scene.image)[None]
    ours, theirs = loaded.preprocess(pixels), adapter.preprocess(pixels)
    assert torch.allclose(ours["pixel_values"], theirs["pixel_values"])


def _extra(processor) -> dict:
    keys = ("num_image_tokens", "vision_feature_select_strategy", "vision_aspect_ratio", "image_seq_length")
    return {k: getattr(processor, k) for k in keys if hasattr(processor, k)}
