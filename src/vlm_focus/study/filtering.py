"""``vlm-focus study filter``: keep the samples whose answers clearly depend on the image.

The paper (Sec. 4.3, "Data Selection") keeps "the samples where all models have clear
probability differences with and without visual information" (35 % of MMVP, 47 % of
MMStar, 34 % of CV-Bench) and gives no number. Our rule, with the threshold as an option:
keep a sample when, for **every** model, its answer's probability drops by more than
``--min-drop`` (default 0.7: the "> 70 %" bin of Table 1, :mod:`.reliance`) on the baseline
image, ``drop = 1 - P(a | I~, Q) / P(a | I, Q)``. A sample a model could not score is not
kept. (From Table 1's "> 70 %" shares the rule keeps at most 58 % of MMVP for LLaVA-1.5,
consistent with the paper's 35 % once three models must all agree.)

Writes ``OUT/ids.txt`` (one id per line, in dataset order: what ``vlm-focus evaluate --ids``
and every study's ``--ids`` read) and a table of how many samples each model keeps and all
keep, overall and per category.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_write_text
from . import common
from .base import Study, StudyResult, register_study
from .reliance import add_source_arguments, collect

IDS_FILE = "ids.txt"
MIN_DROP = 0.7


def depends_on_image(record: dict, min_drop: float = MIN_DROP) -> bool:
    """True when the record's answer probability drops by more than ``min_drop``."""
    drop = common.answer_drop(record)
    return not math.isnan(drop) and drop > min_drop


def kept_ids(groups: Sequence[tuple[str, str, list[dict]]], min_drop: float = MIN_DROP) -> list[str]:
    """The ids kept by every model (in the first model's order)."""
    if not groups:
        return []
    keep = [{r["id"] for r in recs if depends_on_image(r, min_drop)} for _, _, recs in groups]
    common_ids = set.intersection(*keep)
    return [r["id"] for r in groups[0][2] if r["id"] in common_ids]


def filter_rows(
    groups: Sequence[tuple[str, str, list[dict]]], kept: Sequence[str], min_drop: float
) -> list[dict]:
    """Rows ``model, category, n, kept, kept %``: each model alone, then "all models"."""
    rows: list[dict[str, Any]] = []
    kept_set = set(kept)
    category = {r["id"]: str(r.get("category")) for _, _, recs in groups for r in recs}
    cats = list(dict.fromkeys(c for c in category.values() if c != "None"))

    def add(model: str, ids: list[str], hit: set[str]) -> None:
        for cat in ["all", *cats]:
            mine = [i for i in ids if cat == "all" or category.get(i) == cat]
            k = sum(i in hit for i in mine)
            share = 100.0 * k / len(mine) if mine else math.nan
            rows.append({"model": model, "category": cat, "n": len(mine), "kept": k, "kept %": share})

    for _, model, recs in groups:
        add(model, [r["id"] for r in recs], {r["id"] for r in recs if depends_on_image(r, min_drop)})
    if len(groups) > 1:
        every = list(dict.fromkeys(r["id"] for _, _, recs in groups for r in recs))
        add("all models", every, kept_set)
    return rows


@register_study("filter")
class Filter(Study):
    summary = (
        "The samples whose answers clearly depend on the image, as an id file for evaluate --ids "
        "(paper Sec. 4.3)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_source_arguments(parser)
        parser.add_argument(
            "--min-drop",
            type=float,
            default=MIN_DROP,
            help="keep a sample when its answer's probability drops by more than this on the baseline "
            "image, for every model",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        if not 0 <= args.min_drop < 1:
            raise InputError(f"--min-drop must be in [0, 1), got {args.min_drop}")
        groups = collect(args, out)
        if not common.is_main():
            return None
        if len({d for d, _, _ in groups}) > 1:
            raise InputError("--runs hold different datasets; filter the samples of one dataset at a time")
        kept = kept_ids(groups, args.min_drop)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / IDS_FILE, "".join(f"{i}\n" for i in kept))
        notes = [
            f"kept: answer probability drops by more than {args.min_drop:.0%} on the baseline image for every "
            f"model; {len(kept)} id(s) written to {out / IDS_FILE} (for evaluate --ids / study --ids)"
        ]
        if not kept:
            notes.append("no sample kept: lower --min-drop or check the baseline (vlm-focus study reliance)")
        return StudyResult(
            f"Samples whose answers depend on the image (drop > {args.min_drop:.0%})",
            columns=["model", "category", "n", "kept", "kept %"],
            rows=filter_rows(groups, kept, args.min_drop),
            notes=notes,
            details={"min_drop": args.min_drop, "dataset": groups[0][0] if groups else None, "ids": kept},
        )
