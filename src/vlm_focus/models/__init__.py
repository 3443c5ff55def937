"""Model adapters: one file per family, registered by Hugging Face ``model_type``."""

from . import custom, idefics3, internvl, llava, llava_onevision, multi_encoder, qwen2_vl  # noqa: F401  (register the adapters)
from .base import Adapter, Scorer
from .custom import CustomAdapter
from .loading import default_device, load_adapter
from .registry import ADAPTERS, adapter_for, list_adapters, list_zoo, register_adapter, resolve

__all__ = [
    "ADAPTERS",
    "Adapter",
    "CustomAdapter",
    "Scorer",
    "adapter_for",
    "default_device",
    "list_adapters",
    "list_zoo",
    "load_adapter",
    "register_adapter",
    "resolve",
]
