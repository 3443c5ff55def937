"""Train the zoo model ``shapes-onevision``: a ``LlavaOnevisionForConditionalGeneration``
(SigLIP vision tower, any-resolution crops, Qwen2 language model) on synthetic scenes
(CPU, 2 cores).

The architecture is LLaVA-OneVision's, scaled down: 32-px crops of 4 x 4 SigLIP patches,
grid pinpoints up to 3 x 3 crops (``anyres_max_9``), so a 64-px scene is read as 2 x 2
full-resolution crops plus the whole scene squashed into one base crop: 16 base tokens +
8 x 8 crop tokens + 8 row-end tokens per image. The processor is the real
``LlavaOnevisionProcessor``.

Stages:

1. the SigLIP tower is pre-trained to label every patch of the crops with the
   colour+shape class of the object under it;
2. the language model starts from ``shapes-llava``'s (Qwen2's q/k/v biases at zero); the
   tower is frozen, and projector, row-end embedding and language model learn the
   question/answer pairs.

    python training/train_shapes_onevision.py --out src/vlm_focus/zoo/shapes-onevision
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionProcessor,
    Qwen2Config,
    SiglipVisionConfig,
)

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    CHAT_TEMPLATE,
    add_training_args,
    build_tokenizer,
    copy_language_model,
    language_model_shape,
    pretrain_patches,
    start_run,
    train_and_finish,
)
from vlm_focus.models.processors import build_processor  # noqa: E402
from vlm_focus.models.registry import ZOO  # noqa: E402

CROP, PATCH = 32, 8
PINPOINTS = [[CROP * i, CROP * j] for i in (1, 2, 3) for j in (1, 2, 3)]


def build(tok) -> LlavaOnevisionConfig:
    vision = SiglipVisionConfig(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=CROP,
        patch_size=PATCH,
        vision_use_head=False,
    )
    text = Qwen2Config(**language_model_shape(tok))
    return LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=PINPOINTS,
        vision_aspect_ratio="anyres_max_9",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_args(ap)
    ap.add_argument("--init-lm", type=Path, default=ZOO / "shapes-llava", help="language model to start from")
    args, log, timer = start_run(ap, argv)

    tok = build_tokenizer()
    # The PIL image processor (training pixels the same everywhere); a video processor too
    # where torchvision is installed, so that plain AutoProcessor loads the saved folder.
    processor = build_processor(
        LlavaOnevisionProcessor,
        "LlavaOnevisionImageProcessor",
        dict(size={"height": CROP, "width": CROP}, image_grid_pinpoints=PINPOINTS),
        "LlavaOnevisionVideoProcessor",
        fast=False,
        tokenizer=tok,
        num_image_tokens=(CROP // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        vision_aspect_ratio="anyres_max_9",
    )
    image_processor = processor.image_processor
    torch.manual_seed(args.seed)
    vision_seconds = 0.0
    if args.continue_from:
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(args.continue_from)
    else:
        model = LlavaOnevisionForConditionalGeneration(build(tok))
        tower = model.model.vision_tower
        side = CROP // PATCH

        def encode(samples):
            # A 64-px scene: base crop + 2 x 2 full-resolution crops; label the crops' patches
            # on the scene's 8 x 8 grid.
            pixels = image_processor(images=[s.image for s in samples], return_tensors="pt")["pixel_values"]
            crops = pixels[:, 1:5].reshape(-1, 3, CROP, CROP)
            x = tower(pixel_values=crops).last_hidden_state  # [B * 4, side * side, D]
            x = x.reshape(len(samples), 2, 2, side, side, -1).permute(0, 1, 3, 2, 4, 5)
            return x.reshape(len(samples), 4 * side * side, -1)

        hidden = model.config.vision_config.hidden_size
        pretrain_patches(
            encode,
            list(tower.parameters()),
            hidden,
            2 * side,
            args,
            log,
        )
        vision_seconds = timer()
        copy_language_model(model.model.language_model, args.init_lm, log)
    model.model.vision_tower.requires_grad_(False)
    train_and_finish(
        model, processor, args, log, timer, vision_seconds, init_language_model=str(args.init_lm.name)
    )


if __name__ == "__main__":
    main()
