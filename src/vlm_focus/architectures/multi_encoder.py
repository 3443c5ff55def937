"""A small multi-encoder vision-language model: one image, two vision encoders, fused.

The structure of Cambrian-1 and Mini-Gemini, in plain ``transformers`` parts: the image is
read by a ViT (``CLIPVisionModel``) at a low resolution and by a ConvNeXt (``ConvNextModel``)
at a higher one; the ConvNeXt feature map is pooled onto the ViT's patch grid, the two
feature vectors of every grid cell are concatenated (channel fusion) and a two-layer MLP
projects them into the language model (``LlamaModel``), one image token per cell.

The processor gives the high-resolution image (``pixel_values``, ``conv_size`` px); the model
derives the ViT's low-resolution input from it with an antialiased bilinear resize, so one
mask on the image reaches both encoders through differentiable operations.

It is a regular ``PreTrainedModel``: ``save_pretrained`` / ``from_pretrained`` with
safetensors, ``generate``, gradient checkpointing, ``device_map``. Importing ``vlm_focus``
registers it with ``AutoConfig``, ``AutoModelForImageTextToText`` and ``AutoProcessor``
(``model_type`` ``"vlm_focus_multi_encoder"``), so no remote code is needed to load it.

Example::

    from vlm_focus.architectures.multi_encoder import MultiEncoderConfig, MultiEncoderForConditionalGeneration
    model = MultiEncoderForConditionalGeneration(MultiEncoderConfig(image_token_id=4))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.cache_utils import Cache
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithPast

MODEL_TYPE = "vlm_focus_multi_encoder"


@strict
class MultiEncoderConfig(PretrainedConfig):
    """Configuration: a ViT config, a ConvNeXt config, a Llama text config and the sizes.

    ``vit_size`` / ``conv_size``: input sides of the two encoders; ``conv_size`` is the
    processor's output. The image becomes ``(vit_size / patch)^2`` tokens."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {
        "vit_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "hidden_size": 128,
                "intermediate_size": 512,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "image_size": 48,
                "patch_size": 8,
            },
        ),
        "conv_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="convnext",
            init_kwargs={"hidden_sizes": [48, 96], "depths": [2, 2], "num_stages": 2, "patch_size": 4},
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vit_config: dict | PretrainedConfig | None = None
    conv_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    image_token_id: int = 4
    vit_size: int = 48
    conv_size: int = 64
    tie_word_embeddings: bool = True

    @property
    def grid(self) -> int:
        """Side of the token grid: the ViT's patch grid."""
        return self.vit_size // self.vit_config.patch_size  # type: ignore[union-attr]

    @property
    def image_seq_length(self) -> int:
        return self.grid**2


def text_config(config: MultiEncoderConfig) -> Any:
    """The (resolved) text sub-config."""
    return config.text_config


class MultiEncoderPreTrainedModel(PreTrainedModel):
    config: MultiEncoderConfig
    config_class = MultiEncoderConfig
    base_model_prefix = "model"
    input_modalities = ["image", "text"]
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["cache"]
    _no_split_modules = ["CLIPEncoderLayer", "ConvNextStage", "LlamaDecoderLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True


class MultiEncoderModel(MultiEncoderPreTrainedModel):
    """Both encoders, the fusion projector and the language model (no LM head)."""

    def __init__(self, config: MultiEncoderConfig) -> None:
        super().__init__(config)
        vit, conv, text = config.vit_config, config.conv_config, text_config(config)
        self.vit = AutoModel.from_config(vit)
        self.convnext = AutoModel.from_config(conv)
        fused = vit.hidden_size + conv.hidden_sizes[-1]  # type: ignore[union-attr]
        hidden = text.hidden_size
        self.projector = nn.Sequential(nn.Linear(fused, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.language_model = AutoModel.from_config(text)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def vit_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The ViT's low-resolution input, derived from the high-resolution image (resized
        in float32: antialiased resizing has no half-precision CPU kernel)."""
        size = self.config.vit_size
        x = F.interpolate(
            pixel_values.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        return x.to(pixel_values.dtype)

    def vit_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ViT patch features ``[B, grid * grid, D]``, row-major (class token dropped)."""
        return self.vit(pixel_values=self.vit_pixels(pixel_values)).last_hidden_state[:, 1:]

    def conv_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ConvNeXt features average-pooled onto the token grid, ``[B, grid * grid, C]``."""
        grid = self.config.grid
        conv = self.convnext(pixel_values=pixel_values).last_hidden_state  # [B, C, h, w]
        return F.adaptive_avg_pool2d(conv, (grid, grid)).flatten(2).transpose(1, 2)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Fused, projected image tokens ``[B, grid * grid, hidden]``."""
        fused = torch.cat([self.vit_features(pixel_values), self.conv_features(pixel_values)], dim=-1)
        return self.projector(fused)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ):
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError("image inputs need input_ids to find the image placeholders")
            features = self.get_image_features(pixel_values.to(inputs_embeds.dtype))
            mask = input_ids == self.config.image_token_id
            if int(mask.sum()) != features.shape[0] * features.shape[1]:
                raise ValueError(
                    f"{int(mask.sum())} image placeholders for {features.shape[0]} images of "
                    f"{features.shape[1]} tokens"
                )
            mask = mask.unsqueeze(-1).expand_as(inputs_embeds).to(inputs_embeds.device)
            inputs_embeds = inputs_embeds.masked_scatter(mask, features.to(inputs_embeds))
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )


class MultiEncoderForConditionalGeneration(MultiEncoderPreTrainedModel, GenerationMixin):
    """The multi-encoder model with its (tied) language-model head."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: MultiEncoderConfig) -> None:
        super().__init__(config)
        self.model = MultiEncoderModel(config)
        text = text_config(config)
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
        logits = self.lm_head(hidden[:, keep])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=text_config(self.config).vocab_size
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=out.cache,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class MultiEncoderProcessor(ProcessorMixin):
    """Image processor + tokenizer; expands each ``<image>`` into ``image_seq_length`` tokens."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 36, chat_template=None):
        self.image_seq_length = image_seq_length
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, return_tensors=None, padding=False, **kwargs):
        out: dict = {}
        if images is not None:
            out.update(self.image_processor(images=images, return_tensors=return_tensors))
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            texts = [t.replace(self.image_token, self.image_token * self.image_seq_length) for t in texts]
            out.update(self.tokenizer(texts, return_tensors=return_tensors, padding=padding, **kwargs))
        from transformers import BatchFeature

        return BatchFeature(out, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


def register() -> None:
    """Make the Auto classes load saved multi-encoder models (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, MultiEncoderConfig)
        AutoModelForImageTextToText.register(MultiEncoderConfig, MultiEncoderForConditionalGeneration)
        AutoProcessor.register(MultiEncoderConfig, MultiEncoderProcessor)
    except ValueError:  # already registered
        pass


register()
