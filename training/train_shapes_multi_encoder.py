"""Train the zoo model ``shapes-multi-encoder``: a ViT and a ConvNeXt reading the same image,
fused before a Llama language model (our :mod:`vlm_focus.architectures.multi_encoder`; the
structure of Cambrian-1 and Mini-Gemini), on synthetic scenes (CPU, 2 cores).

The processor gives the 64-px image to the ConvNeXt (stem 4 px, two stages: an 8 x 8 map
pooled onto 6 x 6) and the model resizes it to 48 px for the ViT (6 x 6 patches of 8).

Stages:

1. the ViT starts from ``shapes-llava``'s pre-trained CLIP tower (same shape), as Cambrian
   and Mini-Gemini start from pre-trained encoders; the ConvNeXt is pre-trained here to
   label every grid cell with the colour+shape class of the object under it;
2. the language model starts from ``shapes-llava``'s; both encoders are frozen and the
   fusion projector and the language model learn the question/answer pairs.

    python training/train_shapes_multi_encoder.py --out src/vlm_focus/zoo/shapes-multi-encoder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, CLIPImageProcessorPil

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    CHAT_TEMPLATE,
    add_training_args,
    build_tokenizer,
    copy_language_model,
    pretrain_patches,
    start_run,
    train_and_finish,
)
from vlm_focus.architectures.multi_encoder import (  # noqa: E402
    MultiEncoderConfig,
    MultiEncoderForConditionalGeneration,
    MultiEncoderProcessor,
)
from vlm_focus.models.registry import ZOO  # noqa: E402

VIT_SIZE, CONV_SIZE = 48, 64


def build(tok, text_config) -> MultiEncoderConfig:
    return MultiEncoderConfig(
        vit_config=dict(
            model_type="clip_vision_model",
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=VIT_SIZE,
            patch_size=8,
        ),
        conv_config=dict(
            model_type="convnext", hidden_sizes=[48, 96], depths=[2, 2], num_stages=2, patch_size=4
        ),
        text_config=text_config.to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vit_size=VIT_SIZE,
        conv_size=CONV_SIZE,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_args(ap)
    ap.add_argument(
        "--init", type=Path, default=ZOO / "shapes-llava", help="ViT and language model to start from"
    )
    args, log, timer = start_run(ap, argv)

    tok = build_tokenizer()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": CONV_SIZE}, crop_size={"height": CONV_SIZE, "width": CONV_SIZE}
    )
    torch.manual_seed(args.seed)
    vision_seconds = 0.0
    if args.continue_from:
        model = MultiEncoderForConditionalGeneration.from_pretrained(args.continue_from)
    else:
        source = AutoModelForImageTextToText.from_pretrained(args.init)
        model = MultiEncoderForConditionalGeneration(build(tok, source.config.text_config))
        model.model.vit.load_state_dict(source.model.vision_tower.state_dict())
        log(f"ViT initialised from {args.init}")
        inner = model.model
        grid = model.config.grid

        def encode(samples):
            pixels = image_processor(images=[s.image for s in samples], return_tensors="pt")["pixel_values"]
            return inner.conv_features(pixels)

        params = list(inner.convnext.parameters())
        pretrain_patches(
            encode,
            params,
            model.config.conv_config.hidden_sizes[-1],
            grid,
            args,
            log,
        )
        vision_seconds = timer()
        copy_language_model(inner.language_model, args.init, log)
    processor = MultiEncoderProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_length=model.config.image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )
    model.model.vit.requires_grad_(False)
    model.model.convnext.requires_grad_(False)
    train_and_finish(model, processor, args, log, timer, vision_seconds, init=str(args.init.name))


if __name__ == "__main__":
    main()
