"""vlm-focus: where does a vision-language model look when it answers a question?

Three lines::

    lens = vlm_focus.load("shapes-llava", method="igos++")
    ex = lens.explain("scene.png", "What color is the circle?")
    ex.save("out/")          # explanation.json, heatmap.npy, overlay.png, report.html
"""

from .errors import DataError, ImageError, InputError, MethodError, ModelError, VlmFocusError
from .explain import Lens, load
from .explanation import Explanation
from .methods import list_methods, register_method
from .models import list_adapters, list_zoo, register_adapter

__version__ = "0.1.0"


def list_models() -> list[str]:
    """Models shipped in the package (loadable by these short names)."""
    return list_zoo()


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
