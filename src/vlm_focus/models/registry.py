"""Adapter registry, keyed by Hugging Face ``model_type``, and model loading."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from .. import catalog
from ..errors import ModelError

ADAPTERS: dict[str, type] = {}
MODEL_TYPES: dict[str, str] = {}
ZOO: Path = catalog.ZOO


def register_adapter(name: str, model_types: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator: register an adapter under ``name`` for these ``model_type`` values."""

    def wrap(cls: type) -> type:
        if name in ADAPTERS:
            warnings.warn(f"adapter {name!r} registered again; the new one replaces the old", stacklevel=2)
        ADAPTERS[name] = cls
        for t in model_types:
            MODEL_TYPES[t] = name
        return cls

    return wrap


def list_adapters() -> list[str]:
    return sorted(ADAPTERS)


def list_zoo() -> list[str]:
    """Names of the models shipped inside the package."""
    return catalog.list_zoo(ZOO)


def resolve(name_or_path: str) -> str:
    """A zoo short name -> its directory; an existing path or a hub id is returned as given.

    Anything else (a typo of a zoo name, a missing path, a hub id not in the cache while
    ``HF_HUB_OFFLINE`` is set) raises :class:`ModelError` at once, naming the closest zoo
    models, instead of a slow and puzzling failure in the hub client.
    """
    if name_or_path in list_zoo():
        return str(ZOO / name_or_path)
    catalog.check_model_name(name_or_path, ZOO)
    return name_or_path


def adapter_for(model_type: str) -> type:
    if model_type not in MODEL_TYPES:
        known = ", ".join(sorted(MODEL_TYPES))
        raise ModelError(
            f"no adapter for model_type {model_type!r} (supported: {known}); "
            "wrap the model with vlm_focus.models.custom.CustomAdapter"
        )
    return ADAPTERS[MODEL_TYPES[model_type]]
