"""Tiny randomly initialised Idefics3 and SmolVLM models, built from scaled-down real configs
and saved with their processors like hub models.

``build_tiny_idefics3(path)`` returns the directory it wrote; ``vlm_focus.models.load_adapter``
loads it. The processors are the real Hugging Face classes (PIL image processors: no
torchvision here) with image splitting on and small sizes, so that test images of 20-500 px
are resized to a longest edge of a few crops and split into up to 2x2 (Idefics3) or 3x3
(SmolVLM) crops plus the global image, as the hub models split large photos:

- ``idefics3``: crops of 32 px, patch 4 (8x8 patches), pixel shuffle 2 -> 16 tokens a crop,
  longest edge 64 (Idefics3-8B: 364 px, patch 14, shuffle 2, longest edge 1456);
- ``smolvlm``: crops of 38 px, patch 4 (9x9 patches covering 36 px: the last 2 rows and
  columns are never seen, as 384-px crops with patch 14 leave 6), pixel shuffle 3 -> 9 tokens,
  longest edge 114 (SmolVLM-Instruct, SmolVLM2-2.2B: 384 px, patch 14, shuffle 3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tiny_models import TINY_VISION, save_hub_style, tiny_text

from vlm_focus.models.processors import build_processor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "training") not in sys.path:
    sys.path.insert(0, str(ROOT / "training"))

# (crop side, patch, pixel-shuffle factor, crops per side at most) of each tiny variant.
SHAPES = {"idefics3": (32, 4, 2, 2), "smolvlm": (38, 4, 3, 3)}

# The hub models' templates ("<|begin_of_text|>User:<image>Q<end_of_utterance>\nAssistant:";
# SmolVLM starts with "<|im_start|>").
TEMPLATE = (
    "{BOS}{{% for message in messages %}}{{{{ message['role'] | capitalize }}}}"
    "{{% if message['content'][0]['type'] == 'image' %}}{{{{ ':' }}}}{{% else %}}{{{{ ': ' }}}}{{% endif %}}"
    "{{% for line in message['content'] %}}{{% if line['type'] == 'text' %}}{{{{ line['text'] }}}}"
    "{{% elif line['type'] == 'image' %}}{{{{ '<image>' }}}}{{% endif %}}{{% endfor %}}"
    "<end_of_utterance>\n{{% endfor %}}{{% if add_generation_prompt %}}{{{{ 'Assistant:' }}}}{{% endif %}}"
)
BOS = {"idefics3": "<|begin_of_text|>", "smolvlm": "<|im_start|>"}

ROW_COL = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
IMAGE_SPECIAL = ["<fake_token_around_image>", "<global-img>", "<end_of_utterance>", *ROW_COL]


def chat_template(variant: str) -> str:
    return TEMPLATE.format(BOS=BOS[variant])


def idefics3_tokenizer(variant: str):
    """The project's small BPE tokenizer plus the special tokens the Idefics3/SmolVLM
    processors write into prompts (``<fake_token_around_image>``, ``<global-img>``,
    ``<row_i_col_j>``, ``<end_of_utterance>``); ``<image>`` is already in it."""
    from common import extend_tokenizer

    return extend_tokenizer(
        [BOS[variant], *IMAGE_SPECIAL],
        chat_template(variant),
        {
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
        bos_token=BOS[variant],
        eos_token="<end_of_utterance>",
    )


def build_tiny_idefics3(out: Path, seed: int = 0, variant: str = "idefics3") -> Path:
    """A random ``Idefics3ForConditionalGeneration`` or ``SmolVLMForConditionalGeneration``
    (SigLIP-style encoder, pixel-shuffle connector, Llama text model) + processor."""
    import transformers as T

    from vlm_focus.models.idefics3 import processor_class

    if variant not in SHAPES:
        raise ValueError(f"unknown Idefics3 variant {variant!r}; choose from {sorted(SHAPES)}")
    side, patch, shuffle, per_side = SHAPES[variant]
    tok = idefics3_tokenizer(variant)
    vision = dict(
        **TINY_VISION,
        image_size=side,
        patch_size=patch,
    )
    text = T.LlamaConfig(**tiny_text(tok))
    config_cls, model_cls, proc_cls, ip_name, video_name = {
        "idefics3": (
            T.Idefics3Config,
            T.Idefics3ForConditionalGeneration,
            T.Idefics3Processor,
            "Idefics3ImageProcessor",
            None,
        ),
        "smolvlm": (
            T.SmolVLMConfig,
            T.SmolVLMForConditionalGeneration,
            T.SmolVLMProcessor,
            "SmolVLMImageProcessor",
            "SmolVLMVideoProcessor",
        ),
    }[variant]
    config = config_cls(
        vision_config=vision,
        text_config=text,
        scale_factor=shuffle,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.bos_token_id = tok.bos_token_id
    processor = build_processor(
        proc_cls,
        ip_name,
        dict(
            do_image_splitting=True,
            max_image_size={"longest_edge": side},
            size={"longest_edge": side * per_side},
        ),
        video_name,
        fallback=processor_class(variant),
        tokenizer=tok,
        image_seq_len=(side // patch) ** 2 // shuffle**2,
        chat_template=chat_template(variant),
    )
    return save_hub_style(model, processor, out)
