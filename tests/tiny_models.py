"""Tiny randomly initialised Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision and LLaVA-NeXT
models, built from scaled-down real configs and saved with their processors like hub models.

Each builder returns the directory it wrote; ``vlm_focus.models.load_adapter(path)`` loads it.
The processors are the real Hugging Face classes (fast image processors and video processors
where torchvision is installed, PIL image processors alone where not) with
small patch sizes and pixel budgets, so every branch of their preprocessing (smart_resize
up- and down-scaling, any-resolution grids, padding) is reached by images of 30-300 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from vlm_focus.models.processors import build_processor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "training") not in sys.path:
    sys.path.insert(0, str(ROOT / "training"))

QWEN_SPECIAL = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's template without the default system turn (shorter prompts, same structure).
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Scaled-down smart_resize budget: factor 8 (patch 4 x merge 2), 40x40 .. 96x96 pixels.
QWEN_PATCH, QWEN_MERGE, QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 4, 2, 40 * 40, 96 * 96

ANYRES_SIZE = 32  # crop side of the tiny any-resolution models
ANYRES_PINPOINTS = [[ANYRES_SIZE * i, ANYRES_SIZE * j] for i in (1, 2, 3) for j in (1, 2, 3)]


# The tiny models' shared shapes: a 2-layer vision tower of width 32 and a 2-layer language
# model of width 64 (its vocabulary and special ids from the tokenizer).
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def tiny_text(tok, **extra) -> dict:
    """Config arguments of a tiny language model for tokenizer ``tok``."""
    return dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **extra,
    )


def save_hub_style(model, processor, out: Path) -> Path:
    """Save a tiny model and its processor in ``out`` as a hub checkpoint is laid out, with the
    tokenizer's end and padding ids in the generation config; returns ``out``."""
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def qwen_tokenizer():
    """The project's small BPE tokenizer plus the special tokens Qwen processors need."""
    from common import extend_tokenizer

    return extend_tokenizer(
        QWEN_SPECIAL,
        QWEN_TEMPLATE,
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        eos_token="<|im_end|>",
    )


def build_tiny_qwen(out: Path, variant: str = "qwen2_vl", seed: int = 0) -> Path:
    """A random ``Qwen2VL`` / ``Qwen2_5_VL`` / ``Qwen3VL`` ForConditionalGeneration + processor."""
    import transformers as T

    tok = qwen_tokenizer()
    ids = {
        k: tok.convert_tokens_to_ids(t)
        for k, t in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    text = tiny_text(
        tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
    )
    patching = dict(patch_size=QWEN_PATCH, spatial_merge_size=QWEN_MERGE, temporal_patch_size=2)
    mean, std = None, None
    if variant == "qwen2_vl":
        vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, **patching)
        config = T.Qwen2VLConfig(vision_config=vision, text_config=text, **ids)
        model_cls, proc_cls = T.Qwen2VLForConditionalGeneration, T.Qwen2VLProcessor
    elif variant == "qwen2_5_vl":
        # window 16 px = 2x2 merged tokens: several attention windows on every test image
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            window_size=16,
            fullatt_block_indexes=[1],
            **patching,
        )
        config = T.Qwen2_5_VLConfig(vision_config=vision, text_config=text, **ids)
        model_cls, proc_cls = T.Qwen2_5_VLForConditionalGeneration, T.Qwen2_5_VLProcessor
    elif variant == "qwen3_vl":
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
            **patching,
        )
        text = dict(text, head_dim=32, rope_parameters={**text["rope_parameters"], "mrope_interleaved": True})
        config = T.Qwen3VLConfig(vision_config=vision, text_config=text, **ids)
        model_cls, proc_cls = T.Qwen3VLForConditionalGeneration, T.Qwen3VLProcessor
        mean, std = [0.5] * 3, [0.5] * 3  # as Qwen3-VL's preprocessor_config
    else:
        raise ValueError(f"unknown Qwen variant {variant!r}")
    torch.manual_seed(seed)
    model = model_cls(config)
    extra = {} if mean is None else {"image_mean": mean, "image_std": std}
    grid = dict(patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2, **extra)
    processor = build_processor(
        proc_cls,
        "Qwen2VLImageProcessor",
        dict(min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS, **grid),
        "Qwen3VLVideoProcessor" if variant == "qwen3_vl" else "Qwen2VLVideoProcessor",
        grid,
        tokenizer=tok,
        chat_template=QWEN_TEMPLATE,
    )
    return save_hub_style(model, processor, out)


def build_tiny_onevision(out: Path, seed: int = 0, aspect: str = "anyres_max_4") -> Path:
    """A random ``LlavaOnevisionForConditionalGeneration`` (SigLIP + Qwen2) + processor.

    ``anyres_max_4`` (the hub models use ``anyres_max_9``) makes 3x3-crop images take the
    model's feature-downsampling branch too.
    """
    import transformers as T

    from common import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer()
    patch = 8
    vision = T.SiglipVisionConfig(
        **TINY_VISION,
        image_size=ANYRES_SIZE,
        patch_size=patch,
        vision_use_head=False,
    )
    text = T.Qwen2Config(**tiny_text(tok))
    config = T.LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=ANYRES_PINPOINTS,
        vision_aspect_ratio=aspect,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = T.LlavaOnevisionForConditionalGeneration(config)
    processor = build_processor(
        T.LlavaOnevisionProcessor,
        "LlavaOnevisionImageProcessor",
        dict(size={"height": ANYRES_SIZE, "width": ANYRES_SIZE}, image_grid_pinpoints=ANYRES_PINPOINTS),
        "LlavaOnevisionVideoProcessor",
        tokenizer=tok,
        num_image_tokens=(ANYRES_SIZE // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        vision_aspect_ratio=aspect,
    )
    return save_hub_style(model, processor, out)


def build_tiny_llava_next(out: Path, seed: int = 0) -> Path:
    """A random ``LlavaNextForConditionalGeneration`` (CLIP + Llama) + processor."""
    import transformers as T

    from common import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer()
    patch = 8
    vision = T.CLIPVisionConfig(
        **TINY_VISION,
        image_size=ANYRES_SIZE,
        patch_size=patch,
    )
    text = T.LlamaConfig(**tiny_text(tok))
    config = T.LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=ANYRES_PINPOINTS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = T.LlavaNextForConditionalGeneration(config)
    processor = build_processor(
        T.LlavaNextProcessor,
        "LlavaNextImageProcessor",
        dict(
            size={"shortest_edge": ANYRES_SIZE},
            crop_size={"height": ANYRES_SIZE, "width": ANYRES_SIZE},
            image_grid_pinpoints=ANYRES_PINPOINTS,
        ),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    return save_hub_style(model, processor, out)


def build_tiny_llava(out: Path, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """A randomly initialised LlavaForConditionalGeneration + processor, saved like a hub model."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from common import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer()
    vision = CLIPVisionConfig(
        **TINY_VISION,
        image_size=image_size,
        patch_size=patch,
    )
    text = LlamaConfig(**tiny_text(tok))
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
    processor = build_processor(
        LlavaProcessor,
        "CLIPImageProcessor",
        dict(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    return save_hub_style(model, processor, out)


def build_tiny_multi_encoder(out: Path, seed: int = 0) -> Path:
    """A random multi-encoder model of our own (CLIP ViT + ConvNeXt + Llama) + processor.

    The ViT reads 24 px (3 x 3 patches of 8), the ConvNeXt 32 px (8 x 8 after its stem,
    4 x 4 after its second stage, pooled onto the 3 x 3 grid)."""
    from common import CHAT_TEMPLATE, build_tokenizer
    from vlm_focus.architectures.multi_encoder import (
        MultiEncoderConfig,
        MultiEncoderForConditionalGeneration,
        MultiEncoderProcessor,
    )

    tok = build_tokenizer()
    config = MultiEncoderConfig(
        vit_config=dict(
            model_type="clip_vision_model",
            **TINY_VISION,
            image_size=24,
            patch_size=8,
        ),
        conv_config=dict(
            model_type="convnext", hidden_sizes=[16, 24], depths=[1, 1], num_stages=2, patch_size=4
        ),
        text_config=tiny_text(tok, model_type="llama"),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vit_size=24,
        conv_size=32,
    )
    torch.manual_seed(seed)
    model = MultiEncoderForConditionalGeneration(config)
    processor = build_processor(
        MultiEncoderProcessor,
        "CLIPImageProcessor",
        dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
        image_seq_length=config.image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )
    return save_hub_style(model, processor, out)
