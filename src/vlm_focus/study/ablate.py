"""``vlm-focus study ablate``: how token selection, alpha, the baseline and the GNC weight
change the maps (paper Tables 3, 5, 6, 7), on the same samples.

Axes (each a comma-separated option, so a user can run any subset):

- ``--strategies``: token selection ``llr`` (LLR > alpha, the paper's), ``joint`` (every
  answer token), ``keywords`` (YAKE; left out with a note when YAKE is not installed and
  the axis was not asked for explicitly) - Table 3;
- ``--alphas``: the LLR threshold, 0.5 / 1 / 2 - Table 6;
- ``--baselines``: ``blur`` / ``blank`` / ``noise`` - Table 7;
- ``--l2``: the GNC weight lambda2 of Eq. 8 (``-O l2=`` of ``igos++`` and ``igos2``),
  0 / 0.1 / 1 / 10 - Table 5; dropped with a note for a method without it.

``--grid oneway`` (default, as the paper's tables) varies one axis at a time around the
default point (``--strategy --alpha --baseline`` and the method's ``l2``); ``--grid full``
runs the product. Each point is one ``evaluate`` run into ``OUT/runs/<point>/`` (resumable,
``torchrun``-sharded). The table reports, per point, the means of deletion, insertion and,
where the samples have evidence masks, the localisation scores, over the samples that
**every** point explained (``n common``), so the rows compare the same samples; ``n``
is how many samples the point itself explained.

Differences from the paper: one baseline serves the LLR, the mask optimisation and the
deletion/insertion curves (the Lens has one), so the baseline axis changes all three; the
paper changes the optimisation baseline (and keeps samples whose selected tokens fall below
5 % on the blur). ``igos++`` blends its mask with the image's mean colour by default
(``blend_with``); when the baseline axis has more than one value, every point of the grid
runs it with ``-O blend_with=baseline`` (unless ``-O blend_with`` is given), so that the
axis changes the optimisation too, as in the paper.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import InputError
from . import common
from .base import Study, StudyResult, bar_plot, register_study

AXES = ("strategy", "alpha", "baseline", "l2")
METRICS = ("deletion", "insertion", "pointing_game", "relevance_mass", "relevance_rank")
DEFAULTS = {
    "strategy": "llr,joint,keywords",
    "alpha": "0.5,1,2",
    "baseline": "blur,blank,noise",
    "l2": "0,0.1,1,10",
}


def grid_points(values: dict[str, list[Any]], default: dict[str, Any], full: bool) -> list[dict[str, Any]]:
    """The grid: the product of ``values`` (``full``), or ``default`` then each value of each
    axis with the other axes at ``default`` (one-way). Duplicates removed, order kept."""
    if full:
        points = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    else:
        points = [dict(default)]
        for axis, vals in values.items():
            points += [{**default, axis: v} for v in vals]
    seen, out = set(), []
    for p in points:
        key = tuple(sorted(p.items()))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def point_name(point: dict[str, Any]) -> str:
    """``strategy-llr_alpha-1.0_baseline-blur_l2-0.1``: the folder of one grid point."""
    return common.slug("_".join(f"{k}-{v}" for k, v in point.items()))


def varied(point: dict[str, Any], default: dict[str, Any]) -> str:
    """``"default"``, or the settings where ``point`` differs from it: ``"alpha=0.5"``."""
    diff = [f"{k}={point[k]}" for k in point if point[k] != default.get(k)]
    return ",".join(diff) if diff else "default"


def ablation_rows(
    points: list[dict[str, Any]], records: list[list[dict]], default: dict[str, Any]
) -> tuple[list[dict], int]:
    """One row per point: its settings, ``n`` explained, then the metric means over the
    samples every point explained (points that explained no sample are left out of that
    intersection; their metrics are NaN). Returns ``(rows, n_common)``."""
    ok = [{r["id"]: r for r in recs if r.get("status") == "ok"} for recs in records]
    explained = [set(o) for o in ok if o]  # a point that explained nothing (e.g. alpha too high) is left out
    shared = set.intersection(*explained) if explained else set()
    rows = []
    for point, got in zip(points, ok):
        row: dict[str, Any] = {
            "point": varied(point, default),
            **point,
            "n": len(got),
            "n common": len(shared),
        }
        for m in METRICS:
            vals = [got[i].get(m) for i in shared if i in got]
            finite = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
            row[m] = sum(finite) / len(finite) if finite else math.nan
        rows.append(row)
    return rows, len(shared)


def _axis(args: argparse.Namespace, name: str, cast: Any) -> list[Any] | None:
    given = getattr(args, name)
    return common.parse_list(given if given is not None else DEFAULTS[_AXIS_OF[name]], cast, f"--{name}")


_AXIS_OF = {"strategies": "strategy", "alphas": "alpha", "baselines": "baseline", "l2": "l2"}


def _choice(values: list[str], known: tuple[str, ...], what: str) -> list[str]:
    bad = [v for v in values if v not in known]
    if bad:
        raise InputError(f"{what}: unknown {bad}; choose from {list(known)}")
    return values


@register_study("ablate")
class Ablate(Study):
    summary = (
        "Deletion, insertion and localisation over a grid of token selection, alpha, baseline "
        "and GNC weight (paper Tables 3, 5, 6, 7)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        common.add_data_arguments(parser, default_limit=10)
        g = parser.add_argument_group("grid")
        g.add_argument(
            "--strategies", default=None, help=f"token selections (default: {DEFAULTS['strategy']})"
        )
        g.add_argument("--alphas", default=None, help=f"LLR thresholds (default: {DEFAULTS['alpha']})")
        g.add_argument("--baselines", default=None, help=f"baseline images (default: {DEFAULTS['baseline']})")
        g.add_argument(
            "--l2", default=None, help=f"GNC weights lambda2 of igos++ (default: {DEFAULTS['l2']})"
        )
        g.add_argument(
            "--grid",
            default="oneway",
            choices=["oneway", "full"],
            help="oneway: one axis at a time around the default point, as the paper; full: every combination",
        )
        g.add_argument(
            "--tolerance",
            type=float,
            default=None,
            help="pointing-game tolerance in pixels (default: 3%% of the longer image side)",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        notes: list[str] = []
        values: dict[str, list[Any]] = {
            "strategy": _choice(_axis(args, "strategies", str) or [], catalog.STRATEGIES, "--strategies"),
            "alpha": _axis(args, "alphas", float) or [],
            "baseline": _choice(_axis(args, "baselines", str) or [], catalog.BASELINES, "--baselines"),
            "l2": _axis(args, "l2", float) or [],
        }
        if "keywords" in values["strategy"] and importlib.util.find_spec("yake") is None:
            if args.strategies is not None:
                raise InputError("--strategies keywords needs YAKE: pip install 'vlm-focus[keywords]'")
            values["strategy"].remove("keywords")
            notes.append("keywords left out: YAKE is not installed (pip install 'vlm-focus[keywords]')")
        method_opts = catalog.METHODS.get(args.method)
        default: dict[str, Any] = {
            "strategy": args.strategy,
            "alpha": float(args.alpha),
            "baseline": args.baseline,
        }
        if method_opts is not None and "l2" in method_opts.options:
            default["l2"] = float(getattr(args, "options", {}).get("l2", method_opts.options["l2"]))
        else:
            if args.l2 is not None:
                raise InputError(
                    f"--l2: the method {args.method!r} has no GNC weight l2 (igos++ and igos2 do)"
                )
            values.pop("l2")
            notes.append(f"l2 axis left out: {args.method} has no GNC weight")
        values = {k: v for k, v in values.items() if v}
        points = grid_points(values, default, args.grid == "full")
        blend: dict[str, Any] = {}
        if (
            len({p["baseline"] for p in points}) > 1
            and method_opts is not None
            and "blend_with" in method_opts.options
            and "blend_with" not in getattr(args, "options", {})
        ):
            blend = {"blend_with": "baseline"}
            notes.append(f"{args.method} optimised against each point's baseline (-O blend_with=baseline)")
        dataset = common.open_dataset(args)
        ids = common.chosen_ids(args, dataset)
        models = common.Models(args)
        records = []
        for point in points:
            lens = models.lens(args.model, **point, **blend)
            records.append(common.evaluate_into(lens, dataset, out / "runs" / point_name(point), ids, args))
        if not common.is_main():
            return None
        rows, shared = ablation_rows(points, records, default)
        used = [m for m in METRICS if any(not math.isnan(r[m]) for r in rows)]
        for r in rows:
            for m in METRICS:
                if m not in used:
                    del r[m]
        notes.insert(
            0,
            f"{args.model}, {args.method}, {dataset.name}: {len(ids)} samples; metric means over the "
            f"{shared} sample(s) every point explained (n common); deletion lower is better",
        )
        empty = [r["point"] for r in rows if r["n"] == 0]
        if empty:
            notes.append(f"explained no sample, left out of n common: {', '.join(empty)}")
        if shared == 0:
            notes.append("no sample was explained at every point: nothing to compare (see each point's n)")
        plotted = [m for m in ("deletion", "insertion") if m in used]
        return StudyResult(
            "Ablation: token selection, alpha, baseline, GNC weight (paper Tables 3, 5, 6, 7)",
            columns=["point", *default, "n", "n common", *used],
            rows=rows,
            notes=notes,
            details={"model": args.model, "method": args.method, "default": default, "ids": ids},
            plot=lambda fig, res: bar_plot(fig, res, plotted, labels=["point"]),
        )
