"""Dataset-level analyses (the paper's tables), one file per study: ``vlm-focus study NAME``.

The contract is in :mod:`.base` (:class:`Study`, :class:`StudyResult`, :func:`register_study`);
the options and runs the studies share are in :mod:`.common`. Study modules are imported
explicitly by :func:`load_all` (a new study adds its module name to ``MODULES``); none of them
imports torch at module level, so building the CLI parser stays instant.
"""

from __future__ import annotations

import importlib

from .base import STUDIES, Study, StudyResult, get_study, list_studies, register_study

#: The modules that register the studies, imported by :func:`load_all`.
MODULES = ("reliance", "filtering", "ablate", "sanity", "compare", "human")


def load_all() -> None:
    """Import every study module (each registers its studies on import)."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")


__all__ = [
    "MODULES",
    "STUDIES",
    "Study",
    "StudyResult",
    "get_study",
    "list_studies",
    "load_all",
    "register_study",
]
