"""Train the zoo model ``shapes-qwen2.5-vl``: a ``Qwen2_5_VLForConditionalGeneration`` on
synthetic scenes (CPU, 2 cores).

The architecture is Qwen2.5-VL's, scaled down: a native-resolution ViT with 2-D rotary
positions, window attention (full attention in blocks 1 and 3), SwiGLU MLPs, a 2x2 patch
merger as projector, and a Qwen2 language model with 3-D rotary positions (M-RoPE). The
processor is the real ``Qwen2_5_VLProcessor`` (``smart_resize`` to multiples of 16 px with
at least 96 x 96 pixels: a 64-px scene becomes 12 x 12 patches, 6 x 6 image tokens).

Stages:

1. the vision tower (blocks and merger) is pre-trained to label every merged token with
   the colour+shape class of the object under it;
2. the language model starts from ``shapes-llava``'s (same tokenizer plus Qwen's vision
   marker tokens; Qwen2's q/k/v biases start at zero), the vision blocks are frozen, and
   merger + language model learn the question/answer pairs.

    python training/train_shapes_qwen.py --out src/vlm_focus/zoo/shapes-qwen2.5-vl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
)

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    add_training_args,
    copy_language_model,
    extend_tokenizer,
    language_model_shape,
    pretrain_patches,
    start_run,
    train_and_finish,
)
from vlm_focus.models.processors import build_processor  # noqa: E402
from vlm_focus.models.registry import ZOO  # noqa: E402

PATCH, MERGE, MIN_PIXELS, MAX_PIXELS = 8, 2, 96 * 96, 128 * 128
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

# The shapes-llava prompt with Qwen's image markers.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in message['content'] %}{% if c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_qwen_tokenizer() -> PreTrainedTokenizerFast:
    """shapes-llava's tokenizer with Qwen's vision tokens appended (earlier ids unchanged)."""
    return extend_tokenizer(
        list(VISION_TOKENS),
        CHAT_TEMPLATE,
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )


def build(tok) -> Qwen2_5_VLConfig:
    ids = {
        "image_token_id": tok.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tok.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tok.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tok.convert_tokens_to_ids("<|vision_end|>"),
    }
    vision = dict(
        depth=4,
        hidden_size=128,
        intermediate_size=512,
        num_heads=4,
        out_hidden_size=192,
        patch_size=PATCH,
        spatial_merge_size=MERGE,
        temporal_patch_size=2,
        window_size=32,  # 2 x 2 image tokens per attention window
        fullatt_block_indexes=[1, 3],
    )
    text = dict(
        **language_model_shape(tok),
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 8, 8]},
    )
    return Qwen2_5_VLConfig(vision_config=vision, text_config=text, tie_word_embeddings=True, **ids)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_args(ap)
    ap.add_argument("--init-lm", type=Path, default=ZOO / "shapes-llava", help="language model to start from")
    args, log, timer = start_run(ap, argv)

    tok = build_qwen_tokenizer()
    # The PIL image processor (training pixels the same everywhere); a video processor too
    # where torchvision is installed, so that plain AutoProcessor loads the saved folder.
    grid = dict(patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2)
    processor = build_processor(
        Qwen2_5_VLProcessor,
        "Qwen2VLImageProcessor",
        dict(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, **grid),
        "Qwen2VLVideoProcessor",
        grid,
        fast=False,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    image_processor = processor.image_processor
    torch.manual_seed(args.seed)
    vision_seconds = 0.0
    if args.continue_from:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.continue_from)
    else:
        model = Qwen2_5_VLForConditionalGeneration(build(tok))
        # Measured on CPU: eager window attention runs ~8x faster than the SDPA path,
        # which loops over the windows.
        model.model.visual.set_attn_implementation("eager")
        visual = model.model.visual

        def encode(samples):
            enc = image_processor(images=[s.image for s in samples], return_tensors="pt")
            merged = visual(enc["pixel_values"], grid_thw=enc["image_grid_thw"]).pooler_output
            return merged.reshape(len(samples), -1, merged.shape[-1])  # 6 x 6 tokens, row-major

        grid = (MIN_PIXELS**0.5) // (PATCH * MERGE)
        params = list(visual.parameters())
        pretrain_patches(encode, params, 192, int(grid), args, log)
        vision_seconds = timer()
        copy_language_model(model.model.language_model, args.init_lm, log)
    # The vision blocks stay frozen (as the tower of shapes-llava); the merger is the projector.
    model.model.visual.requires_grad_(False)
    model.model.visual.merger.requires_grad_(True)
    train_and_finish(
        model, processor, args, log, timer, vision_seconds, init_language_model=str(args.init_lm.name)
    )


if __name__ == "__main__":
    main()
