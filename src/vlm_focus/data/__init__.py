"""Datasets: the :class:`Sample` / :class:`Dataset` contract, the registry, one loader per
benchmark (MMStar, CV-Bench, MMVP, LLaVA-Bench, VQA-HAT, HallusionBench), the synthetic
``shapes`` scenes (and their POPE-style yes/no set ``shapes-pope``) and the user's own ``files``; :func:`grade` judges answers.

    >>> from vlm_focus.data import get_dataset
    >>> ds = get_dataset("shapes", limit=4)
    >>> [s.id for s in ds]
    ['shapes-2026-0', 'shapes-2026-1', 'shapes-2026-2', 'shapes-2026-3']
"""

from __future__ import annotations

# Each loader module registers itself on import.
from . import (  # noqa: F401
    cv_bench,
    files,
    hallusion_bench,
    llava_bench,
    mmstar,
    mmvp,
    shapes_loader,
    shapes_pope,
    vqa_hat,
)
from .base import (
    ANSWER_KINDS,
    DATA_ENV,
    DATASETS,
    MC_INSTRUCTION,
    PROMPT_FORMATS,
    Dataset,
    Sample,
    dataset_options,
    get_dataset,
    list_datasets,
    register_dataset,
)
from .grading import grade

__all__ = [
    "ANSWER_KINDS",
    "DATA_ENV",
    "DATASETS",
    "MC_INSTRUCTION",
    "PROMPT_FORMATS",
    "Dataset",
    "Sample",
    "dataset_options",
    "get_dataset",
    "grade",
    "list_datasets",
    "register_dataset",
]
