"""The command line's pipeline options, mapped onto :class:`~vlm_focus.Lens` options.

One place for the flags that ``explain``, ``evaluate``, ``study`` and ``serve`` share
(``--alpha``, ``--strategy``, ...), so that a new pipeline option is added once. Imports
neither torch nor transformers. The values themselves are validated by the Lens.
"""

from __future__ import annotations

import argparse
from typing import Any

PIPELINE = (
    "alpha",
    "strategy",
    "baseline",
    "drop_first",
    "drop_stopwords",
    "max_new_tokens",
    "working_size",
    "batch_size",
    "metric_score",
    "metric_protocol",
)
"""The Lens options the CLI sets from flags of the same name (``--drop-first`` -> ``drop_first``)."""


def pipeline_options(args: argparse.Namespace) -> dict[str, Any]:
    """``{option: value}`` for every :data:`PIPELINE` flag the parsed ``args`` carry."""
    return {name: getattr(args, name) for name in PIPELINE if getattr(args, name, None) is not None}
