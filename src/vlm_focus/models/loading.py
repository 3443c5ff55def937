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
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)} or 'auto'")
    return DTYPES[dtype]


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a :class:`torch.device`, refused with :class:`ModelError` when it is not a
    device name torch knows or names an accelerator that is not available here."""
    if device is None:
        return None
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device))
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} asked for, but CUDA is not available here; use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and not 0 <= dev.index < count:
            raise ModelError(f"device {device!r}: only {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError(f"device {device!r} asked for, but MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "xpu", "meta"):
        raise ModelError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or mps")
    return dev


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

    dev = check_device(device) if device_map is None else None
    torch_dtype = _dtype(dtype)
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
    kwargs: dict = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
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
        model.to(dev if dev is not None else default_device())
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
