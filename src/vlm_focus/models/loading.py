"""Load a model by zoo name, Hugging Face id or local path, and wrap it in its adapter."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelError
from .base import Adapter
from .registry import MODEL_TYPES, adapter_for, resolve

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def default_device() -> torch.device:
    """The best available accelerator, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)} or 'auto'")
    return DTYPES[dtype]


def load_adapter(
    name_or_path: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
) -> Adapter:
    """Load model and processor and return the adapter of their family.

    ``device_map="auto"`` spreads a model too large for one GPU over all of them
    (accelerate); then ``device`` is ignored. ``trust_remote_code`` is off unless asked.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    path = resolve(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load a model config from {name_or_path!r}: {e}") from None
    if config.model_type not in MODEL_TYPES and getattr(config, "vision_config", None) is None:
        raise ModelError(
            f"{name_or_path!r} is a {config.model_type!r} model with no vision encoder: it cannot take images"
        )
    cls = adapter_for(config.model_type)
    kwargs: dict = {"dtype": _dtype(dtype), "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model: Any = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        load_processor = getattr(cls, "load_processor", None)
        processor = (
            load_processor(path, config.model_type, trust_remote_code)
            if load_processor
            else AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        )
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {name_or_path!r}: {e}") from None
    if device_map is None:
        model.to(torch.device(device) if device is not None else default_device())
    if gradient_checkpointing:
        # HF applies checkpointing in training mode only; zero every dropout so that
        # training mode changes nothing else.
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    adapter = cls(model, processor, name=name_or_path)
    if gradient_checkpointing:
        model.train()
    return adapter
