"""Shared fixtures: tiny randomly-initialised models built from real configs, seeded."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
warnings.filterwarnings("ignore", message=".*requires torchvision.*")
# The test models are tiny: one thread is as fast, and two threads spin-wait badly when
# the two cores are shared with other jobs.
torch.set_num_threads(1)


def build_tiny_llava(out: Path, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """A randomly initialised LlavaForConditionalGeneration + processor, saved like a hub model."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from common import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
    )
    text = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=(image_size // patch) ** 2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_llava_dir):
    from vlm_focus.models import load_adapter

    return load_adapter(str(tiny_llava_dir), device="cpu")


@pytest.fixture(scope="session")
def adapters(tiny_adapter, tmp_path_factory) -> dict:
    """Every registered adapter family, each on a tiny model (parametrised tests use this)."""
    from tiny_models import build_tiny_onevision, build_tiny_qwen

    from vlm_focus.models import load_adapter

    return {
        "llava": tiny_adapter,
        "qwen2_vl": load_adapter(
            str(build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen2-vl"))), device="cpu"
        ),
        "llava_onevision": load_adapter(
            str(build_tiny_onevision(tmp_path_factory.mktemp("tiny-onevision"))), device="cpu"
        ),
    }


@pytest.fixture()
def scene():
    from vlm_focus.data.shapes import make_sample

    return make_sample(seed=123, index=0, qtype="color", min_objects=2, max_objects=3)
