"""A tiny randomly initialised InternVL (``InternVLForConditionalGeneration``), built from
scaled-down real configs and saved with its processor like a hub model.

The structure is that of ``OpenGVLab/InternVL3-1B-hf``: an InternViT vision tower (class
token, layer scale), pixel-shuffle downsampling by 0.5, the two-layer multi-modal projector
and a Qwen2 language model; the processor is the real ``InternVLProcessor`` with the
``GotOcr2ImageProcessorPil`` (no torchvision here), tiles of 32 px and at most 6 of them, so
that most test images get several tiles plus a thumbnail. ``build_tiny_internvl(path)``
returns the directory; ``vlm_focus.models.load_adapter(path)`` loads it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tiny_models import TINY_VISION, save_hub_style, tiny_text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "training") not in sys.path:
    sys.path.insert(0, str(ROOT / "training"))

TILE, PATCH, MAX_TILES = 32, 8, 6
DOWNSAMPLE = 0.5
# Image tokens per tile: the 4x4 patch grid after the 0.5 pixel shuffle.
TOKENS_PER_TILE = int((TILE // PATCH * DOWNSAMPLE) ** 2)
# ImageNet statistics, as the hub checkpoints' preprocessor_config.json.
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

SPECIAL = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]

# The hub template (ChatML, the image as "<IMG_CONTEXT>\n" before the text), without the
# default system turn.
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def internvl_tokenizer():
    """The project's small BPE tokenizer plus the special tokens ``InternVLProcessor`` reads."""
    from common import extend_tokenizer

    return extend_tokenizer(
        SPECIAL,
        TEMPLATE,
        {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
        eos_token="<|im_end|>",
    )


def internvl_config(tok):
    """``InternVLConfig``: InternViT (2 layers, 32 px, patch 8) + Qwen2 (2 layers, hidden 64)."""
    import transformers as T

    vision = T.InternVLVisionConfig(
        **TINY_VISION,
        image_size=TILE,
        patch_size=PATCH,
    )
    text = T.Qwen2Config(**tiny_text(tok))
    return T.InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=TOKENS_PER_TILE,
        downsample_ratio=DOWNSAMPLE,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )


def randomize_embeddings(model: torch.nn.Module, seed: int) -> None:
    """Random class token and position embeddings (HF initialises both to zeros), so that
    the tiny tower tells patches and positions apart as a trained one does."""
    embeddings = model.model.vision_tower.embeddings
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (embeddings.cls_token, embeddings.position_embeddings):
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def build_tiny_internvl(out: Path, seed: int = 0) -> Path:
    """A random ``InternVLForConditionalGeneration`` + ``InternVLProcessor``, saved in ``out``."""
    import transformers as T

    from vlm_focus.models.processors import build_processor

    tok = internvl_tokenizer()
    torch.manual_seed(seed)
    model = T.InternVLForConditionalGeneration(internvl_config(tok))
    randomize_embeddings(model, seed)
    processor = build_processor(
        T.InternVLProcessor,
        "GotOcr2ImageProcessor",
        dict(
            size={"height": TILE, "width": TILE},
            crop_to_patches=True,
            min_patches=1,
            max_patches=MAX_TILES,
            image_mean=MEAN,
            image_std=STD,
        ),
        "InternVLVideoProcessor",
        dict(size={"height": TILE, "width": TILE}, image_mean=MEAN, image_std=STD),
        tokenizer=tok,
        image_seq_length=TOKENS_PER_TILE,
        chat_template=TEMPLATE,
    )
    return save_hub_style(model, processor, out)
