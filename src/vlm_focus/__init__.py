"""vlm-focus: where does a vision-language model look when it answers a question?

Three lines::

    lens = vlm_focus.load("shapes-llava", method="igos++")
    ex = lens.explain("scene.png", "What color is the circle?")
    ex.save("out/")          # explanation.json, heatmap.npy, overlay.png, report.html

``import vlm_focus`` is light: torch and transformers are imported on first use of a name
that needs them (``load``, ``Lens``, ``list_methods``, ...), so the command line answers
``--help`` and ``list`` at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .catalog import list_zoo
from .errors import DataError, ImageError, InputError, MethodError, ModelError, VlmFocusError

if TYPE_CHECKING:
    from .explain import Lens, load
    from .explanation import Explanation
    from .methods import list_methods, register_method
    from .models import list_adapters, register_adapter

__version__ = "0.1.0"

# name -> the submodule that defines it, imported on first access (PEP 562)
_LAZY = {
    "Lens": "explain",
    "load": "explain",
    "Explanation": "explanation",
    "list_methods": "methods",
    "register_method": "methods",
    "list_adapters": "models",
    "register_adapter": "models",
}


def list_models() -> list[str]:
    """Models shipped in the package (loadable by these short names)."""
    return list_zoo()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a submodule not imported yet, e.g. vlm_focus.models
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DataError",
    "Explanation",
    "ImageError",
    "InputError",
    "Lens",
    "MethodError",
    "ModelError",
    "VlmFocusError",
    "list_adapters",
    "list_methods",
    "list_models",
    "list_zoo",
    "load",
    "register_adapter",
    "register_method",
    "__version__",
]
