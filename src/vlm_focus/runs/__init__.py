"""Dataset runs: the results store, shards over processes, the loop, the summary.

- :mod:`.store` - the run folder: per-shard results files, atomic writes, repair, the lock;
- :mod:`.shards` - rank and world size from ``torchrun`` / ``accelerate launch``, hash shards;
- :mod:`.runner` - :func:`run` / :func:`run_evaluation`: explain, grade, score, merge;
- :mod:`.summary` - Wilson / t intervals per metric and category, the printed table.

``runs`` knows no dataset by name: it takes a :class:`~vlm_focus.data.Dataset` (or a name it
passes to :func:`vlm_focus.data.get_dataset`). Names are imported on first use, so
``store`` and ``shards`` load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import (
        EVAL_SEED,
        NO_IMAGE,
        evaluate_sample,
        pointing_tolerance,
        read_ids,
        run,
        run_evaluation,
    )
    from .store import read_results
    from .summary import METRICS, format_table, summarize

_LAZY = {
    "EVAL_SEED": "runner",
    "NO_IMAGE": "runner",
    "evaluate_sample": "runner",
    "pointing_tolerance": "runner",
    "read_ids": "runner",
    "run": "runner",
    "run_evaluation": "runner",
    "read_results": "store",
    "METRICS": "summary",
    "format_table": "summary",
    "summarize": "summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "EVAL_SEED",
    "METRICS",
    "NO_IMAGE",
    "evaluate_sample",
    "format_table",
    "pointing_tolerance",
    "read_ids",
    "read_results",
    "run",
    "run_evaluation",
    "summarize",
]
