"""``vlm-focus study sanity``: the model-randomisation sanity check over a dataset, per method.

For each sample and method: explain with the trained model, re-initialise every weight
(:func:`vlm_focus.randomization.sanity_check`: Gaussian noise of each tensor's own mean and
spread, Adebayo et al. 2018), explain the *same* answer tokens and selected tokens again,
and compare the two maps (:func:`vlm_focus.metrics.similarity`: Spearman rank correlation
and SSIM of the min-max normalised maps). A method whose maps describe the model changes
its map: low similarity. It passes on a sample when ``|spearman| < --threshold`` (0.5).

Runs ``evaluate --sanity`` once per method into ``OUT/runs/<method>/`` (resumable,
``torchrun``-sharded) and tabulates per method: the mean Spearman, mean ``|Spearman|``,
mean SSIM and the share of samples that pass, over the samples the method explained.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import InputError
from . import common
from .base import Study, StudyResult, bar_plot, register_study

THRESHOLD = 0.5
METHODS = "igos++,gradcam,attention"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def sanity_row(method: str, records: Sequence[dict], threshold: float = THRESHOLD) -> dict[str, Any]:
    """``method, n, spearman, |spearman|, ssim, passed %`` over the records that carry a
    finite ``sanity_spearman`` (a flat map gives NaN and is left out, as in the runner)."""
    pairs = [
        (float(r["sanity_spearman"]), r.get("sanity_ssim"))
        for r in records
        if r.get("sanity_spearman") is not None and math.isfinite(float(r["sanity_spearman"]))
    ]
    rho = [p for p, _ in pairs]
    ssim = [float(s) for _, s in pairs if s is not None and math.isfinite(float(s))]
    passed = sum(abs(p) < threshold for p in rho)
    return {
        "method": method,
        "n": len(rho),
        "spearman": _mean(rho),
        "|spearman|": _mean([abs(p) for p in rho]),
        "ssim": _mean(ssim),
        "passed %": 100.0 * passed / len(rho) if rho else math.nan,
    }


@register_study("sanity")
class Sanity(Study):
    summary = (
        "Model-randomisation sanity check per method: how much the map changes when the "
        "model's weights are randomised."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        common.add_data_arguments(parser, default_limit=10)
        parser.add_argument("--methods", default=METHODS, help="methods to check, comma-separated")
        parser.add_argument(
            "--threshold",
            type=float,
            default=THRESHOLD,
            help="a sample passes when |Spearman| of the two maps is below this",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        methods = common.parse_list(args.methods, str, "--methods")
        bad = [m for m in methods if m not in catalog.METHODS]
        if bad:
            raise InputError(f"--methods: unknown {bad}; choose from {catalog.list_methods()}")
        if not 0 < args.threshold <= 1:
            raise InputError(f"--threshold must be in (0, 1], got {args.threshold}")
        dataset = common.open_dataset(args)
        ids = common.chosen_ids(args, dataset)
        models = common.Models(args)
        per_method = []
        for m in methods:
            lens = models.lens(args.model, method=m)
            folder = out / "runs" / common.slug(m)
            per_method.append(common.evaluate_into(lens, dataset, folder, ids, args, sanity=True))
        if not common.is_main():
            return None
        rows = [sanity_row(m, recs, args.threshold) for m, recs in zip(methods, per_method)]
        return StudyResult(
            f"Model-randomisation sanity check ({args.model}, {dataset.name})",
            columns=["method", "n", "spearman", "|spearman|", "ssim", "passed %"],
            rows=rows,
            notes=[
                "similarity of the trained model's map to the map after randomising every weight (same "
                "answer, same selected tokens); lower is better",
                f"passed: |spearman| < {args.threshold} (Adebayo et al. 2018); n: samples the method explained "
                f"out of {len(ids)}",
            ],
            details={"model": args.model, "threshold": args.threshold, "ids": ids},
            plot=lambda fig, res: bar_plot(fig, res, ["|spearman|", "ssim"], labels=["method"]),
        )
