"""``vlm-focus study reliance``: how much do the model's answers rely on the image (paper Table 1)?

For each sample the model answers ``a`` about image ``I``; the same answer is then
teacher-forced on the baseline image ``I~`` (default: the strong blur). The **drop** is

    drop = 1 - P(a | I~, Q) / P(a | I, Q) = 1 - exp(-LLR),   LLR = sum_t LLR_t   (Eq. 6)

the relative fall of the whole answer's probability (the product over its tokens) when
the visual information is removed. The paper's Table 1 reports the share of samples with
a drop below 30 % and between 30 % and 70 %; we add the rest, above 70 %. Boundaries:
``drop < 0.3`` | ``0.3 <= drop <= 0.7`` | ``drop > 0.7``; an answer that becomes *more*
likely on the baseline (drop < 0) counts as below 30 %. Shares are per dataset, model and
sample category (plus "all"), over the samples whose answer could be scored.

Records come from a cheap pass per model (answer + one scorer call on image and baseline,
no heatmap; :func:`~vlm_focus.study.common.score_into`, resumable and ``torchrun``-sharded)
written to ``OUT/scores/<model>/``, or from existing run folders (``--runs``: ``evaluate``
outputs or earlier score folders; their records carry the per-token LLRs).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import common
from .base import Study, StudyResult, register_study

EDGES = (0.3, 0.7)


def bin_shares(drops: Sequence[float], edges: Sequence[float] = EDGES) -> dict[str, Any]:
    """``{"n", "low", "mid", "high"}``: the number of finite drops and the percentage of
    them below ``edges[0]``, within ``[edges[0], edges[1]]`` and above ``edges[1]``."""
    lo, hi = float(edges[0]), float(edges[1])
    finite = [d for d in drops if not math.isnan(d)]
    n = len(finite)
    if n == 0:
        return {"n": 0, "low": math.nan, "mid": math.nan, "high": math.nan}
    low = sum(d < lo for d in finite)
    high = sum(d > hi for d in finite)
    return {"n": n, "low": 100.0 * low / n, "mid": 100.0 * (n - low - high) / n, "high": 100.0 * high / n}


def column_names(edges: Sequence[float] = EDGES) -> tuple[str, str, str]:
    lo, hi = (round(100 * float(e)) for e in edges)
    return f"drop < {lo}%", f"{lo}-{hi}%", f"> {hi}%"


def check_edges(edges: Sequence[float]) -> tuple[float, float]:
    if len(edges) != 2 or not 0 <= edges[0] < edges[1] <= 1:
        raise InputError(f"--edges must be two drops 0 <= low < high <= 1, got {list(edges)}")
    return float(edges[0]), float(edges[1])


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options reliance and filter share: the data, the models, or existing run folders."""
    common.add_data_arguments(parser, default_limit=None)
    common.add_models_argument(parser)
    parser.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        default=None,
        metavar="DIR",
        help="read these run folders (vlm-focus evaluate outputs, or OUT/scores/<model> of an earlier "
        "reliance/filter study) instead of running the models",
    )


def collect(args: argparse.Namespace, out: Path) -> list[tuple[str, str, list[dict]]]:
    """``[(dataset, model, records)]``: from ``--runs``, else one score pass per model on the
    same samples into ``out/scores/<model>``."""
    if args.runs:
        groups = []
        for folder in args.runs:
            cfg, records = common.read_run(folder)
            groups.append((str(cfg.get("dataset", "?")), str(cfg.get("model", folder)), records))
        return groups
    names = common.models_of(args)  # a typo is answered before anything loads
    dataset = common.open_dataset(args)
    ids = common.chosen_ids(args, dataset)
    models = common.Models(args)
    groups = []
    for name in names:
        lens = models.lens(name, metrics=False)  # the method never runs: no heatmap in a score pass
        records = common.score_into(lens, dataset, out / "scores" / common.slug(name), ids, args)
        groups.append((dataset.name, lens.adapter.name, records))
        del lens
        models.drop(name)  # one model in memory at a time
    return groups


def reliance_rows(
    groups: Sequence[tuple[str, str, list[dict]]], edges: Sequence[float] = EDGES
) -> list[dict]:
    """One row per dataset x model x category ("all" first): n and the three shares (%)."""
    names = column_names(edges)
    rows = []
    for dataset, model, records in groups:
        drops = [(str(r.get("category")), common.answer_drop(r)) for r in records]
        cats = list(dict.fromkeys(c for c, _ in drops if c != "None"))
        for cat in ["all", *cats]:
            ds = [d for c, d in drops if cat == "all" or c == cat]
            s = bin_shares(ds, edges)
            finite = sorted(d for d in ds if not math.isnan(d))
            median = finite[len(finite) // 2] if finite else math.nan
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "category": cat,
                    "n": s["n"],
                    names[0]: s["low"],
                    names[1]: s["mid"],
                    names[2]: s["high"],
                    "median drop": median,
                }
            )
    return rows


def stacked_plot(fig: Any, result: StudyResult) -> None:
    """Horizontal stacked bars of the three shares, one bar per row."""
    ax = fig.add_subplot(1, 1, 1)
    names = result.columns[4:7]
    labels = [f"{r['model']} · {r['dataset']} · {r['category']}" for r in result.rows]
    left = [0.0] * len(result.rows)
    for name, color in zip(names, ("#4caf50", "#ffb300", "#e53935")):
        values = [0.0 if r[name] is None or math.isnan(r[name]) else float(r[name]) for r in result.rows]
        ax.barh(range(len(values)), values, left=left, color=color, label=name)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of samples (drop of the answer's probability on the baseline image)")
    ax.set_title(result.title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


@register_study("reliance")
class Reliance(Study):
    summary = (
        "Share of samples whose answer probability drops < 30 % / 30-70 % / > 70 % on the "
        "baseline image (paper Table 1)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_source_arguments(parser)
        parser.add_argument(
            "--edges",
            default="0.3,0.7",
            help="the two drop boundaries of the three bins (drop = 1 - P(a|baseline) / P(a|image))",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        edges = check_edges(common.parse_list(args.edges, float, "--edges"))
        groups = collect(args, out)
        if not common.is_main():
            return None
        rows = reliance_rows(groups, edges)
        lo, hi = column_names(edges)[0], column_names(edges)[2]
        unscored = sum(1 for _, _, recs in groups for r in recs if math.isnan(common.answer_drop(r)))
        notes = [
            "drop = 1 - P(a|baseline,Q) / P(a|image,Q) = 1 - exp(-sum_t LLR_t) of the model's own answer "
            f"(paper Eq. 6); shares in % of the n scored samples; {lo} includes answers made more likely",
            f"paper Table 1 reports the first two shares; {hi} is the rest",
        ]
        if unscored:
            notes.append(f"{unscored} record(s) without LLRs (errors) left out")
        details = {
            "edges": list(edges),
            "drops": {f"{d}/{m}": {r["id"]: common.answer_drop(r) for r in recs} for d, m, recs in groups},
        }
        return StudyResult(
            "Answer-probability drop on the baseline image (paper Table 1)",
            columns=["dataset", "model", "category", "n", *column_names(edges), "median drop"],
            rows=rows,
            notes=notes,
            details=details,
            plot=stacked_plot,
        )
